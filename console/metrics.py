"""Prometheus metrics of the console, served on its ``/metrics``.

``/metrics`` needs no sign-in, as a worker's does not (``streams/serve.py``): a
scraper holds no session, and nothing here says who or what.  Labels carry only
fixed vocabularies (feed names, reason classes); never a user id, subject id,
alert id or anything read from a record.

>>> from prometheus_client import CollectorRegistry
>>> m = ConsoleMetrics(CollectorRegistry())
>>> m.refused("triage", "unsigned")
>>> m.triage_rejected.labels("unsigned")._value.get()
1.0
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    generate_latest,
)

if TYPE_CHECKING:
    from console.state import ConsoleState

# A refusal on the triage or cases topic for one of these means someone wrote there who
# holds no console's key, or erased a record: SREs alert on it (docs/operations.md).
TRUST_REASONS = ("unsigned", "bad_signature", "tombstone")
SIGNED_FEEDS = ("triage", "cases")


class ConsoleMetrics:
    """The console's metrics in one registry of its own."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = r = registry if registry is not None else CollectorRegistry()
        self.quarantined = Counter(
            "accesswatch_console_quarantined",
            "Records of the alerts, triage and cases topics refused on read (never shown, "
            "never applied), by feed and why", ["topic", "reason_class"], registry=r)
        self.triage_rejected = Counter(
            "accesswatch_console_triage_rejected",
            "Triage decisions ignored because no console signed them, the signature did "
            "not match, or they were tombstones", ["reason"], registry=r)
        self.cases_rejected = Counter(
            "accesswatch_console_cases_rejected",
            "Case records ignored because no console signed them, the signature did not "
            "match, or they were tombstones", ["reason"], registry=r)
        self.alerts_held = Gauge("accesswatch_console_alerts_held",
                                 "Alerts held in memory (each at its highest version)",
                                 registry=r)
        self.cases = Gauge("accesswatch_console_cases", "Cases the console shows", registry=r)
        self.decisions = Gauge("accesswatch_console_triage_decisions",
                               "Triage decisions held (one per alert decided)", registry=r)
        self.history_rows = Gauge("accesswatch_console_history_rows",
                                  "Accesses in the console's history store", registry=r)
        self.ready = Gauge("accesswatch_console_ready",
                           "1 once the alerts, triage, cases and staff feeds caught up",
                           registry=r)
        for reason in TRUST_REASONS:  # at 0 from the start: an alert rule reads the series
            self.triage_rejected.labels(reason)
            self.cases_rejected.labels(reason)
        # The consultation log (console/consultations.py): by kind of read, never whose.
        from console.consultations import KINDS

        self.consultations = Counter(
            "accesswatch_console_consultations",
            "Reads of personal data recorded in the consultation log, by kind of read",
            ["kind"], registry=r)
        self.consultations_failed = Counter(
            "accesswatch_console_consultations_failed",
            "Reads refused (503) because the consultation log could not be written", registry=r)
        self.consultations_no_staff_id = Counter(
            "accesswatch_console_consultations_no_staff_id",
            "Subject pages and timelines opened by a user the users file gives no staff_id: "
            "not produced as access events", registry=r)
        for kind in KINDS:
            self.consultations.labels(kind)

    def refused(self, feed: str, reason_class: str) -> None:
        """Count one record of ``feed`` refused on read."""
        self.quarantined.labels(feed, reason_class).inc()
        if reason_class in TRUST_REASONS and feed in SIGNED_FEEDS:
            (self.triage_rejected if feed == "triage" else self.cases_rejected).labels(
                reason_class).inc()

    def consultation(self, kind: str, recorded: bool) -> None:
        """Count one read recorded in the consultation log, or refused for want of it."""
        from console.consultations import KINDS

        if recorded:
            self.consultations.labels(kind if kind in KINDS else "other").inc()
        else:
            self.consultations_failed.inc()

    async def observe(self, state: ConsoleState) -> None:
        """Set the gauges from the state, just before a scrape reads them."""
        self.alerts_held.set(len(state.alerts.alerts))
        self.cases.set(len(state.case_views))
        self.decisions.set(len(state.triage.decisions))
        self.ready.set(1 if state.ready else 0)
        if state.history is not None:
            stats = await asyncio.to_thread(state.history.stats)
            self.history_rows.set(stats.get("rows") or 0)


METRICS = web.AppKey("console_metrics", ConsoleMetrics)


async def serve_metrics(request: web.Request) -> web.Response:
    from console.web import STATE

    metrics = request.app[METRICS]
    await metrics.observe(request.app[STATE])
    return web.Response(body=generate_latest(metrics.registry),
                        headers={"Content-Type": CONTENT_TYPE_LATEST})
