"""Synthetic force data for accesswatch: the five reference and event feeds
plus labels naming every misuse incident (scenarios S01-S13, and with
``variants`` the V codes of ``variants.py``).

>>> summary = generate_force(pathlib.Path("out"), staff=150, days=7, seed=1)  # doctest: +SKIP
>>> summary["incidents"]["S01"]  # doctest: +SKIP
6
"""

from __future__ import annotations

import pathlib
import random
from datetime import UTC, datetime
from typing import Any

from .behaviour import Work
from .calls import Dispatcher
from .clock import to_ms
from .force import build_force
from .incidents import SCENARIOS, incidents_per_scenario, plan_incidents
from .ledger import Ledger
from .special import control_room_surge, plan_major_incident, tail_off, work_major_incident
from .variants import VARIANTS, plan_variants
from .writer import write_force

__all__ = ["GENERATOR", "SCENARIOS", "VARIANTS", "generate_force", "incidents_per_scenario"]

GENERATOR = "accesswatch.generate/1"
DEFAULT_START = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday
MIN_STAFF = 40
MIN_DAYS = 3  # S07 is the same person on three separate days


def generate_force(
    out_dir: pathlib.Path,
    *,
    staff: int,
    days: int,
    seed: int,
    start: datetime | None = None,
    invalid_lines: int = 0,
    variants: bool = False,
) -> dict[str, Any]:
    """Write events, staff, subjects, cases, duties and labels for one force.

    The same arguments always give byte-identical files.  ``variants`` adds the
    misuse shaped to stay under the rules' thresholds (``variants.py``), with
    everything else as it would be without them.
    """
    if staff < MIN_STAFF:
        raise ValueError(f"staff={staff}: at least {MIN_STAFF} are needed to place every scenario")
    if days < MIN_DAYS:
        raise ValueError(f"days={days}: at least {MIN_DAYS} are needed to place every scenario")
    if invalid_lines < 0:
        raise ValueError(f"invalid_lines={invalid_lines}: must not be negative")
    begin = to_ms(start or DEFAULT_START)
    master = random.Random(seed)
    per = incidents_per_scenario(staff, days)
    force, book = build_force(random.Random(master.getrandbits(64)), staff, days, begin, per)
    major = plan_major_incident(random.Random(master.getrandbits(64)), force, book, days)
    ledger = Ledger(random.Random(master.getrandbits(64)), force)
    work_rng = random.Random(master.getrandbits(64))
    dispatcher = Dispatcher(work_rng, force, ledger)
    Work(work_rng, force, ledger, dispatcher).run()
    special_rng = random.Random(master.getrandbits(64))
    if major is not None:
        work_major_incident(special_rng, force, ledger, major)
    tail_off(special_rng, force, ledger)
    control_room_surge(special_rng, force, ledger, dispatcher)
    incidents = plan_incidents(random.Random(master.getrandbits(64)), force, ledger, per)
    writer_rng = random.Random(master.getrandbits(64))
    if variants:  # drawn last, so the force without them is unchanged
        used = {inc.user_id for inc in incidents}
        incidents += plan_variants(random.Random(master.getrandbits(64)), force, ledger, per, used)
    events = sorted(ledger.events)
    meta = {"generator": GENERATOR, "seed": seed, "staff": staff, "days": days}
    write_force(pathlib.Path(out_dir), force, events, incidents, meta, invalid_lines, writer_rng)
    counts: dict[str, int] = {code: 0 for code in SCENARIOS + (VARIANTS if variants else ())}
    for inc in incidents:
        counts[inc.scenario] += 1
    return {
        "staff": len(force.staff),
        "subjects": len(force.subjects),
        "cases": len(force.cases),
        "duties": sum(len(m.duties) for m in force.staff),
        "events": len(events),
        "invalid_lines": invalid_lines,
        "incidents": counts,
    }
