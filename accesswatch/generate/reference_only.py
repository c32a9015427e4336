"""Reference data at national scale: staff, subjects, cases and duties, and no events.

``accesswatch generate --reference-only`` pads a force's reference feeds to the
size of a national deployment (hundreds of thousands of staff, tens of millions
of subjects) to measure what holding them costs. The records have the full
generator's shapes and proportions; every id starts with ``id_prefix`` so the
padding can be merged with a real force's files without a collision, and
nothing in it refers outside it. Memory grows with staff, not with subjects:
subjects and cases are drawn and written a batch at a time.

>>> generate_reference(pathlib.Path("pad"), staff=300, subjects=20_000, seed=1,
...                    id_prefix="N")  # doctest: +SKIP
{'staff': 300, 'subjects': 20000, 'cases': 7830, 'duties': 2389}
"""

from __future__ import annotations

import pathlib
import random
from collections.abc import Iterable
from datetime import UTC, datetime

from . import names
from .clock import to_ms
from .national_cases import CaseWriter
from .national_layout import ID_PREFIX, MIN_SUBJECTS, Postcodes, plan_layout
from .national_staff import build_members, duty_lines, staff_lines, tie_people
from .national_subjects import SubjectWriter

DEFAULT_START = datetime(2026, 3, 2, tzinfo=UTC)  # as the full generator's
SUBJECTS_PER_MEMBER = 31  # what the full generator makes (30 plus the staff ties)
MIN_STAFF = 1
_WRITE_AT = 8 << 20


def default_subjects(staff: int) -> int:
    return max(MIN_SUBJECTS, SUBJECTS_PER_MEMBER * staff)


def check_id_prefix(id_prefix: str) -> str:
    if not ID_PREFIX.fullmatch(id_prefix):
        raise ValueError(f"id prefix {id_prefix!r}: use only letters, digits and _ . : -")
    return id_prefix


def generate_reference(
    out_dir: pathlib.Path,
    *,
    staff: int,
    subjects: int,
    seed: int,
    days: int = 14,
    id_prefix: str = "",
    start: datetime | None = None,
) -> dict[str, int]:
    """Write staff.jsonl, subjects.jsonl, cases.jsonl and duties.jsonl; the count of each.

    The same arguments always give byte-identical files.
    """
    if staff < MIN_STAFF:
        raise ValueError(f"staff={staff}: at least {MIN_STAFF} is needed")
    if subjects < MIN_SUBJECTS:
        raise ValueError(f"subjects={subjects}: at least {MIN_SUBJECTS:,} are needed")
    if days < 1:
        raise ValueError(f"days={days}: at least 1 is needed")
    check_id_prefix(id_prefix)
    begin = to_ms(start or DEFAULT_START)
    master = random.Random(seed)
    rngs = [random.Random(master.getrandbits(64)) for _ in range(4)]
    postcodes = Postcodes()
    surnames = names.surname_pool(rngs[0])
    members = build_members(rngs[0], staff, begin, surnames, postcodes, id_prefix)
    tied, own = tie_people(rngs[1], members, surnames, postcodes)
    layout = plan_layout(rngs[1], subjects, len(tied), id_prefix)
    del tied[layout.ties :]  # too few people for every tie: the first (own records) stay
    person = layout.kinds["person"]
    owners = [(m, k) for k, m in enumerate(own) if k < layout.ties]  # (member, person)
    for m, k in owners:
        members[m].person_id = person.id_of(k)

    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    counts = {
        "staff": _write(out / "staff.jsonl", _batched(staff_lines(members))),
        "subjects": _write(
            out / "subjects.jsonl",
            SubjectWriter(layout, postcodes, surnames, master.getrandbits(64)).chunks(tied),
        ),
    }
    del tied
    cases = CaseWriter(layout, members, owners, begin, days, master.getrandbits(64), id_prefix)
    counts["cases"] = _write(out / "cases.jsonl", cases.chunks())
    counts["duties"] = _write(
        out / "duties.jsonl", _batched(duty_lines(rngs[2], members, begin, days))
    )
    return counts


def _batched(lines: Iterable[str], size: int = 50_000) -> Iterable[list[str]]:
    batch: list[str] = []
    for line in lines:
        batch.append(line)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _write(path: pathlib.Path, chunks: Iterable[list[str]]) -> int:
    """Write each chunk's lines in writes of a few MB; the number of lines written."""
    count, held = 0, 0
    pending: list[bytes] = []
    with path.open("wb") as fh:
        for chunk in chunks:
            if not chunk:
                continue
            data = ("\n".join(chunk) + "\n").encode()
            count += len(chunk)
            pending.append(data)
            held += len(data)
            if held >= _WRITE_AT:
                fh.write(b"".join(pending))
                pending, held = [], 0
        fh.write(b"".join(pending))
    return count
