"""Which version of an alert a reader keeps (contract v1.1): the highest, per ``alert_id``.

An alert is published again under the same id, ``version`` one higher, when its
evidence grows.  Replays, a re-read topic or two workers after a rebalance can
bring an older or the same version after a newer one: a reader ignores those.

>>> seen = LatestVersions(limit=2)
>>> [seen.offer(i, v) for i, v in [("a", 1), ("a", 3), ("a", 2), ("a", 3), ("b", 1)]]
[True, True, False, False, True]
>>> seen.get("a"), seen.get("c")
(3, 0)
"""

from __future__ import annotations

from collections import OrderedDict


class LatestVersions:
    """The highest version seen of the ``limit`` most recently seen alert ids.

    Bounded: an id not seen for ``limit`` other ids is forgotten, and whatever
    version of it comes next is taken as new.  Alert ids are never reused, so only
    a replay of a long-finished alert can meet that.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._versions: OrderedDict[str, int] = OrderedDict()

    def __len__(self) -> int:
        return len(self._versions)

    def get(self, alert_id: str) -> int:
        """The highest version seen; 0 when none is remembered."""
        return self._versions.get(alert_id, 0)

    def offer(self, alert_id: str, version: int) -> bool:
        """Remember ``version`` if it is higher than any seen; True when it is."""
        held = self._versions.get(alert_id, 0)
        if held:
            self._versions.move_to_end(alert_id)  # still in circulation: keep it longest
        if version <= held:
            return False
        self._versions[alert_id] = version
        while len(self._versions) > self.limit:
            self._versions.popitem(last=False)
        return True
