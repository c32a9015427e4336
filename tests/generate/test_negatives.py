"""Hard negatives: ordinary work that looks like misuse is present, unlabelled."""

from __future__ import annotations

from collections import Counter, defaultdict

from tests.generate.gen_feed import PROTECTIVE, Feed, instant, name_key, pc_key

DAY = 86400.0


def ordinary(feed: Feed) -> list[dict]:
    return [e for e in feed.events if e["event_id"] not in feed.labelled]


def test_vehicle_and_address_checks_without_a_case(feed: Feed) -> None:
    kinds = Counter(
        e.get("subject_type")
        for e in ordinary(feed)
        if e.get("subject_id") and not e.get("case_ref")
    )
    assert kinds["vehicle"] > 50 and kinds["address"] > 50
    assert kinds["person"] > 20  # calls from the public, street checks


def test_major_incident_day(feed: Feed) -> None:
    big = sorted(feed.cases.values(), key=lambda c: -len(c["assigned_users"]))[:1]
    assert len(big[0]["assigned_users"]) >= 10
    ref = big[0]["case_ref"]
    by_day: dict[int, set[str]] = defaultdict(set)
    for e in ordinary(feed):
        if e.get("case_ref") == ref:
            by_day[int(e["_t"] // DAY)].add(e["user_id"])
    assert max(len(u) for u in by_day.values()) >= 8
    # Mutual aid: members from another area open its records on the case.
    area = big[0]["area"]
    assert any(
        feed.staff[e["user_id"]]["area"] != area and feed.justified(e)
        for e in ordinary(feed)
        if e.get("case_ref") == ref
    )


def test_control_room_surge(feed: Feed) -> None:
    """One evening the control room takes about three times its calls for three hours,
    every record on a call's log: volume that is not misuse."""
    handlers = {u for u, m in feed.staff.items() if m["unit"] == "Control Room"}
    per_hour: Counter[int] = Counter(
        int(e["_t"] // 3600) for e in ordinary(feed) if e["user_id"] in handlers
    )
    hours = sorted(per_hour)
    typical = sorted(per_hour.values())[len(per_hour) // 2]
    evening = max(hours, key=lambda h: sum(per_hour[h + k] for k in range(3)))
    assert sum(per_hour[evening + k] for k in range(3)) >= 2 * 3 * typical
    surge = [
        e
        for e in ordinary(feed)
        if e["user_id"] in handlers and evening <= e["_t"] // 3600 < evening + 3
    ]
    opened = [e for e in surge if e.get("subject_id")]
    assert opened and all(feed.justified(e) for e in opened if e.get("case_ref"))
    assert sum(1 for e in opened if e.get("case_ref")) >= 0.8 * len(opened)


def test_long_overtime_and_night_work(feed: Feed) -> None:
    longest = max(e - s for spans in feed.duties.values() for s, e in spans)
    assert longest >= 13 * 3600
    nights = [e for e in ordinary(feed) if 0 <= (e["_t"] % DAY) / 3600 < 5]
    assert len(nights) > 100


def test_case_ref_used_after_the_case_closed(feed: Feed) -> None:
    tails = []
    for e in ordinary(feed):
        c = feed.cases.get(e.get("case_ref") or "")
        if (
            c
            and c.get("closed_at")
            and e["_t"] >= instant(c["closed_at"])
            and e["user_id"] in c["assigned_users"]
        ):
            tails.append(e)
    assert tails
    assert all(e["_t"] - instant(feed.cases[e["case_ref"]]["closed_at"]) < 2 * DAY for e in tails)


def test_surnames_alone_mean_nothing(feed: Feed) -> None:
    namesakes = 0
    nearby = 0
    opened = 0
    people = [s for s in feed.subjects.values() if s["subject_type"] == "person"]
    by_name: dict[str | None, list[dict]] = defaultdict(list)
    for s in people:
        by_name[name_key(s.get("surname"))].append(s)
    for m in feed.staff.values():
        home = pc_key(m.get("home_postcode"))
        if not home:
            continue
        for s in by_name.get(name_key(m["surname"]), []):
            key = pc_key(s.get("postcode"))
            if key and key != home:
                namesakes += 1
        for s in people:
            key = pc_key(s.get("postcode"))
            if key and key != home and key[:-2] == home[:-2]:
                nearby += 1
    for e in ordinary(feed):
        s = feed.subject(e)
        m = feed.staff[e["user_id"]]
        if not s or s["subject_type"] != "person" or feed.justified(e):
            continue
        same_name = name_key(s.get("surname")) == name_key(m["surname"])
        opened += same_name and pc_key(s.get("postcode")) != pc_key(m.get("home_postcode"))
    assert namesakes > 100 and nearby > 10 and opened > 0


def test_sensitive_records_opened_on_a_justifying_case(feed: Feed) -> None:
    flagged = victims = colleagues = 0
    for e in ordinary(feed):
        s = feed.subject(e)
        if not s or not feed.justified(e):
            continue
        flags = set(s.get("flags", []))
        flagged += bool(flags & set(PROTECTIVE))
        victims += "victim" in flags and feed.victim_covered(e)
        colleagues += feed.staff_person_ids.get(e["subject_id"], e["user_id"]) != e["user_id"]
    assert flagged > 0 and victims > 0 and colleagues > 0


def test_terminal_moves_within_a_station(feed: Feed) -> None:
    stations: dict[str, set[str]] = defaultdict(set)
    for e in ordinary(feed):
        if not e["terminal_id"].startswith("MDT-"):
            stations[e["user_id"]].add(e["terminal_id"])
    movers = [
        u
        for u, ts in stations.items()
        if len(ts) >= 2 and len({t.rsplit("-", 1)[0] for t in ts}) == 1
    ]
    assert len(movers) > 20


def test_work_at_duty_edges_inside_the_grace(feed: Feed) -> None:
    edges = [e for e in ordinary(feed) if 0 < feed.off_duty_by(e) <= 20 * 60]
    assert len(edges) > 10


def test_quiet_accounts_and_cases_listing_no_subjects(feed: Feed) -> None:
    active = {e["user_id"] for e in feed.events}
    silent = [u for u, m in feed.staff.items() if m["status"] != "active" and u not in active]
    assert silent
    assert any(m["status"] != "active" for m in feed.staff.values())
    open_ended = {r for r, c in feed.cases.items() if not c.get("subject_ids")}
    assert any(e.get("case_ref") in open_ended and feed.justified(e) for e in ordinary(feed))


def test_same_person_on_many_days_on_a_case(feed: Feed) -> None:
    # The S07 look-alike: a suspect opened day after day by the officer on the case.
    days: dict[tuple[str, str], set[int]] = defaultdict(set)
    for e in ordinary(feed):
        s = feed.subject(e)
        if s and s["subject_type"] == "person" and feed.justified(e):
            days[(e["user_id"], e["subject_id"])].add(int(e["_t"] // DAY))
    assert sum(len(d) >= 3 for d in days.values()) > 5
