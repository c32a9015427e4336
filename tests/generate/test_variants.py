"""Variants: labelled under their own codes, off by default, and just under the rules."""

from __future__ import annotations

import bisect
import hashlib
import json
import pathlib
from collections.abc import Iterable

import msgspec

from accesswatch.backtest import run_backtest
from accesswatch.generate import VARIANTS, generate_force, incidents_per_scenario
from accesswatch.reference import load_reference_dir
from tests.generate.gen_feed import SMALL, Feed, instant

FILES = ("events.jsonl", "staff.jsonl", "subjects.jsonl", "cases.jsonl", "duties.jsonl",
         "labels.json")


def _digest(path: pathlib.Path) -> dict[str, str]:
    return {name: hashlib.sha256((path / name).read_bytes()).hexdigest() for name in FILES}


def test_without_the_flag_the_force_is_what_it_was(tmp_path: pathlib.Path, feed: Feed) -> None:
    generate_force(tmp_path, **SMALL, variants=False)
    assert _digest(tmp_path) == _digest(feed.path)


def test_the_flag_adds_the_variants_and_changes_nothing_else(
    feed: Feed, variant_feed: Feed
) -> None:
    for name in ("staff.jsonl", "subjects.jsonl", "cases.jsonl", "duties.jsonl"):
        assert (variant_feed.path / name).read_bytes() == (feed.path / name).read_bytes(), name

    def plain(events: Iterable[dict]) -> set[str]:  # audit_seq counts ATHENA lines: it moves
        return {json.dumps({k: v for k, v in e.items() if k != "audit_seq"}, sort_keys=True)
                for e in events}

    added = plain(variant_feed.events) - plain(feed.events)
    assert plain(feed.events) <= plain(variant_feed.events)
    variant_ids = {e for inc in variant_feed.labels["incidents"] if inc["scenario"] in VARIANTS
                   for e in inc["event_ids"]}
    assert {json.loads(e)["event_id"] for e in added} == variant_ids
    scenarios = [i for i in variant_feed.labels["incidents"] if i["scenario"] not in VARIANTS]
    assert scenarios == feed.labels["incidents"]


def test_each_variant_has_its_share_of_incidents_by_different_members(
    variant_feed: Feed,
) -> None:
    per = incidents_per_scenario(SMALL["staff"], SMALL["days"])
    assert {c: variant_feed.summary["incidents"][c] for c in VARIANTS} == dict.fromkeys(
        VARIANTS, per)
    variants = [i for i in variant_feed.labels["incidents"] if i["scenario"] in VARIANTS]
    assert len(variants) == per * len(VARIANTS)
    assert next(i["incident_id"] for i in variants if i["scenario"] == "V08") == "V08-001"
    for inc in variants:
        assert {variant_feed.by_id[e]["user_id"] for e in inc["event_ids"]} == {inc["user_id"]}
    assert len({i["user_id"] for i in variants}) == len(variants)


def test_no_shipped_rule_fires_on_a_variant(variant_feed: Feed) -> None:
    """What makes them variants: the rules they shadow (and every other) stay quiet on them,
    with the member's ordinary work around them counted in."""
    ref, _ = load_reference_dir(variant_feed.path)
    alerts = run_backtest(variant_feed.path / "events.jsonl", ref).alerts.values()
    variant_of = {e: inc["incident_id"] for inc in variant_feed.labels["incidents"]
                  if inc["scenario"] in VARIANTS for e in inc["event_ids"]}
    fired = {(a.rule_id, variant_of[e]) for a in alerts for e in a.event_ids if e in variant_of}
    assert not fired, sorted(fired)[:10]
    # ... while the same rules catch the scenarios beside them.
    scenario_ids = {e for inc in variant_feed.labels["incidents"] if inc["scenario"] not in
                    VARIANTS for e in inc["event_ids"]}
    assert sum(1 for a in alerts if scenario_ids.intersection(a.event_ids)) >= 13


def _most_within(times: list[float], span: float, around: Iterable[float] | None = None) -> int:
    """The most of ``times`` in any window ``span`` long (that holds one of ``around``)."""
    times = sorted(times)
    spots = None if around is None else list(around)
    best = 0
    for i, t in enumerate(times):
        if spots is None or any(t <= x <= t + span for x in spots):
            best = max(best, bisect.bisect_right(times, t + span) - i)
    return best


def test_variants_keep_to_their_limits(variant_feed: Feed) -> None:
    """Each shape, measured on the feed with the member's own events counted in."""
    mine: dict[str, list[dict]] = {}
    for e in variant_feed.events:
        mine.setdefault(e["user_id"], []).append(e)
    for inc in variant_feed.labels["incidents"]:
        code = inc["scenario"]
        if code not in VARIANTS:
            continue
        events = mine[inc["user_id"]]
        opens = [e["_t"] for e in events if e.get("subject_id")]
        prints = [e["_t"] for e in events if e["action"] in ("print", "export")]
        own = [variant_feed.by_id[e] for e in inc["event_ids"]]
        # Windows holding one of the variant's opens (AW-008: 15) or prints (AW-014: 10).
        opened = [e["_t"] for e in own if e.get("subject_id")]
        printed = [e["_t"] for e in own if e["action"] in ("print", "export")]
        assert _most_within(opens, 2 * 3600, opened) <= 14, inc["incident_id"]
        assert _most_within(prints, 3600, printed) <= 9, inc["incident_id"]
        assert not any(variant_feed.justified(e) for e in own if e.get("subject_id"))
        if code == "V09":  # runs of people in id order, never 20 in five minutes
            views = sorted((e["_t"], e["subject_id"]) for e in own if e["action"] == "view")
            assert _most_within([t for t, _ in views], 300) <= 12
            assert len(views) >= 14
        if code == "V12":
            assert len([e for e in own if e["action"] in ("print", "export")]) >= 12
        if code == "V13":  # three people from another area, again and again, on one day
            home = variant_feed.staff[inc["user_id"]]["area"]
            people = {e["subject_id"] for e in own if e.get("subject_id")}
            assert len(people) == 3
            assert all(variant_feed.subjects[p]["area"] != home for p in people)
            assert len({e["ts"][:10] for e in own}) == 1
        if code == "V08":
            hours = (max(e["_t"] for e in own) - min(e["_t"] for e in own)) / 3600
            assert hours >= 2 and sum(1 for e in own if e["action"] == "view") >= 12
    assert instant(variant_feed.labels["incidents"][0]["first_ts"]) > 0


def test_labels_list_variants_after_scenarios_in_the_agreed_shape(variant_feed: Feed) -> None:
    codes = [i["scenario"] for i in variant_feed.labels["incidents"]]
    assert codes == sorted(codes)
    for inc in variant_feed.labels["incidents"]:
        assert set(inc) == {"incident_id", "scenario", "user_id", "event_ids", "first_ts",
                            "last_ts"}
    assert msgspec.json.decode((variant_feed.path / "labels.json").read_bytes())["staff"] == (
        SMALL["staff"])
