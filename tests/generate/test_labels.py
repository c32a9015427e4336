"""Labels are true: each incident's events meet its scenario's definition in
the catalogue, checked with the tests' own reading of it (gen_feed.py)."""

from __future__ import annotations

from collections import defaultdict
from itertools import pairwise
from typing import Any

import pytest

from accesswatch.generate import SCENARIOS, incidents_per_scenario
from tests.generate.gen_feed import PROTECTIVE, SMALL, Feed, instant, name_key, pc_key

DAY = 86400.0

Incident = dict[str, Any]


def incidents(
    feed: Feed, code: str, *, searches: bool = False
) -> list[tuple[Incident, list[dict[str, Any]]]]:
    """Each incident with its events; by default only those that open a record.

    A search typed on the way to a misuse open is part of the misuse and is
    labelled too, but names no record, so the definitions below skip it.
    """
    out = []
    for inc in feed.labels["incidents"]:
        if inc["scenario"] == code:
            events = [feed.by_id[e] for e in inc["event_ids"]]
            if not searches:
                events = [e for e in events if e.get("subject_id")]
            assert events, inc["incident_id"]
            out.append((inc, events))
    assert out, f"no {code} incidents"
    return out


def test_labelled_events_that_open_nothing_are_searches_leading_to_an_open(feed: Feed) -> None:
    for inc in feed.labels["incidents"]:
        events = [feed.by_id[e] for e in inc["event_ids"]]
        for i, e in enumerate(events):
            if not e.get("subject_id"):
                assert e["action"] == "search" and e.get("query")
                later = [x for x in events[i + 1 :] if x.get("subject_id")]
                assert later and later[0]["_t"] - e["_t"] <= 60


def test_every_scenario_has_its_share_of_incidents_by_different_users(feed: Feed) -> None:
    want = incidents_per_scenario(SMALL["staff"], SMALL["days"])
    by_code: dict[str, list[str]] = defaultdict(list)
    for inc in feed.labels["incidents"]:
        by_code[inc["scenario"]].append(inc["user_id"])
    assert sorted(by_code) == list(SCENARIOS)
    for code, users in by_code.items():
        assert len(users) == want, code
        assert len(set(users)) == len(users), code


def test_labelled_events_exist_and_belong_to_the_incident_user(feed: Feed) -> None:
    seen: set[str] = set()
    for inc in feed.labels["incidents"]:
        assert inc["event_ids"]
        for eid in inc["event_ids"]:
            assert eid in feed.by_id
            assert feed.by_id[eid]["user_id"] == inc["user_id"]
            assert eid not in seen, "an event belongs to one incident"
            seen.add(eid)


def test_s01_own_record(feed: Feed) -> None:
    for inc, events in incidents(feed, "S01"):
        own = feed.staff[inc["user_id"]]["person_id"]
        assert own and 1 <= len(events) <= 3
        assert all(e["subject_id"] == own for e in events)


@pytest.mark.parametrize("code", ["S02", "S03"])
def test_s02_s03_family_and_neighbours_without_a_case(feed: Feed, code: str) -> None:
    for inc, events in incidents(feed, code):
        member = feed.staff[inc["user_id"]]
        for e in events:
            s = feed.subject(e)
            assert s is not None and s["subject_type"] == "person"
            assert pc_key(s.get("postcode")) == pc_key(member["home_postcode"]) is not None
            same_name = name_key(s.get("surname")) == name_key(member["surname"])
            assert same_name == (code == "S02")
            assert not feed.justified(e)


def test_s04_colleague_records_without_a_case(feed: Feed) -> None:
    for inc, events in incidents(feed, "S04"):
        own = feed.staff[inc["user_id"]].get("person_id")
        for e in events:
            s = feed.subject(e)
            assert s is not None and e["subject_id"] != own
            assert e["subject_id"] in feed.staff_person_ids or "staff" in s.get("flags", [])
            assert not feed.justified(e)


