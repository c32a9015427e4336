"""An isolation forest over behavioural columns, with verdicts an analyst can read.

Rows come from ``accesswatch.core.features`` (the same offline and live).  The
model turns them into columns (doubtful work, and the context it happened in),
scores a whole batch in one call, and explains each anomaly by the columns
furthest above their peer group's training median.  Only doubtful work can
explain an alert (``EXPLAINING``), and an alert's evidence is the doubtful
events that column counted (``EVIDENCE``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from accesswatch.core.features import (
    AWAY,
    DOUBTFUL,
    HOUR,
    JUSTIFIED,
    LONG,
    NOTED,
    PRINTED,
    RAW,
    RECENT,
    Row,
)
from models.flatforest import FlatForest
from models.reasons import Feature, public, reasons, value_and_baseline

if TYPE_CHECKING:  # a worker serves a model without importing scikit-learn (models/served.py)
    from sklearn.ensemble import IsolationForest

COLUMNS = (
    "unjustified_1h",
    "unjustified_10m",
    "unjustified_4h",
    "unjustified_share",
    "out_of_area_1h",
    "out_of_area_4h",
    "prints_1h",
    "prints_4h",
    "off_duty_minutes",
    "justified_1h",
)
_I = {name: i for i, name in enumerate(RAW)}
# Only these columns can explain an alert: doubtful work, never volume.  Many
# justified opens (a live operation) are context the forest weighs, and they
# lower the unjustified share; they are never the reason for an alert.
EXPLAINING = frozenset(COLUMNS[:9])
# The share of the hour's opens that were doubtful, as if five justified opens
# more: one doubtful open in a quiet hour is not "all of them".
SHARE_PRIOR = 5.0
# The marks (``features.Mark``) each explaining column counts, and over how long.
EVIDENCE = {
    "unjustified_1h": (DOUBTFUL, HOUR),
    "unjustified_10m": (DOUBTFUL, RECENT),
    "unjustified_4h": (DOUBTFUL, LONG),
    "unjustified_share": (DOUBTFUL, HOUR),
    "out_of_area_1h": (AWAY, HOUR),
    "out_of_area_4h": (AWAY, LONG),
    "prints_1h": (PRINTED, HOUR),
    "prints_4h": (PRINTED, LONG),
    "off_duty_minutes": (NOTED, HOUR),
}


@dataclass(frozen=True, slots=True)
class Verdict:
    anomaly_score: float  # higher is stranger; 0.5 is the forest's neutral
    alert: bool  # past the threshold, explained by a risky column
    odd: bool  # past the lower threshold: a weak signal for risk
    top: list[dict[str, float | str | None]]
    reasons: list[str]
    # The events that drove the explaining columns, in time order, and their records.
    evidence: list[tuple[float, str]] = field(default_factory=list)
    subject_ids: list[str] = field(default_factory=list)


@dataclass
class AnomalyModel:
    forest: IsolationForest | None  # None when served from a flat forest alone
    threshold: float
    odd_threshold: float
    median: list[float]
    scale: list[float]
    meta: dict[str, Any] = field(default_factory=dict)
    name: str = "isolation-forest"
    rule_id: str = "AW-M01"
    min_z: float = 3.0
    # Each role/unit's own median and spread per column: an analyst's normal is
    # not a call handler's.  Groups too small to learn fall back to the whole force.
    peer_median: dict[str, list[float]] = field(default_factory=dict)
    peer_scale: dict[str, list[float]] = field(default_factory=dict)
    _flat: FlatForest | None = field(default=None, repr=False, compare=False)
    # Peer group → the raw values past which a row could yield a verdict (``worth_judging``).
    _bounds: dict[str, _Bounds] = field(default_factory=dict, repr=False, compare=False)

    @property
    def version(self) -> str:
        return str(self.meta.get("version", "unversioned"))

    # ---- columns --------------------------------------------------------
    def columns(self, rows: Sequence[Row]) -> np.ndarray:
        """Rows of raw values → the model's columns, vectorised."""
        raw = np.array([r.values for r in rows], dtype=np.float64).reshape(len(rows), len(RAW))
        out = np.empty((len(rows), len(COLUMNS)), dtype=np.float64)
        doubtful = raw[:, _I["doubtful_1h"]]
        # Counts on a log scale: 6 doubtful opens against 2 is as telling as 60 against 20.
        for j, name in enumerate(("doubtful_1h", "doubtful_10m", "doubtful_4h")):
            out[:, j] = np.log1p(raw[:, _I[name]])
        out[:, 3] = doubtful / (raw[:, _I["opens_1h"]] + SHARE_PRIOR)
        out[:, 4] = raw[:, _I["out_of_area_1h"]]
        out[:, 5] = raw[:, _I["out_of_area_4h"]]
        out[:, 6] = np.log1p(raw[:, _I["prints_1h"]])
        out[:, 7] = np.log1p(raw[:, _I["prints_4h"]])
        out[:, 8] = np.log1p(raw[:, _I["off_duty_minutes"]])
        out[:, 9] = np.log1p(raw[:, _I["justified_1h"]])
        return out

    def _baselines(self, rows: Sequence[Row]) -> tuple[np.ndarray, np.ndarray]:
        """Per-row median and spread: the row's peer group's, else the force's."""
        groups = sorted({r.peer for r in rows})
        index = {g: i for i, g in enumerate(groups)}
        spreads = [self._spread(g) for g in groups]
        med = np.array([median for median, _ in spreads])
        sc = np.array([scale for _, scale in spreads])
        which = np.fromiter((index[r.peer] for r in rows), dtype=np.intp, count=len(rows))
        return med[which], sc[which]

    def _spread(self, peer: str) -> tuple[list[float], list[float]]:
        """The peer group's median and spread per column; the force's for a small group."""
        return self.peer_median.get(peer, self.median), self.peer_scale.get(peer, self.scale)

    @property
    def _explaining(self) -> np.ndarray:
        return np.array([name in EXPLAINING for name in COLUMNS])

    def score(self, x: np.ndarray) -> np.ndarray:
        """Anomaly scores in (0, 1], higher is stranger (the paper's s(x, n))."""
        if self._flat is None or self._flat.forest is not self.forest:
            assert self.forest is not None
            self._flat = FlatForest(self.forest)
        return -self._flat.score_samples(x)

    def z_scores(self, rows: Sequence[Row], x: np.ndarray | None = None) -> np.ndarray:
        """Each row's columns as spreads above its peer group's median (the force's)."""
        if x is None:
            x = self.columns(rows)
        median, scale = self._baselines(rows)
        return (x - median) / scale

    def explainable(self, z: np.ndarray) -> np.ndarray:
        """Per row: has an explaining column at least ``min_z`` above its median."""
        return np.asarray((z[:, self._explaining] >= self.min_z).any(axis=1))

    # ---- verdicts -------------------------------------------------------
    def worth_judging(self, row: Row) -> bool:
        """False when ``row`` cannot yield a verdict; ``judge`` need not see it.

        ``judge`` gives a verdict only to an ``explainable`` row: one with an
        explaining column at least ``min_z`` above its peer group's median, tested
        on columns built with numpy.  Here the same test is one comparison per
        column on the raw values, against bounds worked out once per peer group.
        Nearly every row fails it, so the detector holds back a member's events
        for the batch's verdicts only when one could come.  The bounds are loosened by a hair:
        rounding can let a row through (``judge`` then decides exactly), never
        keep one out.
        """
        b = self._bounds.get(row.peer)
        if b is None:
            b = self._bounds[row.peer] = self._make_bounds(row.peer)
        opens, _, doubtful, recent, longer, away, away_4h, prints, prints_4h, off = row.values
        return (
            doubtful >= b.unjustified
            or recent >= b.recent
            or longer >= b.longer
            or doubtful >= b.share * (opens + SHARE_PRIOR)
            or away >= b.away
            or away_4h >= b.away_4h
            or prints >= b.prints
            or prints_4h >= b.prints_4h
            or off >= b.off_duty
        )

    def _make_bounds(self, peer: str) -> _Bounds:
        median, scale = self._spread(peer)
        # A column's value that is min_z above its median, for each explaining column.
        at = {name: median[j] + self.min_z * scale[j] for j, name in enumerate(COLUMNS)}
        return _Bounds(
            unjustified=_loose(math.expm1(at["unjustified_1h"])),
            recent=_loose(math.expm1(at["unjustified_10m"])),
            longer=_loose(math.expm1(at["unjustified_4h"])),
            share=_loose(at["unjustified_share"]),
            away=_loose(at["out_of_area_1h"]),
            away_4h=_loose(at["out_of_area_4h"]),
            prints=_loose(math.expm1(at["prints_1h"])),
            prints_4h=_loose(math.expm1(at["prints_4h"])),
            off_duty=_loose(math.expm1(at["off_duty_minutes"])),
        )

    def judge(self, rows: Sequence[Row]) -> list[Verdict | None]:
        """Score a whole batch in one call; explain each row past the lower threshold.

        A row below it gets None: nothing to say, nothing to build.
        """
        if not rows:
            return []
        x = self.columns(rows)
        verdicts: list[Verdict | None] = [None] * len(rows)
        z_all = self.z_scores(rows, x)
        # A verdict needs a risky column at least min_z above its median; a row
        # with none cannot yield one, so the forest need not score it.
        strong = np.flatnonzero(self.explainable(z_all))
        if not len(strong):
            return verdicts
        scores = self.score(x[strong])
        keep = scores >= self.odd_threshold
        for i, s, z in zip(strong[keep], scores[keep], z_all[strong[keep]], strict=True):
            row, s = rows[i], float(s)
            top = self._top(row, z, x[i])
            evidence, subjects = _evidence(row, top)
            verdicts[i] = Verdict(s, s >= self.threshold, True, public(top),
                                  reasons(row, top), evidence, subjects)
        return verdicts

    def _top(self, row: Row, z: np.ndarray, x: np.ndarray) -> list[Feature]:
        """Up to three explaining columns, furthest above the median first."""
        median = self._spread(row.peer)[0]
        top: list[Feature] = []
        for j in np.argsort(-z):
            name = COLUMNS[j]
            if z[j] <= 0 or name not in EXPLAINING:
                continue
            value, baseline = value_and_baseline(row, name, float(x[j]), median[j])
            top.append({"name": name, "value": value, "baseline": baseline, "z": float(z[j])})
            if len(top) == 3:
                break
        return top


