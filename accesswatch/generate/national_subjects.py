"""Subject records at national scale, streamed a batch at a time.

Each batch is drawn with numpy (one generator per kind, area and batch, so the
output does not depend on how batches are cut) and written as JSON lines
built from pre-encoded fragments: names, postcodes in each written form, flag
lists. Proportions follow ``subjects.py``: households of one to five sharing a
postcode and often a surname, the same type mix and flag shares.
"""

from __future__ import annotations

from collections.abc import Iterator

import msgspec
import numpy as np

from . import names
from .national_layout import AREA_NAMES, INWARD, KindRange, Layout, Postcodes, json_text
from .national_staff import TiedPerson
from .subjects import _PERSON_FLAGS

BATCH = 100_000
_ENCODE = msgspec.json.Encoder().encode
_HOUSEHOLD = np.cumsum([35, 30, 17, 12, 6]) / 100  # sizes 1-5
_SURNAME_FORM = np.array([0.80, 0.92, 0.95, 0.97])  # as is, UPPER, lower, "  lower", "name "
_POSTCODE_FORM = np.array([0.80, 0.90, 0.95])  # canonical, no space, lower, two spaces
_VRM_LETTERS = "ABCDEFGHJKLMNOPRSTUVWXY"
_AGES = [a + plus for plus in (0, 50) for a in range(7, 26)]


def _flag_lists(flags: tuple[str, ...]) -> list[str]:
    """JSON for every subset of ``flags``, indexed by bit mask."""
    return [
        json_text([f for bit, f in enumerate(flags) if mask >> bit & 1])
        for mask in range(1 << len(flags))
    ]


class _Tables:
    def __init__(self, surnames: tuple[list[str], list[float]]) -> None:
        pool, cum = surnames
        self.cum = np.array(cum)
        self.n_surnames = len(pool)
        forms = (
            lambda s: s,
            str.upper,
            str.lower,
            lambda s: f"  {s.lower()}",
            lambda s: f"{s} ",
        )
        self.surname = [json_text(form(s)) for form in forms for s in pool]
        self.forename: list[str] = []
        self.forename_offset = []
        for group in (names.FORENAMES_F, names.FORENAMES_M):
            self.forename_offset.append(len(self.forename))
            for first in group:
                for middle in group:
                    text = first if middle == first else f"{first} {middle}"
                    self.forename.append(json_text(text))
        self.group_size = np.array([len(names.FORENAMES_F), len(names.FORENAMES_M)])
        self.forename_offset_np = np.array(self.forename_offset)
        self.person_flags = _flag_lists(tuple(f for f, _ in _PERSON_FLAGS))
        self.flag_share = np.array([share for _, share in _PERSON_FLAGS])
        self.area = [json_text(a) for a in AREA_NAMES]
        self.pair = [a + b for a in _VRM_LETTERS for b in _VRM_LETTERS]
        self.triple = [a + b + c for a in _VRM_LETTERS for b in _VRM_LETTERS for c in _VRM_LETTERS]
        self.age = [f"{a:02d}" for a in _AGES]
        self.street = [f"{s} {k}" for s in names.STREETS for k in names.STREET_KINDS]


def _choice(gen: np.random.Generator, cum: np.ndarray, n: int) -> np.ndarray:
    """Index into a distribution given by cumulative shares (the last one implied)."""
    return np.searchsorted(cum, gen.random(n), side="right")


