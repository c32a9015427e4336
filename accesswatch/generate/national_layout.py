"""Where every record of a national reference set sits, without holding the records.

``generate_reference`` streams tens of millions of subjects, so nothing may be
kept per subject. Instead each kind of record is a numbered range cut into one
block per policing area: record ``i`` of a kind has the id
``{prefix}{KIND}-{base + (mult * i + offset) % n}``, a scramble that keeps ids
unique and gives no area away, and a case can name a subject of its own area by
drawing an ``i`` from that area's block. Person ``0 .. ties - 1`` are the records
tied to staff (their own record, family, neighbours), written from the staff side.

Postcodes: a force's seven areas keep their names, but at national scale their
few dozen districts would put a hundred people at every postcode. Each area is
given a slice of the UK's other postcode districts instead, so households stay
households, and no padding subject shares a postcode with the real force's staff
unless it is tied to padding staff.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass

import msgspec
import numpy as np

from . import names
from .subjects import _MIX, _PREFIX

# File order is id order: LOC, OBJ, OCC, PER, VEH.
KINDS = ("address", "other", "incident", "person", "vehicle")
AREA_NAMES = tuple(a.name for a in names.AREAS)
AREA_WEIGHTS = np.array([a.weight for a in names.AREAS]) / sum(a.weight for a in names.AREAS)
ID_PREFIX = re.compile(r"[A-Za-z0-9_.:-]*")
MIN_SUBJECTS = 1_000

# UK postcode areas other than the force's own (LS, BD, HX, HD, WF).
_NATIONAL_TEXT = """
    AB AL B BA BB BH BL BN BR BS CA CB CF CH CM CO CR CT CV CW DA DD DE DG DH DL DN DT DY E EC
    EH EN EX FK FY G GL GU HA HG HP HR HS HU IG IP IV KA KT KW KY L LA LD LE LL LN LU M ME MK ML
    N NE NG NN NP NR NW OL OX PA PE PH PL PO PR RG RH RM S SA SE SG SK SL SM SN SO SP SR SS ST
    SW SY TA TD TF TN TQ TR TS TW UB W WA WC WD WN WR WS WV YO ZE
"""
_NATIONAL = tuple(_NATIONAL_TEXT.split())
UNIT_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"  # never C, I, K, M, O or V
INWARD = [f"{d}{a}{b}" for d in range(10) for a in UNIT_LETTERS for b in UNIT_LETTERS]


def json_text(value: object) -> str:
    """A value as JSON text, for building lines from fragments."""
    return msgspec.json.encode(value).decode()


def split(total: int, weights: np.ndarray) -> list[int]:
    """Largest-remainder rounding: whole counts in proportion that add up to ``total``."""
    exact = weights * total / weights.sum()
    counts = [int(v) for v in exact]
    order = sorted(range(len(exact)), key=lambda i: (-(exact[i] - counts[i]), i))
    for i in order[: total - sum(counts)]:
        counts[i] += 1
    return counts


class Postcodes:
    """National districts per area, and postcodes as JSON fragments in the ways records write them.

    A postcode is (district, inward): ``district`` indexes ``outward``, ``inward``
    indexes ``INWARD`` ("2AB"). Forms: 0 canonical, 1 no space, 2 lower case, 3 two spaces.
    """

    def __init__(self) -> None:
        districts = [f"{a}{n}" for a in _NATIONAL for n in range(1, 21)]
        self.outward = districts
        self.by_area = [list(range(k, len(districts), len(AREA_NAMES))) for k in range(7)]
        self.area_count = np.array([len(r) for r in self.by_area])
        n = len(districts)
        seps = (" ", "", " ", "  ")
        self.out_json = [
            '"' + (d.lower() if form == 2 else d) + seps[form]
            for form in range(4)
            for d in districts
        ] + ["null"]
        self.in_json = [
            (i.lower() if form == 2 else i) + '"' for form in range(4) for i in INWARD
        ] + [""]
        self.null_out, self.null_in = 4 * n, 4 * len(INWARD)

    def district(self, gen: np.random.Generator, areas: np.ndarray) -> np.ndarray:
        """A district of each area (``areas`` index ``AREA_NAMES``)."""
        k = (gen.random(areas.size) * self.area_count[areas]).astype(np.int64)
        return k * len(AREA_NAMES) + areas

    def canonical(self, rng: random.Random, area: int) -> str:
        """One postcode in the area, 'NE12 3AB' (for staff, drawn one at a time)."""
        return f"{self.outward[rng.choice(self.by_area[area])]} {rng.choice(INWARD)}"


@dataclass(frozen=True, slots=True)
class KindRange:
    """Ids of one kind of record: ``n`` of them, blocks per area, a scramble."""

    prefix: str  # "{id prefix}PER-"
    n: int
    base: int
    mult: int
    offset: int
    first: int  # index of the first record in the area blocks (after the ties)
    block_start: np.ndarray
    block_len: np.ndarray

    def numbers(self, index: np.ndarray) -> np.ndarray:
        return self.base + (self.mult * index + self.offset) % self.n

    def ids(self, index: np.ndarray) -> list[str]:
        p = self.prefix
        return [p + str(v) for v in self.numbers(index).tolist()]

    def id_of(self, index: int) -> str:
        return f"{self.prefix}{self.base + (self.mult * index + self.offset) % self.n}"

    def pick(self, gen: np.random.Generator, areas: np.ndarray) -> np.ndarray:
        """Indexes of one record of this kind from each area's block."""
        return self.block_start[areas] + (gen.random(areas.size) * self.block_len[areas]).astype(
            np.int64
        )


def _kind_range(rng: random.Random, prefix: str, n: int, first: int) -> KindRange:
    width = max(7, len(str(n)) + 1)  # every number has the same width: no padding needed
    base = rng.randrange(10 ** (width - 1), 10**width - n)
    mult = 1
    if n > 2:
        mult = rng.randrange(n // 3 + 1, n)
        while math.gcd(mult, n) != 1:  # n - 1 is coprime: this ends below n
            mult += 1
    lens = np.array(split(n - first, AREA_WEIGHTS), dtype=np.int64)
    starts = first + np.concatenate(([0], np.cumsum(lens)[:-1])).astype(np.int64)
    return KindRange(prefix, n, base, mult, rng.randrange(n), first, starts, lens)


@dataclass(frozen=True, slots=True)
class Layout:
    kinds: dict[str, KindRange]
    ties: int  # person records 0 .. ties - 1 belong to staff

    @property
    def total(self) -> int:
        return sum(k.n for k in self.kinds.values())


def plan_layout(rng: random.Random, subjects: int, ties: int, id_prefix: str) -> Layout:
    """Counts per kind (the full generator's mix) and their id ranges.

    At most half the people can be tied to staff: ``ties`` is cut to that.
    """
    shares = np.array([dict(_MIX)[k] for k in KINDS])
    counts = dict(zip(KINDS, split(subjects, shares), strict=True))
    ties = min(ties, counts["person"] // 2)
    kinds = {
        kind: _kind_range(
            rng, f"{id_prefix}{_PREFIX[kind]}-", counts[kind], ties if kind == "person" else 0
        )
        for kind in KINDS
    }
    return Layout(kinds, ties)
