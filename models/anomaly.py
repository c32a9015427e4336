"""An isolation forest over behavioural columns, with verdicts an analyst can read.

Rows come from ``accesswatch.core.features`` (the same offline and live).  The
model turns them into columns (ratios to the member's own usual and to their
peer group's), scores a whole batch in one call, and explains each anomaly by
the columns furthest above their training median.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from accesswatch.core.features import RAW, Row
from models.flatforest import FlatForest

if TYPE_CHECKING:  # a worker serves a model without importing scikit-learn (models/served.py)
    from sklearn.ensemble import IsolationForest

COLUMNS = (
    "opens_1h",
    "opens_vs_usual",
    "opens_vs_peers",
    "distinct_10m",
    "speed_10m",
    "unjustified_1h",
    "out_of_area_1h",
    "prints_1h",
    "off_duty_minutes",
    "new_terminal",
    "idle_hours",
)
_I = {name: i for i, name in enumerate(RAW)}
# Only these columns can explain an alert: a burst of new terminals or a long
# idle spell alone is odd but not misuse, so they add to the score, not the reason.
EXPLAINING = frozenset(
    {
        "opens_1h",
        "opens_vs_usual",
        "opens_vs_peers",
        "distinct_10m",
        "speed_10m",
        "unjustified_1h",
        "out_of_area_1h",
        "prints_1h",
        "off_duty_minutes",
    }
)


@dataclass(frozen=True, slots=True)
class Verdict:
    anomaly_score: float  # higher is stranger; 0.5 is the forest's neutral
    alert: bool  # past the threshold, explained by a risky column
    odd: bool  # past the lower threshold: a weak signal for risk
    top: list[dict[str, float | str | None]]
    reasons: list[str]


@dataclass
class AnomalyModel:
    forest: IsolationForest | None  # None when served from a flat forest alone
    threshold: float
    odd_threshold: float
    peer_usual: dict[str, float]
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
        peer = np.array([self._usual(r.peer) for r in rows], dtype=np.float64)
        opens, usual = raw[:, _I["opens_1h"]], raw[:, _I["usual_per_hour"]]
        usual = np.where(usual > 0, usual, peer)
        out = np.empty((len(rows), len(COLUMNS)), dtype=np.float64)
        out[:, 0] = np.log1p(opens)
        out[:, 1] = opens / np.maximum(usual, 1.0)
        out[:, 2] = opens / np.maximum(peer, 1.0)
        out[:, 3] = np.log1p(raw[:, _I["distinct_10m"]])
        out[:, 4] = 600.0 / np.maximum(raw[:, _I["median_gap_10m"]], 1.0)
        # A count, not the share: one unjustified open in a quiet hour is 100%, and ordinary.
        out[:, 5] = np.log1p(raw[:, _I["unjustified_share_1h"]] * opens)
        out[:, 6] = raw[:, _I["out_of_area_1h"]]
        out[:, 7] = np.log1p(raw[:, _I["prints_1h"]])
        out[:, 8] = np.log1p(raw[:, _I["off_duty_minutes"]])
        out[:, 9] = raw[:, _I["new_terminal"]]
        out[:, 10] = np.log1p(raw[:, _I["idle_hours"]])
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

    def _usual(self, peer: str) -> float:
        """The peer group's usual opens an hour; the force's for a group too small to learn."""
        return self.peer_usual.get(peer, self.peer_usual.get("*", 1.0))

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
        (opens, usual, distinct, gap, share, away, prints, off, _, _) = row.values
        return (
            opens >= b.opens
            or opens >= b.vs_usual * max(usual if usual > 0 else b.peer, 1.0)
            or opens >= b.vs_peers
            or distinct >= b.distinct
            or max(gap, 1.0) <= b.gap
            or share * opens >= b.unjustified
            or away >= b.away
            or prints >= b.prints
            or off >= b.off_duty
        )

    def _make_bounds(self, peer: str) -> _Bounds:
        median, scale = self._spread(peer)
        # A column's value that is min_z above its median, for each explaining column.
        at = {name: median[j] + self.min_z * scale[j] for j, name in enumerate(COLUMNS)}
        peer_usual = self._usual(peer)
        speed = at["speed_10m"]  # 600 / max(gap, 1): gaps at most 600 / speed qualify
        return _Bounds(
            peer=peer_usual,
            opens=_loose(math.expm1(at["opens_1h"])),
            vs_usual=_loose(at["opens_vs_usual"]),
            vs_peers=_loose(at["opens_vs_peers"] * max(peer_usual, 1.0)),
            distinct=_loose(math.expm1(at["distinct_10m"])),
            gap=math.inf if speed <= 0 else -_loose(-600.0 / speed),
            unjustified=_loose(math.expm1(at["unjustified_1h"])),
            away=_loose(at["out_of_area_1h"]),
            prints=_loose(math.expm1(at["prints_1h"])),
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
            top = self._top(row, z)
            alert = s >= self.threshold
            verdicts[i] = Verdict(s, alert, True, _public(top), self._reasons(row, top))
        return verdicts

    def _top(self, row: Row, z: np.ndarray) -> list[dict[str, float | str | None]]:
        order = np.argsort(-z)
        top: list[dict[str, float | str | None]] = []
        for j in order:
            name = COLUMNS[j]
            if z[j] <= 0 or name not in EXPLAINING:
                continue
            value, baseline = self._value_and_baseline(row, name, j)
            top.append({"name": name, "value": value, "baseline": baseline, "z": float(z[j])})
            if len(top) == 3:
                break
        return top

    def _value_and_baseline(self, row: Row, name: str, j: int) -> tuple[float, float | None]:
        v = dict(zip(RAW, row.values, strict=True))
        peer = self._usual(row.peer)
        plain = {
            "opens_1h": (v["opens_1h"], v["usual_per_hour"] or peer),
            "opens_vs_usual": (v["opens_1h"], v["usual_per_hour"] or None),
            "opens_vs_peers": (v["opens_1h"], peer),
            "distinct_10m": (v["distinct_10m"], None),
            "speed_10m": (v["median_gap_10m"], None),
            "unjustified_1h": (v["unjustified_share_1h"] * v["opens_1h"], None),
            "out_of_area_1h": (v["out_of_area_1h"], None),
            "prints_1h": (v["prints_1h"], None),
            "off_duty_minutes": (v["off_duty_minutes"], 0.0),
        }
        value, baseline = plain[name]
        if baseline is None:
            baseline = _inverse(name, self._spread(row.peer)[0][j])
        return round(float(value), 3), None if baseline is None else round(float(baseline), 3)

    def _reasons(self, row: Row, top: list[dict[str, float | str | None]]) -> list[str]:
        v = dict(zip(RAW, row.values, strict=True))
        peer = self._usual(row.peer)
        said: set[str] = set()
        out = []
        for f in top:
            name = str(f["name"])
            family = "opens" if name.startswith("opens") else name
            if family in said:
                continue
            said.add(family)
            out.append(_reason(name, v, f.get("baseline"), peer, row.peer))
        return out


@dataclass(frozen=True, slots=True)
class _Bounds:
    """Raw values at or past which a column could explain a verdict (one peer group)."""

    peer: float  # the group's usual opens an hour: a member's usual until they have one
    opens: float
    vs_usual: float  # times the member's usual
    vs_peers: float
    distinct: float
    gap: float  # at or below: the median gap is short enough
    unjustified: float
    away: float
    prints: float
    off_duty: float


def _loose(bound: float) -> float:
    """``bound`` lowered by far more than rounding moves it, far less than any real step."""
    return bound - 1e-9 * (abs(bound) + 1.0)


def _reason(name: str, v: dict[str, float], baseline: Any, peer: float, group: str) -> str:
    opens = v["opens_1h"]
    if name in ("opens_1h", "opens_vs_usual"):
        usual = v["usual_per_hour"]
        if usual > 0:
            return (
                f"opened {opens:.0f} records in the last hour; their usual is {usual:.0f} an hour"
            )
        name = "opens_vs_peers"
    if name == "opens_vs_peers":
        return (
            f"opened {opens:.0f} records in the last hour; others in their role and unit "
            f"({group}) usually open {peer:.0f} an hour"
        )
    if name in ("distinct_10m", "speed_10m"):
        return (
            f"opened {v['distinct_10m']:.0f} distinct records in ten minutes, a median of "
            f"{v['median_gap_10m']:.0f} seconds apart"
        )
    if name == "unjustified_1h":
        share = v["unjustified_share_1h"]
        return (
            f"opened {share * opens:.0f} people or incidents with no justifying case in the "
            f"last hour, {share:.0%} of their opens (usually {float(baseline or 0):.0f})"
        )
    if name == "out_of_area_1h":
        return (
            f"opened {v['out_of_area_1h']:.0f} records from outside their area in the last "
            f"hour with no justifying case"
        )
    if name == "prints_1h":
        return f"printed or exported {v['prints_1h']:.0f} records in the last hour"
    return f"was working {v['off_duty_minutes']:.0f} minutes outside any rostered duty"


def _inverse(name: str, median: float) -> float | None:
    """A column's training median back in the units the analyst reads."""
    if name in ("distinct_10m", "prints_1h", "opens_1h", "unjustified_1h"):
        return math.expm1(median)
    if name == "speed_10m":
        return 600.0 / median if median > 0 else None
    if name == "out_of_area_1h":
        return median
    return None


def _public(top: list[dict[str, float | str | None]]) -> list[dict[str, float | str | None]]:
    keys = ("name", "value", "baseline")
    return [{k: f[k] for k in keys} for f in top]
