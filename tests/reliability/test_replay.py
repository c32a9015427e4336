"""Item 4: the same input replayed gives the same answer.

Two pipelines (fresh app ids and topics each) get the same feed: their alert
topics must hold the same alert ids, which are the backtest's, each once.
And a reference topic read again from the beginning must rebuild the same
tables: two readers of the same ``ref.*`` topics, each from offset 0 (with an
update and a tombstone on them besides the files), must end with reference
data equal to each other and to the files with the same changes applied.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import msgspec
import pytest
from prometheus_client import CollectorRegistry

from accesswatch.contract.reference import decode_reference
from accesswatch.reference import ReferenceData, load_reference_dir
from streams.metrics import Metrics
from streams.reference_feed import ReferenceFeed
from streams.settings import Settings
from streams.topics import check_topics
from tests.reliability.harness import (
    Figures,
    Force,
    Ledger,
    alerts_settled,
    dead_letters,
    duplicates,
    pipeline_env,
    prepare,
    produce,
    published,
    wait_committed_to_end,
)
from tests.streams.conftest import wait_until
from tests.streams.live import WorkerProcess
from tests.streams.live import produce as produce_one

pytestmark = pytest.mark.broker


def test_the_same_feed_twice_gives_the_same_alerts(broker: str, force: Force, ledger: Ledger,
                                                   tmp_path: Path) -> None:
    runs = []
    for name in ("first", "second"):
        env = pipeline_env(broker, tmp_path)
        s = prepare(env, force, tmp_path)
        produce(s, force, force.lines)
        runs.append((s, WorkerProcess(env, tmp_path, f"replay-{name}")))
    try:
        for _, w in runs:
            w.wait_ready()
        got = []
        for s, _ in runs:
            wait_committed_to_end(s)
            wait_until(lambda s=s: alerts_settled(s, force), 60,
                       "every alert at the backtest's content", every=0.3)
            got.append((published(s), dead_letters(s)))
    finally:
        for _, w in runs:
            w.stop()

    (first, dlq1), (second, dlq2) = got
    for name, records, dlq in (("first", first, dlq1), ("second", second, dlq2)):
        ledger.add(Figures(f"replay, {name} pipeline", sent=len(force.lines),
                           processed=force.valid, dead_lettered=len(dlq), lost=0,
                           duplicate_alerts=duplicates(records),
                           alerts=len({a["alert_id"] for a in records})))
    assert {a["alert_id"] for a in first} == {a["alert_id"] for a in second} == force.expected
    assert duplicates(first) == duplicates(second) == 0
    assert sorted(v for _, _, v in dlq1) == sorted(v for _, _, v in dlq2) == sorted(force.invalid)


def read_reference(s: Settings) -> ReferenceData:
    """Everything on the ``ref.*`` topics, read from the beginning as a worker does."""
    _, partitions = check_topics(s)

    async def read() -> ReferenceData:
        ref = ReferenceData()
        feed = ReferenceFeed(s, ref, Metrics(CollectorRegistry()), partitions)
        task = asyncio.create_task(feed.run())
        try:
            await asyncio.wait_for(feed.ready.wait(), 60)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        return ref

    return asyncio.run(read())


def tables(ref: ReferenceData) -> dict[str, Any]:
    """Everything the rules can ask of ``ref``: every record, roster, owner and area."""
    staff = {uid: ref.staff[uid] for uid in ref.staff}
    subjects = {sid: ref.subjects[sid] for sid in ref.subjects}
    areas = {s.area for s in subjects.values() if s.area} | {m.area for m in staff.values()}
    return {"staff": staff, "subjects": subjects,
            "cases": {c: ref.cases[c] for c in ref.cases},
            "rosters": {uid: (r.periods if (r := ref.roster(uid)) else None) for uid in staff},
            "owners": {m.person_id: ref.staff_person_owner(m.person_id)
                       for m in staff.values() if m.person_id},
            "listings": {sid: ref.cases_listing(sid) for sid in subjects},
            "areas": {area: ref.is_area(area) for area in areas}}


def test_a_reference_topic_read_again_rebuilds_the_same_tables(broker: str, force: Force,
                                                                tmp_path: Path) -> None:
    env = pipeline_env(broker, tmp_path)
    s = prepare(env, force, tmp_path)
    expected, problems = load_reference_dir(force.dir)
    assert not problems
    # A member becomes a leaver, another leaves the directory: an upsert and a tombstone.
    staff = [msgspec.json.decode(ln) for ln in (force.dir / "staff.jsonl").read_bytes()
             .splitlines() if ln.strip()]
    leaver, gone = {**staff[0], "status": "leaver"}, staff[1]
    raw = msgspec.json.encode(leaver)
    produce_one(s, s.topic_ref_staff, leaver["user_id"].encode(), raw)
    produce_one(s, s.topic_ref_staff, gone["user_id"].encode(), None)
    expected.apply("staff", leaver["user_id"], decode_reference("staff", raw))
    expected.apply("staff", gone["user_id"], None)

    once, twice = read_reference(s), read_reference(s)
    assert once.sizes() == twice.sizes() == expected.sizes()
    assert once.staff[leaver["user_id"]].status == "leaver"
    assert gone["user_id"] not in once.staff
    assert tables(once) == tables(twice) == tables(expected)
