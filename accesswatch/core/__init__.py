"""The detection core: pure functions over events, reference data and explicit state.

It imports no Kafka client, no Faust and no prometheus_client; the backtest and
the live workers both drive it.
"""

from __future__ import annotations

from accesswatch.core.alerts import Alert
from accesswatch.core.detector import Detector, Outcome
from accesswatch.core.state import Member, UserState, decode_member, encode_member

__all__ = ["Alert", "Detector", "Member", "Outcome", "UserState", "decode_member", "encode_member"]