class SubjectWriter:
    def __init__(
        self,
        layout: Layout,
        postcodes: Postcodes,
        surnames: tuple[list[str], list[float]],
        seed: int,
    ) -> None:
        self.layout = layout
        self.pc = postcodes
        self.t = _Tables(surnames)
        self.seed = seed

    def _gen(self, kind: int, area: int, batch: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, kind, area, batch])

    def _batches(self, r: KindRange) -> Iterator[tuple[int, int, np.ndarray]]:
        for area in range(len(AREA_NAMES)):
            start, length = int(r.block_start[area]), int(r.block_len[area])
            for b, lo in enumerate(range(start, start + length, BATCH)):
                yield area, b, np.arange(lo, min(lo + BATCH, start + length), dtype=np.int64)

    def chunks(self, tied: list[TiedPerson]) -> Iterator[list[str]]:
        """Every subject, in file order (by kind), a batch of lines at a time."""
        for k, (kind, r) in enumerate(self.layout.kinds.items()):
            if kind == "person":
                yield from self._tied(r, tied)
            for area, b, index in self._batches(r):
                gen = self._gen(k, area, b)
                ids = r.ids(index)
                if kind == "person":
                    yield self._people(gen, area, ids)
                elif kind in ("vehicle", "address"):
                    yield self._placed(gen, kind, area, ids)
                else:
                    yield self._unplaced(gen, kind, area, ids)

    def _tied(self, r: KindRange, tied: list[TiedPerson]) -> Iterator[list[str]]:
        for lo in range(0, self.layout.ties, BATCH):
            hi = min(lo + BATCH, self.layout.ties)
            ids = r.ids(np.arange(lo, hi, dtype=np.int64))
            yield [
                _ENCODE(
                    {
                        "subject_id": sid,
                        "subject_type": "person",
                        "surname": p[0],
                        "forenames": p[1],
                        "postcode": p[2],
                        "area": p[3],
                        "flags": p[4],
                    }
                ).decode()
                for sid, p in zip(ids, tied[lo:hi], strict=True)
            ]

    def _people(self, gen: np.random.Generator, area: int, ids: list[str]) -> list[str]:
        t, n = self.t, len(ids)
        sizes = _choice(gen, _HOUSEHOLD, n) + 1
        home = np.repeat(np.arange(n), sizes)[:n]  # household of each person
        district = self.pc.district(gen, np.full(n, area))[home]
        inward = gen.integers(0, len(INWARD), n)[home]
        placed = (gen.random(n) >= 0.07)[home]
        family = (gen.random(n) < 0.65)[home]
        family_name = np.searchsorted(t.cum, gen.random(n) * t.cum[-1])[home]
        own_name = np.searchsorted(t.cum, gen.random(n) * t.cum[-1])
        surname = np.where(family, family_name, own_name)
        surname = np.minimum(surname, t.n_surnames - 1) + t.n_surnames * _choice(
            gen, _SURNAME_FORM, n
        )
        group = (gen.random(n) >= 0.5).astype(np.int64)
        size = t.group_size[group]
        first = (gen.random(n) * size).astype(np.int64)
        middle = np.where(gen.random(n) < 0.35, (gen.random(n) * size).astype(np.int64), first)
        forename = t.forename_offset_np[group] + first * size + middle
        form = _choice(gen, _POSTCODE_FORM, n)
        out = np.where(placed, form * len(self.pc.outward) + district, self.pc.null_out)
        inn = np.where(placed, form * len(INWARD) + inward, self.pc.null_in)
        bits = gen.random((n, len(t.flag_share))) < t.flag_share
        mask = bits @ (1 << np.arange(len(t.flag_share)))
        sn, fn, oq, iq, fl = (
            t.surname,
            t.forename,
            self.pc.out_json,
            self.pc.in_json,
            t.person_flags,
        )
        a = t.area[area]
        return [
            f'{{"subject_id":"{sid}","subject_type":"person","surname":{sn[s]},'
            f'"forenames":{fn[f]},"postcode":{oq[o]}{iq[i]},"area":{a},"flags":{fl[m]}}}'
            for sid, s, f, o, i, m in zip(
                ids,
                surname.tolist(),
                forename.tolist(),
                out.tolist(),
                inn.tolist(),
                mask.tolist(),
                strict=True,
            )
        ]

    def _placed(self, gen: np.random.Generator, kind: str, area: int, ids: list[str]) -> list[str]:
        """Vehicles and addresses: a canonical postcode in the area, and a label of their own."""
        t, n = self.t, len(ids)
        district = self.pc.district(gen, np.full(n, area)).tolist()
        inward = gen.integers(0, len(INWARD), n).tolist()
        outward = self.pc.outward
        postcode = [f"{outward[d]} {INWARD[i]}" for d, i in zip(district, inward, strict=True)]
        a = t.area[area]
        if kind == "vehicle":
            flags = ["[]", '["stolen"]', '["anpr_marker"]', '["restricted"]']
            which = _choice(gen, np.cumsum([95, 2, 2.7, 0.3])[:-1] / 100, n).tolist()
            pair = gen.integers(0, len(t.pair), n).tolist()
            age = gen.integers(0, len(t.age), n).tolist()
            triple = gen.integers(0, len(t.triple), n).tolist()
            return [
                f'{{"subject_id":"{sid}","subject_type":"vehicle","postcode":"{pc}","area":{a},'
                f'"flags":{flags[w]},"vrm":"{t.pair[p]}{t.age[g]} {t.triple[x]}"}}'
                for sid, pc, w, p, g, x in zip(ids, postcode, which, pair, age, triple, strict=True)
            ]
        flags = ["[]", '["warning_markers"]', '["protected"]']
        which = _choice(gen, np.cumsum([96.5, 3, 0.5])[:-1] / 100, n).tolist()
        number = gen.integers(1, 181, n).tolist()
        street = gen.integers(0, len(t.street), n).tolist()
        return [
            f'{{"subject_id":"{sid}","subject_type":"address","postcode":"{pc}","area":{a},'
            f'"flags":{flags[w]},"address":"{h} {t.street[s]}, {pc}"}}'
            for sid, pc, w, h, s in zip(ids, postcode, which, number, street, strict=True)
        ]

    def _unplaced(
        self, gen: np.random.Generator, kind: str, area: int, ids: list[str]
    ) -> list[str]:
        """Incidents and other records: no postcode; some other records no area either."""
        n = len(ids)
        share = 0.05 if kind == "incident" else 0.10
        flags = np.where(gen.random(n) < share, '["sensitive"]', "[]").tolist()
        a = self.t.area[area]
        areas = (
            np.where(gen.random(n) < 0.3, "null", a) if kind == "other" else np.full(n, a)
        ).tolist()
        return [
            f'{{"subject_id":"{sid}","subject_type":"{kind}","postcode":null,"area":{ar},'
            f'"flags":{f}}}'
            for sid, ar, f in zip(ids, areas, flags, strict=True)
        ]