@dataclass(frozen=True, slots=True)
class _Bounds:
    """Raw values at or past which a column could explain a verdict (one peer group)."""

    unjustified: float  # doubtful opens in the hour
    recent: float  # ... in ten minutes
    longer: float  # ... in four hours
    share: float  # of (the hour's opens + SHARE_PRIOR)
    away: float
    away_4h: float
    prints: float
    prints_4h: float
    off_duty: float


def _loose(bound: float) -> float:
    """``bound`` lowered by far more than rounding moves it, far less than any real step."""
    return bound - 1e-9 * (abs(bound) + 1.0)


def _evidence(row: Row, top: list[Feature]) -> tuple[list[tuple[float, str]], list[str]]:
    """The row's marks that its explaining columns counted, and their records.

    The first column always counts, the others when at least two spreads above
    the median.  Prints on a justifying case count only when there are no
    others: they are the member's case work, not what stood out.  A row with no
    such mark (off duty, say) cites every mark it has.
    """
    wanted = [EVIDENCE[str(f["name"])] for k, f in enumerate(top)
              if k == 0 or float(f["z"] or 0.0) >= 2.0]
    counted = [m for m in row.marks
               if any(m[3] & mask and m[0] >= row.t - span for mask, span in wanted)]
    marks = [m for m in counted if not m[3] & JUSTIFIED] or counted or row.marks
    if not marks:
        return [(row.t, row.event_id)], []
    return [(m[0], m[1]) for m in marks], list(dict.fromkeys(m[2] for m in marks if m[2]))