def test_s05_flagged_records_without_a_case(feed: Feed) -> None:
    for _, events in incidents(feed, "S05"):
        for e in events:
            s = feed.subject(e)
            assert s is not None and set(s.get("flags", [])) & set(PROTECTIVE)
            assert not feed.justified(e)


def test_s06_victims_not_on_an_assigned_open_case(feed: Feed) -> None:
    for _, events in incidents(feed, "S06"):
        for e in events:
            s = feed.subject(e)
            assert (
                s is not None and s["subject_type"] == "person" and "victim" in s.get("flags", [])
            )
            assert not feed.victim_covered(e)


def test_s07_same_person_three_separate_days(feed: Feed) -> None:
    for _, events in incidents(feed, "S07"):
        assert len({e["subject_id"] for e in events}) == 1
        assert feed.subjects[events[0]["subject_id"]]["subject_type"] == "person"
        assert len({int(e["_t"] // DAY) for e in events}) >= 3
        assert not any(feed.justified(e) for e in events)


def test_s08_many_times_the_usual_volume_mostly_without_a_case(feed: Feed) -> None:
    for inc, events in incidents(feed, "S08", searches=True):
        uid = inc["user_id"]
        span_h = (events[-1]["_t"] - events[0]["_t"]) / 3600
        assert span_h <= 2.0
        hours = sum(e - s for s, e in feed.duties[uid]) / 3600
        theirs = [e for e in feed.events if e["user_id"] == uid]
        ordinary = [e for e in theirs if e["event_id"] not in feed.labelled and e.get("subject_id")]
        usual = len(ordinary) / hours  # records opened per rostered duty hour
        harvested = [e for e in events if e.get("subject_id")]
        assert len(harvested) >= 4 * usual * max(span_h, 1.0) * 0.9
        assert sum(not feed.justified(e) for e in events) > len(events) / 2


def test_s09_many_distinct_records_seconds_apart(feed: Feed) -> None:
    for _, events in incidents(feed, "S09"):
        assert len({e["subject_id"] for e in events}) >= 20
        gaps = [b["_t"] - a["_t"] for a, b in pairwise(events)]
        assert all(1 <= g <= 16 for g in gaps)


def test_s10_every_event_well_outside_all_duties(feed: Feed) -> None:
    for inc, events in incidents(feed, "S10"):
        assert feed.duties.get(inc["user_id"]), "an off-duty incident needs a roster to be off"
        for e in events:
            assert feed.off_duty_by(e) > 30 * 60


def test_s11_inactive_accounts(feed: Feed) -> None:
    kinds = set()
    for inc, events in incidents(feed, "S11", searches=True):
        member = feed.staff[inc["user_id"]]
        first = min(e["_t"] for e in events)
        if member["status"] == "active":
            assert member.get("last_active") and first - instant(member["last_active"]) >= 60 * DAY
            assert not any(e["user_id"] == inc["user_id"] and e["_t"] < first for e in feed.events)
            kinds.add("idle")
        else:
            assert member["status"] in ("suspended", "leaver")
            kinds.add(member["status"])
    assert kinds == {"idle", "suspended", "leaver"}


def test_s12_bulk_print_or_export_in_a_short_span(feed: Feed) -> None:
    for _, events in incidents(feed, "S12", searches=True):
        assert len(events) >= 10
        assert all(e["action"] in ("print", "export") for e in events)
        assert events[-1]["_t"] - events[0]["_t"] <= 3600


def test_s13_other_area_without_a_case(feed: Feed) -> None:
    areas = feed.areas()
    for inc, events in incidents(feed, "S13"):
        home = feed.staff[inc["user_id"]]["area"]
        assert home in areas
        assert len({e["subject_id"] for e in events}) >= 5
        for e in events:
            s = feed.subject(e)
            assert s is not None and s.get("area") and s["area"] != home
            assert not feed.justified(e)
