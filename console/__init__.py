"""The security-operations console: live alerts, evidence and triage in the browser.

``accesswatch console --host 127.0.0.1 --port 8080 --users console-users.yaml``

It reads ``access.alerts`` (from the beginning, then live), ``access.events``
(a bounded index of recent events, for evidence), ``ref.staff`` (area, unit and
role) and its own compacted ``access.alerts.triage`` topic, and serves one
page, a JSON API and a server-sent-events feed behind a login.
"""

from __future__ import annotations
