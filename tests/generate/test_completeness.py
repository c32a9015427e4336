"""Labels are complete: no unlabelled event meets a scenario's definition, so
an alert on ordinary work really is a false alert."""

from __future__ import annotations

from collections import defaultdict

from tests.generate.gen_feed import PROTECTIVE, Feed, instant, name_key, pc_key

DAY = 86400.0


def unlabelled_opens(feed: Feed) -> list[dict]:
    return [e for e in feed.opens() if e["event_id"] not in feed.labelled]


def test_no_unlabelled_personal_lookups(feed: Feed) -> None:
    problems = []
    for e in unlabelled_opens(feed):
        member, s = feed.staff[e["user_id"]], feed.subjects[e["subject_id"]]
        if e["subject_id"] == member.get("person_id"):
            problems.append(("S01", e["event_id"]))
        if feed.justified(e):
            continue
        person = s["subject_type"] == "person"
        home = pc_key(member.get("home_postcode"))
        if person and home and pc_key(s.get("postcode")) == home:
            same = name_key(s.get("surname")) == name_key(member["surname"])
            problems.append(("S02" if same else "S03", e["event_id"]))
        if feed.staff_person_ids.get(e["subject_id"], e["user_id"]) != e[
            "user_id"
        ] or "staff" in s.get("flags", []):
            problems.append(("S04", e["event_id"]))
        if set(s.get("flags", [])) & set(PROTECTIVE):
            problems.append(("S05", e["event_id"]))
    assert problems == []


def test_no_unlabelled_victim_snooping(feed: Feed) -> None:
    for e in unlabelled_opens(feed):
        s = feed.subjects[e["subject_id"]]
        if s["subject_type"] == "person" and "victim" in s.get("flags", []):
            assert feed.victim_covered(e), e["event_id"]


def test_no_unlabelled_repeat_subject(feed: Feed) -> None:
    days: dict[tuple[str, str], set[int]] = defaultdict(set)
    ids: dict[tuple[str, str], list[str]] = defaultdict(list)
    for e in feed.opens():
        if feed.subjects[e["subject_id"]]["subject_type"] == "person" and not feed.justified(e):
            key = (e["user_id"], e["subject_id"])
            days[key].add(int(e["_t"] // DAY))
            ids[key].append(e["event_id"])
    for key, seen in days.items():
        if len(seen) >= 3:
            assert any(i in feed.labelled for i in ids[key]), key


def test_no_unlabelled_access_off_duty_or_from_inactive_accounts(feed: Feed) -> None:
    for e in feed.events:
        if e["event_id"] in feed.labelled:
            continue
        member = feed.staff[e["user_id"]]
        assert member["status"] == "active", e["event_id"]
        if member.get("last_active"):
            assert e["_t"] - instant(member["last_active"]) < 60 * DAY, e["event_id"]
        assert feed.off_duty_by(e) <= 20 * 60 + 1, e["event_id"]


def test_unlabelled_out_of_area_is_rare_per_member(feed: Feed) -> None:
    areas = feed.areas()
    seen: dict[str, set[str]] = defaultdict(set)
    for e in unlabelled_opens(feed):
        member, s = feed.staff[e["user_id"]], feed.subjects[e["subject_id"]]
        if member["area"] not in areas or s["subject_type"] not in ("person", "address"):
            continue
        if s.get("area") and s["area"] != member["area"] and not feed.justified(e):
            seen[e["user_id"]].add(e["subject_id"])
    assert max((len(v) for v in seen.values()), default=0) <= 2
