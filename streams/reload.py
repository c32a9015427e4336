"""Hot reload of the rule pack and the anomaly model, polled from their files.

A changed file is loaded and checked in full before it replaces anything: a bad
one is refused with a log line and a metric, and the last good one stays in
force.  Swaps happen between batches (the event loop runs one thing at a time),
so no event sees half of one version and half of another.  The rule pack is also
read again, once, when an allow-list entry it applied has expired: the entry
stops applying on the day after its ``expires``, not at the next restart.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from accesswatch.core import Detector
from accesswatch.errors import AccessWatchError
from accesswatch.rules import load_rules
from streams.metrics import Metrics

log = logging.getLogger("accesswatch.reload")


@dataclass
class Watched:
    """One file and the (mtime, size) last seen of it."""

    path: Path
    seen: tuple[float, int] | None = field(default=None)

    def changed(self) -> bool:
        try:
            stat = self.path.stat()
        except OSError:
            return False  # gone or being replaced: keep what is in force
        now = (stat.st_mtime, stat.st_size)
        if now == self.seen:
            return False
        self.seen = now
        return True


def load_model_file(path: Path) -> Any:
    from models.served import load_served_model

    return load_served_model(path)


class Reloader:
    """Polls the rules and model files; swaps them into the detector when they change."""

    def __init__(self, detector: Detector, metrics: Metrics, rules_path: Path | None,
                 model_path: Path | None,
                 load_model: Callable[[Path], Any] = load_model_file) -> None:
        self.detector, self.metrics, self._load_model = detector, metrics, load_model
        self.rules = Watched(rules_path) if rules_path is not None else None
        self.model = Watched(model_path) if model_path is not None else None
        self._lapse_tried: date | None = None  # the expiry a reload was last tried for
        for w in (self.rules, self.model):
            if w is not None:
                w.changed()  # what is in force at start is the baseline

    async def poll(self) -> None:
        """Swap in what changed.  A model file is loaded and checked in a thread (seconds,
        in a child process) while batches go on; the swap itself happens here, in the
        event loop, between batches."""
        if self.rules is not None and (self.rules.changed() or self._lapsed()):
            self._swap_rules(self.rules.path)
        if self.model is not None and self.model.changed():
            loop = asyncio.get_running_loop()
            try:
                model = await loop.run_in_executor(None, self._load_model, self.model.path)
            except AccessWatchError as e:
                self.metrics.model_reload_failures.inc()
                old = self.detector.model.version if self.detector.model is not None else "none"
                log.error("model reload refused, model %s stays in force: %s", old, e)
                return
            self.detector.set_model(model)
            self.metrics.expect_alerts(self.detector.alerting_rules())
            self.metrics.model.info({"version": model.version, "name": model.name})
            log.info("model %s now in force", model.version)

    def _lapsed(self) -> bool:
        """An applied allow-list entry has expired: read the pack again (once per expiry,
        so a pack that no longer loads is not retried on every poll)."""
        pack = self.detector.pack
        if not pack.lapsed() or pack.next_expiry == self._lapse_tried:
            return False
        self._lapse_tried = pack.next_expiry
        log.info("rule pack %s: an allow-list entry expired on %s; reading it again",
                 pack.version, pack.next_expiry)
        return True

    def _swap_rules(self, path: Path) -> None:
        try:
            pack = load_rules(path)
        except AccessWatchError as e:
            self.metrics.rules_reload_failures.inc()
            log.error("rule pack reload refused, previous pack %s stays in force: %s",
                      self.detector.pack.version, getattr(e, "summary", e.__str__)())
            return
        for warning in pack.warnings:
            log.warning("rule pack %s: %s", pack.version, warning)
        self.detector.set_rules(pack)
        self.metrics.expect_alerts(self.detector.alerting_rules())
        self.metrics.rules.info({"version": pack.version, "rules": str(len(pack.active))})
        log.info("rule pack %s now in force: %d active rules", pack.version, len(pack.active))
