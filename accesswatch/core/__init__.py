"""The detection core: pure functions over events, reference data and explicit state.

It imports no Kafka client, no Faust and no prometheus_client; the backtest and
the live workers both drive it.
"""

from __future__ import annotations

from accesswatch.core.alerts import Alert, Fired
from accesswatch.core.detector import Detector
from accesswatch.core.state import UserState

__all__ = ["Alert", "Detector", "Fired", "UserState"]
