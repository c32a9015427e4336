"""Working members by policing area and unit, for drawing case teams a batch at a time."""

from __future__ import annotations

import random

import numpy as np

from .national_layout import AREA_NAMES
from .national_staff import Member
from .roles import SPECS

UNITS = tuple(dict.fromkeys(s.unit for s in SPECS))
HQ = len(AREA_NAMES)  # area index of force-wide staff


class Staffing:
    """Working members by (area, unit), for drawing teams a batch at a time."""

    def __init__(self, staff: list[Member]) -> None:
        self.uid = [m.user_id for m in staff]
        # ',"E1234567"' per member, and '' at index -1 for an empty place in a team.
        self.quoted = np.array([f',"{u}"' for u in self.uid] + [""], dtype=object)
        area_of = {name: i for i, name in enumerate(AREA_NAMES)}
        unit_of = {u: i for i, u in enumerate(UNITS)}
        self.area = np.array([area_of.get(m.area, HQ) for m in staff], dtype=np.int64)
        self.home = np.array([m.home_area for m in staff], dtype=np.int64)
        self.unit = np.array([unit_of[m.spec.unit] for m in staff], dtype=np.int64)
        self.role = [m.spec.role for m in staff]
        works = np.array([m.works for m in staff])
        group = self.area * len(UNITS) + self.unit
        working = np.flatnonzero(works)
        order = working[np.argsort(group[working], kind="stable")]
        self.members = order
        sizes = np.bincount(group[order], minlength=(HQ + 1) * len(UNITS))
        self.size = sizes
        self.start = np.concatenate(([0], np.cumsum(sizes)[:-1]))
        self.works = works

    def group(self, area: np.ndarray | int, unit: str) -> np.ndarray:
        return np.asarray(area) * len(UNITS) + UNITS.index(unit)

    def pick(self, gen: np.random.Generator, group: np.ndarray) -> np.ndarray:
        """A working member of each group, or -1 where the group is empty."""
        size = self.size[group]
        at = self.start[group] + (gen.random(group.size) * size).astype(np.int64)
        return np.where(size > 0, self.members[np.minimum(at, len(self.members) - 1)], -1)

    def in_units(self, units: tuple[str, ...]) -> np.ndarray:
        wanted = np.isin(self.unit, [UNITS.index(u) for u in units])
        return np.flatnonzero(wanted & self.works)

    def anyone(self, gen: np.random.Generator, n: int) -> np.ndarray:
        """Working members, any area or unit."""
        return self.members[gen.integers(0, len(self.members), n)]

    def sample(
        self, rng: random.Random, area: int, units: tuple[str, ...], k: int, but: int = -1
    ) -> list[int]:
        """Up to ``k`` working members of the area's units, never ``but``."""
        groups = [int(self.group(area, u)) for u in units]
        spans = [(int(self.start[g]), int(self.size[g])) for g in groups]
        total = sum(size for _, size in spans)
        chosen = []
        for n in rng.sample(range(total), min(total, k + 1)):
            for lo, size in spans:
                if n < size:
                    chosen.append(int(self.members[lo + n]))
                    break
                n -= size
        return [i for i in chosen if i != but][:k]

    def teams(self, chosen: np.ndarray, cap: int = 6) -> list[str]:
        """JSON arrays of user ids from (n, k) member indexes (-1: none), repeats dropped."""
        chosen = distinct(chosen, cap)
        return ["[" + t[1:] + "]" for t in concat(self.quoted[chosen])]


def distinct(keys: np.ndarray, cap: int | None = None) -> np.ndarray:
    """(n, k) keys with -1 for none: each row's repeats set to -1, then all past ``cap``."""
    keys = keys.copy()
    for k in range(1, keys.shape[1]):
        for j in range(k):
            keys[:, k] = np.where(keys[:, k] == keys[:, j], -1, keys[:, k])
    if cap is not None:
        valid = keys >= 0
        keys[valid & (np.cumsum(valid, axis=1) > cap)] = -1
    return keys


def concat(parts: np.ndarray) -> list[str]:
    """Each row of an (n, k) array of strings joined, as a list."""
    out = parts[:, 0].copy()
    for j in range(1, parts.shape[1]):
        out = out + parts[:, j]
    return list(out.tolist())
