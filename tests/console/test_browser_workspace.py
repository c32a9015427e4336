"""The investigation workspace in headless Chromium: search, sort, paging with honest
totals, bulk triage, a case closed as misuse with a lead's approval, a member's
timeline, a subject's page, the watch-list and every export.

No broker: the console's app (``console.web.build_app``) is served in-process from
a background thread, over a ``ConsoleState`` filled here, and driven with Playwright
through Debian's ``/usr/bin/chromium`` (no browser download).  Every expected figure
is worked out from the data this module made, not read back from the page.  The
screenshots in ``docs/console.md`` (``docs/console-<page>.png``) are taken here.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import json
import threading
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiohttp import web

from accesswatch.core import Alert
from console.history import History, HistoryEvent
from console.sessions import SessionSigner
from console.state import ConsoleState
from console.store import AlertStore, StaffInfo
from console.web import RUNNER_OPTIONS, build_app
from tests.console.conftest import SCREENSHOTS
from tests.console.helpers import (
    PASSWORDS,
    SECRET,
    FakeRecorder,
    ListRecorder,
    make_users,
)
from tests.console.test_browser import CHROMIUM_ARGS, chromium

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect
T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
UTC = dt.UTC
START = dt.datetime(2026, 3, 1, tzinfo=UTC)
VIEWPORT = {"width": 1440, "height": 900}

# The member under investigation, the protected subject they opened, and the others.
SUSPECT, VICTIM = "E00412", "P-204"
STAFF = {SUSPECT: ("constable", "Response", "North"), "E00777": ("sergeant", "CID", "South"),
         "E00900": ("constable", "Neighbourhood", "East"),
         "E01000": ("analyst", "Intelligence", "HQ")}
RULES = {"AW-002": "Opened the record of someone sharing their surname and postcode",
         "AW-006": "Opened a victim's record without being assigned to their case",
         "AW-008": "Opened many times their usual number of records",
         "AW-010": "Access outside rostered duty",
         "AW-011": "Access from a suspended or leaver account"}
BULK = 230  # alerts besides the suspect's two: more than two pages of 100
NEEDLE = "P-7777"  # a subject id that only three alerts name (in subject_ids, not in any text)


def iso(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def severity_of(score: float) -> str:
    return "critical" if score >= 85 else "high" if score >= 65 else "medium" if score >= 40 \
        else "low"


def background() -> list[Alert]:
    """Alerts of three other members over twenty days, deterministic scores and rules."""
    others, rules = ["E00777", "E00900", "E01000"], ["AW-008", "AW-010", "AW-011", "AW-002"]
    out = []
    for i in range(BULK):
        # A quiet fortnight in the middle: each member's alerts form two cases.
        t = START + dt.timedelta(minutes=127 * i + 11, days=9 if i >= 115 else 0)
        score = round(10 + (i * 37) % 89 + (i % 7) / 10, 1)
        rule = rules[i % len(rules)]
        subjects = [f"P-{3000 + i % 41}"] + ([NEEDLE] if i in (17, 118, 201) else [])
        out.append(Alert(
            alert_id=f"aw-bg-{i:04d}", created_at=iso(t + dt.timedelta(minutes=2)),
            user_id=others[i % 3], rule_id=rule, title=RULES[rule],
            severity=severity_of(score),  # type: ignore[arg-type]
            score=score, event_ids=[f"ev-bg-{i}"], first_seen=iso(t - dt.timedelta(minutes=30)),
            last_seen=iso(t), count=1, subject_ids=subjects,
            reasons=[f"reason {i}: {'a long explanation ' * (6 if i == 3 else 1)}".strip()]))
    return out


def suspect_events() -> list[HistoryEvent]:
    """Fourteen days of the suspect's work, five accesses a day, two of them opens of
    the victim's record with no case; and three others opening that record."""
    rows = []
    for d in range(14):
        for k, hour in enumerate((9, 10, 11, 14, 16)):
            t = START + dt.timedelta(days=d, hours=hour)
            action = ("search", "view", "view", "print", "view")[k]
            subject = None if action == "search" else f"P-{100 + (d * 5 + k) % 23}"
            rows.append(HistoryEvent(
                f"ev-s-{d:02d}-{k}", int(t.timestamp() * 1000), iso(t), SUSPECT,
                "PNC" if k % 2 else "NICHE", action, "NTH-ST01-T04",
                "person" if subject else None, subject, f"16/{d:06d}/26" if subject else None,
                None if subject else 4))
    for n, minute in enumerate((5, 20)):
        t = START + dt.timedelta(days=11, hours=10, minutes=minute)
        rows.append(HistoryEvent(f"ev-victim-{n}", int(t.timestamp() * 1000), iso(t), SUSPECT,
                                 "NICHE", "view", "NTH-ST01-T04", "person", VICTIM, None, None))
    for n, (who, day, ref) in enumerate((("E00777", 4, "16/000777/26"), ("E00900", 3, None),
                                         ("E01000", 13, None))):
        t = START + dt.timedelta(days=day, hours=13, minutes=n)
        rows.append(HistoryEvent(f"ev-other-{n}", int(t.timestamp() * 1000), iso(t), who,
                                 "NICHE", "view", "STH-ST02-T11", "person", VICTIM, ref, None))
    return rows


def suspect_alerts() -> list[Alert]:
    t0 = START + dt.timedelta(days=11, hours=10, minutes=5)
    t1 = t0 + dt.timedelta(minutes=15)
    return [
        Alert(alert_id="aw-suspect-a", created_at=iso(t0 + dt.timedelta(minutes=1)),
              user_id=SUSPECT, rule_id="AW-002", title=RULES["AW-002"], severity="high",
              score=78.0, event_ids=["ev-victim-0"], first_seen=iso(t0), last_seen=iso(t0),
              count=1, subject_ids=[VICTIM],
              reasons=[f"opened the person record {VICTIM} of someone sharing their surname "
                       "and home postcode; no case justified it"]),
        Alert(alert_id="aw-suspect-b", created_at=iso(t1 + dt.timedelta(minutes=1)),
              user_id=SUSPECT, rule_id="AW-006", title=RULES["AW-006"], severity="critical",
              score=88.0, event_ids=["ev-victim-0", "ev-victim-1"], first_seen=iso(t0),
              last_seen=iso(t1), count=2, subject_ids=[VICTIM],
              reasons=[f"opened {VICTIM}, flagged victim, twice without being assigned to "
                       "an open case that lists them"]),
    ]


class Workspace:
    """The console's app over a filled state, served from a thread of its own."""

    def __init__(self, tmp: Path, *, max_alerts: int = 10_000,
                 alerts: list[Alert] | None = None) -> None:
        self.alerts = alerts if alerts is not None else [*background(), *suspect_alerts()]
        self.events = suspect_events()
        self.history = History(tmp / "history.sqlite3", 0)
        self.history.add(self.events, {0: len(self.events)})
        self.history.flush()  # committed: readable before the first page asks
        state = ConsoleState(AlertStore(max_alerts), history=self.history)
        for user_id, (role, unit, area) in STAFF.items():
            state.staff.upsert(user_id, StaffInfo(role, unit, area, "active"))
        attach_directory(state)
        for a in self.alerts:
            state.add_alert(a, settle=False)
        state.settle()
        state.caught_up.update(alerts=True, triage=True, staff=True, cases=True)
        self.state = state
        self.recorder, self.cases, self.watch = FakeRecorder(), ListRecorder(), ListRecorder()
        self.consulted = ListRecorder()
        app = build_app(state=state, users=make_users(), signer=SessionSigner(SECRET, 3600),
                        recorder=self.recorder, case_recorder=self.cases,
                        watch_recorder=self.watch, consultation_recorder=self.consulted)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.runner = web.AppRunner(app, **RUNNER_OPTIONS)
        self.call(self.runner.setup())
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        self.call(site.start())
        port = self.runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"

    def call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def on_loop(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the server's loop (the state is the loop's), and wait for it."""
        async def go() -> T:
            return fn()
        result: T = self.call(go())
        return result

    def close(self) -> None:
        self.call(self.runner.cleanup())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.history.close()


def attach_directory(state: ConsoleState) -> None:
    """Case facts, protected subjects and the watch-list, fed the records the console
    reads from ``ref.cases`` and ``ref.subjects``, as its feeds do."""
    from console.directory import CaseFacts, ProtectedSubjects, Watchlist

    protected = ProtectedSubjects()
    state.case_facts, state.protected, state.watchlist = CaseFacts(0), protected, \
        Watchlist(protected)
    cases: list[dict[str, Any]] = [
        {"case_ref": f"16/{d:06d}/26", "status": "open", "assigned_users": [SUSPECT],
         "opened_at": "2026-02-01T00:00:00Z"} for d in range(14)]
    cases.append({"case_ref": "16/000777/26", "status": "open", "assigned_users": ["E00777"],
                  "subject_ids": [VICTIM], "opened_at": "2026-02-01T00:00:00Z"})
    for c in cases:
        state.case_facts.apply_record(c["case_ref"].encode(), json.dumps(c).encode())
    for subject_id, flags in ((VICTIM, ["victim"]), ("P-100", [])):
        record = {"subject_id": subject_id, "subject_type": "person", "surname": "Never Shown",
                  "postcode": "LS1 4AP", "flags": flags}
        state.protected.apply_record(subject_id.encode(), json.dumps(record).encode())


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    path = chromium()
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=path, headless=True,
                               args=[*CHROMIUM_ARGS, "--lang=en-GB"])
        yield b
        b.close()


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workspace]:
    w = Workspace(tmp_path)
    yield w
    w.close()


class Page:
    """A signed-in page that fails the test on any script error or refused resource."""

    def __init__(self, browser: Any, ws: Workspace, user: str = "lena") -> None:
        self.context = browser.new_context(viewport=VIEWPORT, accept_downloads=True,
                                           timezone_id="America/New_York", locale="en-GB")
        self.page = self.context.new_page()
        self.errors: list[str] = []
        # Requests the server refused, as (status, path): each test says which it expects.
        self.refused: list[tuple[int, str]] = []
        self.expect_refused: list[tuple[int, str]] = []
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("console", lambda m: self.errors.append(m.text)
                     if m.type == "error" and not m.text.startswith("Failed to load resource")
                     else None)
        self.page.on("response", lambda r: self.refused.append(
            (r.status, r.url.split("?")[0].removeprefix(ws.url))) if r.status >= 400
            and r.status != 428 else None)
        self.asked = 0  # 428s: the console asking why, not a refusal
        self.page.on("response", lambda r: setattr(self, "asked", self.asked + 1)
                     if r.status == 428 else None)
        # Asked why (a read with no case or alert being worked: 428), the analyst says.
        self.purpose = "a browser test"
        self.page.add_locator_handler(self.page.locator("dialog.purpose"), self._asked)
        self.page.goto(f"{ws.url}/")
        assert self.page.url.endswith("/login")
        self.page.fill("#username", user)
        self.page.fill("#password", PASSWORDS[user])
        self.page.click("button[type=submit]")
        self.page.wait_for_selector("#live.on")
        self.ready("#feed")

    def _asked(self) -> None:
        self.page.fill("#purpose-text", self.purpose)
        self.page.click("dialog.purpose button[value=ok]")

    def gave_why(self, view: str) -> None:
        """As if the analyst had already said why they look at ``view`` (a download link
        asks before it downloads, where no action of the test would answer)."""
        self.page.evaluate("([v, why]) => purposes.set(v, why)", [view, self.purpose])

    def ready(self, selector: str) -> None:
        """Wait until ``selector`` has drawn its latest answer."""
        self.page.wait_for_selector(f"{selector}[data-state=ready]", state="attached")

    def go(self, hash_: str, selector: str) -> None:
        """Follow a route and wait for its page to draw."""
        then_ready(self, selector,
                   lambda: self.page.evaluate("h => { window.location.hash = h; }", hash_))

    def ids(self, selector: str = "#feed tbody tr", attr: str = "data-alert-id") -> list[str]:
        return [str(x) for x in self.page.eval_on_selector_all(
            selector, f"rows => rows.map(r => r.getAttribute('{attr}'))")]

    def shot(self, name: str) -> None:
        """Draw the page as an image; into docs/ only with ACCESSWATCH_SCREENSHOTS=1, so a
        test run leaves the committed screenshots alone."""
        if SCREENSHOTS:
            self.page.screenshot(path=str(DOCS / f"console-{name}.png"))
        else:
            assert self.page.screenshot()[:8] == b"\x89PNG\r\n\x1a\n"

    def close(self) -> None:
        assert not self.errors, self.errors
        assert self.refused == self.expect_refused
        self.context.close()


def then_ready(p: Page, selector: str, act: Callable[[], None]) -> None:
    """Do ``act`` (which makes ``selector`` load again) and wait for its new answer."""
    p.page.evaluate("s => { document.querySelector(s).dataset.state = 'stale'; }", selector)
    act()
    p.ready(selector)


def order(alerts: list[Alert], key: Callable[[Alert], Any], reverse: bool) -> list[str]:
    """The server's order: the sort key, then the alert id, both in the one direction."""
    return [a.alert_id for a in sorted(alerts, key=lambda a: (key(a), a.alert_id),
                                       reverse=reverse)]


# --- alerts: search, sort, paging, honest totals, live rows ------------------------
def test_search_sort_and_paging_with_honest_totals_and_live_rows(browser: Any,
                                                                  ws: Workspace) -> None:
    p = Page(browser, ws)
    page, n = p.page, len(ws.alerts)
    rows = page.locator("#feed tbody tr")
    # One page of 100, highest score first, and a count that says how many there are.
    expect(rows).to_have_count(100)
    expect(page.locator("#counts")).to_have_text(f"1–100 of {n} matching · {n} held")
    by_score = order(ws.alerts, lambda a: a.score, reverse=True)
    assert p.ids() == by_score[:100]
    expect(page.locator("th[data-sort=score]")).to_have_attribute("aria-sort", "descending")
    p.shot("alerts")

    # Paging appends the next page; the rows already shown stay the same elements.
    page.evaluate("() => { document.querySelector('#feed tbody tr').dataset.mark = 'kept'; }")
    then_ready(p, "#feed", lambda: page.click("#more"))
    expect(rows).to_have_count(200)
    then_ready(p, "#feed", lambda: page.click("#more"))
    expect(rows).to_have_count(n)
    expect(page.locator("#more")).to_be_hidden()
    assert p.ids() == by_score
    assert page.locator("#feed tbody tr[data-mark=kept]").count() == 1
    expect(page.locator("#counts")).to_have_text(f"1–{n} of {n} matching · {n} held")

    # A column header sorts on the server; a second click turns the direction round.
    then_ready(p, "#feed", lambda: page.click("th[data-sort=created_at]"))
    expect(page.locator("th[data-sort=created_at]")).to_have_attribute("aria-sort", "descending")
    assert page.locator("th[data-sort=score]").get_attribute("aria-sort") is None
    assert p.ids() == order(ws.alerts, lambda a: a.created_at, reverse=True)[:100]
    assert page.locator("#f-sort").input_value() == "newest"
    then_ready(p, "#feed", lambda: page.click("th[data-sort=created_at]"))
    expect(page.locator("th[data-sort=created_at]")).to_have_attribute("aria-sort", "ascending")
    assert p.ids() == order(ws.alerts, lambda a: a.created_at, reverse=False)[:100]
    then_ready(p, "#feed", lambda: page.click("th[data-sort=user_id]"))
    assert p.ids() == order(ws.alerts, lambda a: a.user_id, reverse=False)[:100]
    then_ready(p, "#feed", lambda: page.select_option("#f-sort", "risk"))
    assert p.ids() == by_score[:100]

    # Search finds a subject id that no column shows; the totals follow the filter.
    then_ready(p, "#feed", lambda: page.fill("#q", NEEDLE))
    needles = [a.alert_id for a in ws.alerts if NEEDLE in a.subject_ids]
    assert len(needles) == 3 and sorted(p.ids()) == sorted(needles)
    expect(page.locator("#counts")).to_have_text(f"1–3 of 3 matching · {n} held")
    then_ready(p, "#feed", lambda: page.fill("#q", SUSPECT))
    assert sorted(p.ids()) == ["aw-suspect-a", "aw-suspect-b"]
    then_ready(p, "#feed", lambda: page.fill("#q", "nothing-has-this"))
    expect(page.locator("#empty")).to_be_visible()
    expect(page.locator("#counts")).to_have_text(f"0 of 0 matching · {n} held")
    then_ready(p, "#feed", lambda: page.fill("#q", ""))

    # Filters: severity, a rule chosen by its name, and a time range in London time.
    then_ready(p, "#feed", lambda: page.select_option("#f-severity", "critical"))
    critical = [a for a in ws.alerts if a.severity == "critical"]
    expect(page.locator("#counts")).to_contain_text(f"of {len(critical)} matching")
    assert p.ids() == order(critical, lambda a: a.score, reverse=True)[:100]
    then_ready(p, "#feed", lambda: page.select_option("#f-severity", ""))
    then_ready(p, "#feed",
               lambda: page.select_option("#f-rule", label=f"{RULES['AW-010']} (AW-010)"))
    rule = [a for a in ws.alerts if a.rule_id == "AW-010"]
    expect(page.locator("#counts")).to_contain_text(f"of {len(rule)} matching")
    then_ready(p, "#feed", lambda: page.select_option("#f-rule", ""))
    # 5 March 00:00 to 7 March 00:00 London (GMT): the browser's own zone is New York.
    then_ready(p, "#feed", lambda: page.fill("#f-from", "2026-03-05T00:00"))
    then_ready(p, "#feed", lambda: page.fill("#f-to", "2026-03-07T00:00"))
    lo, hi = "2026-03-05T00:00:00Z", "2026-03-07T00:00:00Z"
    window = [a for a in ws.alerts if a.last_seen >= lo and a.first_seen <= hi]
    assert 10 < len(window) < 100
    assert sorted(p.ids()) == sorted(a.alert_id for a in window)
    expect(page.locator("#counts")).to_have_text(
        f"1–{len(window)} of {len(window)} matching · {n} held")
    then_ready(p, "#feed", lambda: page.click("#f-clear"))
    expect(rows).to_have_count(100)

    # A long value is clipped with an ellipsis, whole on hover; the table fits the screen.
    long = page.locator('#feed tr[data-alert-id="aw-bg-0003"] td.alert .sub.clip')
    if long.count() == 0:  # not on page one by score: find it
        then_ready(p, "#feed", lambda: page.fill("#q", "aw-bg-0003"))
    assert long.get_attribute("title") == ws.alerts[3].reasons[0]
    assert page.evaluate("() => document.querySelector('#feed').scrollWidth <= "
                         "document.querySelector('.feed').clientWidth + 1")
    then_ready(p, "#feed", lambda: page.fill("#q", ""))

    # Live: a new top alert is placed where the order puts it, without a reload; the rows
    # already there stay the same elements, and the server's totals follow.
    page.evaluate("() => { document.querySelector('#feed tbody tr').dataset.mark = 'first'; }")
    top = Alert(alert_id="aw-live-top", created_at="2026-03-25T09:00:00Z", user_id="E00900",
                rule_id="AW-011", title=RULES["AW-011"], severity="critical", score=99.9,
                event_ids=["ev-live"], reasons=["a leaver's account was used"],
                first_seen="2026-03-25T08:59:00Z", last_seen="2026-03-25T08:59:00Z", count=1,
                subject_ids=["P-9"])
    ws.on_loop(lambda: ws.state.add_alert(top))
    expect(rows.first).to_have_attribute("data-alert-id", "aw-live-top")
    assert page.locator("#feed tbody tr[data-mark=first]").count() == 1
    expect(page.locator("#counts")).to_have_text(f"1–101 of {n + 1} matching · {n + 1} held")
    # One that sorts below the last row loaded waits for its page; one that would move the
    # rows under a selection is counted in the banner instead, and shown on request.
    page.locator("#feed tbody tr").nth(5).locator("input[data-select]").check()
    second = Alert(**{**{f: getattr(top, f) for f in top.__struct_fields__},
                      "alert_id": "aw-live-second", "score": 99.5})
    ws.on_loop(lambda: ws.state.add_alert(second))
    expect(page.locator("#new-banner")).to_have_text("1 new alert — show")
    assert p.ids()[:2] != ["aw-live-top", "aw-live-second"]
    then_ready(p, "#feed", lambda: page.click("#new-banner"))
    assert p.ids()[:2] == ["aw-live-top", "aw-live-second"]
    expect(page.locator("#new-banner")).to_be_hidden()
    p.close()


def test_the_page_says_how_many_alerts_it_no_longer_holds(browser: Any, tmp_path: Path) -> None:
    w = Workspace(tmp_path, max_alerts=150)
    try:
        p = Page(browser, w, "vic")
        dropped = len(w.alerts) - 150
        expect(p.page.locator("#counts")).to_have_text(
            f"1–100 of 150 matching · 150 held · {dropped} older not held")
        # A viewer sees the list, with nothing to select for triage.
        assert p.page.locator("#feed input[data-select], #select-all").count() == 0
        p.close()
    finally:
        w.close()


# --- bulk triage ---------------------------------------------------------------------
def test_bulk_triage_applies_to_each_selected_alert_and_names_each_failure(
        browser: Any, ws: Workspace) -> None:
    p = Page(browser, ws, "ana")
    page = p.page
    then_ready(p, "#feed", lambda: page.fill("#q", "E00777"))
    ids = p.ids()[:4]
    expect(page.locator("#bulk")).to_be_hidden()
    for alert_id in ids[:3]:
        page.locator(f'#feed tr[data-alert-id="{alert_id}"] input[data-select]').check()
    expect(page.locator("#bulk-count")).to_have_text("3 selected")
    page.select_option("#bulk-action", "false_positive")
    page.fill("#bulk-note", "Roster data was wrong that week; checked with the duty sergeant.")
    page.click("#bulk-go")
    expect(page.locator("[data-testid=bulk-summary]")).to_have_text("False positive: 3 done")
    for alert_id in ids[:3]:  # each row is updated where it stands, by the live feed
        expect(page.locator(f'#feed tr[data-alert-id="{alert_id}"]')).to_contain_text(
            "false positive")
    assert [d.alert_id for d, _ in ws.recorder.written] == ids[:3]
    assert all(d.status == "false_positive" and d.by == "ana" for d, _ in ws.recorder.written)

    # Reopen three of them and one still new: that one fails, by name, with the reason.
    page.locator("#feed thead input#select-all").check()
    expect(page.locator("#bulk-count")).to_have_text(f"{len(p.ids())} selected")
    page.locator("#bulk-clear").click()
    for alert_id in ids:
        page.locator(f'#feed tr[data-alert-id="{alert_id}"] input[data-select]').check()
    page.select_option("#bulk-action", "reopen")
    page.click("#bulk-go")
    expect(page.locator("[data-testid=bulk-summary]")).to_have_text("Reopen: 3 done, 1 failed")
    failure = page.locator(f'[data-testid=bulk-failures] li[data-alert-id="{ids[3]}"]')
    expect(failure).to_contain_text("only an alert with an outcome can be reopened")
    expect(page.locator(f'#feed tr[data-alert-id="{ids[3]}"] input[data-select]')).to_be_checked()
    expect(page.locator("#bulk-count")).to_have_text("1 selected")
    for alert_id in ids[:3]:
        expect(page.locator(f'#feed tr[data-alert-id="{alert_id}"]')).to_contain_text(
            "acknowledged")
    p.close()


# --- a case, from new to closed as misuse, approved by a lead -----------------------
def test_a_case_from_new_to_closed_as_misuse_with_a_second_persons_approval(
        browser: Any, ws: Workspace) -> None:
    case_id = ws.on_loop(lambda: ws.state.case_of["aw-suspect-a"])
    assert ws.on_loop(lambda: ws.state.case_of["aw-suspect-b"]) == case_id
    ana = Page(browser, ws, "ana")
    page = ana.page
    ana.go("#/cases", "#cases")
    then_ready(ana, "#cases", lambda: page.fill("#cq", SUSPECT))
    assert ana.ids("#cases tbody tr", "data-case-id") == [case_id]
    row = page.locator(f'#cases tr[data-case-id="{case_id}"]')
    expect(row).to_contain_text("new")
    expect(row.locator("td.num").first).to_have_text("2")
    then_ready(ana, "#cases", lambda: page.fill("#cq", ""))
    ana.shot("cases")
    then_ready(ana, "#cases", lambda: page.fill("#cq", SUSPECT))
    then_ready(ana, "#case", lambda: row.click())
    status = page.locator("[data-testid=case-status]")
    expect(status).to_have_text("new")
    assert ana.ids("[data-testid=case-alerts] tbody tr") == ["aw-suspect-a", "aw-suspect-b"]

    def act(p: Page, action: str) -> None:
        then_ready(p, "#case", lambda: p.page.click(f"[data-case-action={action}]"))

    page.select_option("#case-owner", "ana")
    act(ana, "assign")
    expect(status).to_have_text("investigating")
    expect(page.locator("[data-testid=case-owner]")).to_have_text("ana")
    page.fill("#case-note", "Victim is the member's former partner; no tasking to explain it.")
    act(ana, "note")
    expect(page.locator("[data-testid=case-notes] li")).to_have_count(1)
    # Closing with no note is refused in words, and nothing changes.
    page.select_option("#case-outcome", "misuse")
    ana.expect_refused.append((400, f"/api/cases/{case_id}"))
    page.click("[data-case-action=close]")
    expect(page.locator("[data-testid=case-message]")).to_contain_text("say why in a note")
    expect(status).to_have_text("investigating")
    page.fill("#case-note", "Two opens of a victim's record with no case: misuse.")
    act(ana, "close")
    expect(status).to_have_text("awaiting approval")
    expect(page.locator("[data-case-action=approve]")).to_have_count(0)
    expect(page.locator("[data-testid=case-approval]")).to_contain_text(
        "a different lead must approve it")

    # The lead, in a browser of her own, sees it awaiting her and approves it.
    lena = Page(browser, ws, "lena")
    lena.go(f"#/case/{case_id}", "#case")
    expect(lena.page.locator("[data-testid=case-status]")).to_have_text("awaiting approval")
    expect(lena.page.locator("[data-testid=case-proposed]")).to_contain_text("misuse by ana")
    lena.page.fill("#case-note", "Agreed: referred to the professional standards board.")
    act(lena, "approve")
    expect(lena.page.locator("[data-testid=case-status]")).to_have_text("closed")
    expect(lena.page.locator("[data-testid=case-outcome]")).to_have_text("misuse")
    expect(lena.page.locator("[data-testid=case-approved-by]")).to_have_text("lena")
    history = lena.page.locator("[data-testid=case-history] li").all_inner_texts()
    assert [h.split(" by ")[0].split(" → ")[0].split(" (")[0] for h in history] == \
        ["Assign", "Add note", "Close", "Approve"]
    assert history[2].startswith("Close (misuse) by ana")
    assert history[3].startswith("Approve by lena")
    lena.shot("case")

    # What was recorded: each step, by whom; the analyst's page shows it closed on reload.
    written = ws.cases.written
    assert [(r.history[-1].action, r.by, r.status) for r in written] == [
        ("assign", "ana", "investigating"), ("note", "ana", "investigating"),
        ("close", "ana", "awaiting_approval"), ("approve", "lena", "closed")]
    assert written[-1].outcome == "misuse" and written[-1].approved_by == "lena"
    then_ready(ana, "#case", lambda: page.reload())
    expect(status).to_have_text("closed")
    expect(page.locator("[data-case-action=reopen]")).to_be_visible()

    # The evidence pack downloads as one ZIP, its manifest vouching for every file.
    with lena.page.expect_download() as got:
        lena.page.click("#evidence-pack")
    pack = zipfile.ZipFile(io.BytesIO(Path(got.value.path()).read_bytes()))
    names = set(pack.namelist())
    assert {"case.json", "alerts.json", "timeline.json", "triage.json", "reference.json",
            "summary.html", "manifest.json"} <= names
    case = json.loads(pack.read("case.json"))
    assert json.dumps(case).count(case_id) >= 1 and "misuse" in json.dumps(case)
    assert sorted(a["alert_id"] for a in json.loads(pack.read("alerts.json"))) == \
        ["aw-suspect-a", "aw-suspect-b"]
    timeline = json.loads(pack.read("timeline.json"))
    events = timeline["events"] if isinstance(timeline, dict) else timeline
    assert {"ev-victim-0", "ev-victim-1"} <= {e["event_id"] for e in events}
    assert "lena" in pack.read("summary.html").decode()

    # From the case to the member's timeline for its window.
    then_ready(lena, "#timeline", lambda: lena.page.click("#case-timeline"))
    assert set(lena.ids("#timeline li[data-event-id]", "data-event-id")) == \
        {"ev-victim-0", "ev-victim-1"}
    ana.close()
    lena.close()


# --- the member's timeline ------------------------------------------------------------
def test_the_members_timeline_shows_every_access_in_event_time_with_alerts_marked(
        browser: Any, ws: Workspace) -> None:
    p = Page(browser, ws)
    page = p.page
    p.go(f"#/member/{SUSPECT}", "#timeline")
    mine = sorted((e for e in ws.events if e.user_id == SUSPECT), key=lambda e: -e.t_ms)
    newest = mine[0].t_ms
    # The default window: the fourteen days up to the member's newest access.
    shown = [e for e in mine if e.t_ms >= newest - 14 * 86_400_000]
    items = page.locator("#timeline li[data-event-id]")
    expect(items).to_have_count(len(shown))
    assert p.ids("#timeline li[data-event-id]", "data-event-id") == [e.event_id for e in shown]
    expect(page.locator("[data-testid=timeline-counts]")).to_contain_text(
        f"{len(shown)} accesses in this window")
    # The window starts before the oldest access held: the page says so.
    expect(page.locator("[data-testid=history-note]")).to_have_text(
        " · the history holds accesses from 01 Mar 09:00:00 on")
    # Alerts are marked on the accesses they cite, and on the chart at their last access.
    victim = page.locator('#timeline li[data-event-id="ev-victim-1"]')
    expect(victim.locator("a.flag")).to_have_count(1)
    expect(victim.locator(".tag.bad")).to_have_text("no case was given")
    expect(page.locator('#timeline li[data-event-id="ev-victim-0"] a.flag')).to_have_count(2)
    chart = page.locator("#timeline [data-testid=risk-chart]")
    expect(chart.locator("circle[data-alert-id]")).to_have_count(2)
    hours = {e.t_ms // 3_600_000 for e in shown}
    expect(chart.locator("rect.bar")).to_have_count(len(hours))
    expect(chart.locator("rect.band")).to_have_count(1)
    assert page.locator("[data-testid=member-cases] li").count() == 1
    # A justified access says so; an unjustified one says why, in the rules' words.
    expect(page.locator('#timeline li[data-event-id="ev-s-13-4"] .tag.ok')).to_have_text(
        "justified")
    p.shot("timeline")

    # Filters go to the server: system, action, subject type; the window is London time.
    then_ready(p, "#timeline", lambda: page.select_option("#t-system", "PNC"))
    expect(items).to_have_count(sum(1 for e in shown if e.system == "PNC"))
    then_ready(p, "#timeline", lambda: page.select_option("#t-action", "view"))
    expect(items).to_have_count(sum(1 for e in shown if e.system == "PNC" and e.action == "view"))
    then_ready(p, "#timeline", lambda: page.select_option("#t-system", ""))
    then_ready(p, "#timeline", lambda: page.select_option("#t-action", ""))
    then_ready(p, "#timeline", lambda: page.select_option("#t-subject-type", "person"))
    expect(items).to_have_count(sum(1 for e in shown if e.subject_type == "person"))
    then_ready(p, "#timeline", lambda: page.fill("#t-from", "2026-03-12T10:00"))
    expect(items).to_have_count(sum(1 for e in shown if e.subject_type == "person"
                                     and e.ts >= "2026-03-12T10:00:00Z"))

    # From a marked access to its alert's detail pane.
    then_ready(p, "#timeline", lambda: page.click("button:has-text('Last 14 days')"))
    page.locator('#timeline li[data-event-id="ev-victim-1"] a.flag').click()
    expect(page.locator("[data-testid=reasons] li")).to_have_count(1)
    expect(page.locator("[data-testid=triage-status]")).to_have_text("new")
    # And to the member's alerts: the list, filtered by a link.
    p.go(f"#/member/{SUSPECT}", "#timeline")
    then_ready(p, "#feed", lambda: page.click("#timeline a:has-text(\"This member's alerts\")"))
    assert sorted(p.ids()) == ["aw-suspect-a", "aw-suspect-b"]
    expect(page.locator("#q")).to_have_value(SUSPECT)
    p.close()


# --- the subject's side ---------------------------------------------------------------
def test_who_opened_a_subject_with_each_open_justified_or_why_not(browser: Any,
                                                                  ws: Workspace) -> None:
    p = Page(browser, ws)
    page = p.page
    page.fill("#subject-q", VICTIM)
    then_ready(p, "#subject", lambda: page.press("#subject-q", "Enter"))
    opens = sorted((e for e in ws.events if e.subject_id == VICTIM), key=lambda e: -e.t_ms)
    assert p.ids("#subject tr[data-event-id]", "data-event-id") == [e.event_id for e in opens]
    expect(page.locator("[data-testid=subject-counts]")).to_contain_text(
        f"{len(opens)} opens by {len({e.user_id for e in opens})} members")
    justified = page.locator('#subject tr[data-event-id="ev-other-0"]')
    expect(justified).to_contain_text("16/000777/26")
    expect(justified.locator(".tag.ok")).to_have_text("justified")
    for eid in ("ev-victim-0", "ev-victim-1", "ev-other-1", "ev-other-2"):
        expect(page.locator(f'#subject tr[data-event-id="{eid}"] .tag.bad')).to_be_visible()
    expect(page.locator('#subject tr[data-event-id="ev-victim-0"]')).to_contain_text(SUSPECT)
    case_id = ws.on_loop(lambda: ws.state.case_of["aw-suspect-a"])
    expect(page.locator('#subject tr[data-event-id="ev-victim-0"]')).to_contain_text(case_id)
    assert sorted(p.ids("[data-testid=subject-alerts] tbody tr")) == \
        ["aw-suspect-a", "aw-suspect-b"]
    expect(page.locator("#subject .flag-tag")).to_have_text(["victim"])
    assert "Never Shown" not in page.content() and "LS1 4AP" not in page.content()
    p.shot("subject")
    # A member's name links to their timeline.
    then_ready(p, "#timeline", lambda: page.locator(
        '#subject tr[data-event-id="ev-other-1"] a[href^="#/member/"]').click())
    expect(page.locator("[data-testid=member-id]")).to_have_text("E00900")
    p.close()


# --- the watch-list ------------------------------------------------------------------------
def test_the_watch_list_shows_recent_unjustified_opens_and_a_lead_edits_it(
        browser: Any, ws: Workspace) -> None:
    p = Page(browser, ws)
    page = p.page
    then_ready(p, "#watchlist", lambda: page.click("[data-nav=watchlist]"))
    expect(page.locator("[data-nav=watchlist]")).to_have_attribute("aria-current", "page")
    expect(page.locator(f'#watchlist tr[data-subject-id="{VICTIM}"]')).to_contain_text("victim")
    newest = max(e.t_ms for e in ws.events)
    # The last 7 days of event time: the unjustified opens of the victim in them.
    recent = sorted((e for e in ws.events if e.subject_id == VICTIM and e.case_ref is None
                     and e.t_ms >= newest - 7 * 86_400_000), key=lambda e: -e.t_ms)
    assert recent
    assert p.ids("[data-testid=watch-opens] tr[data-event-id]", "data-event-id") == \
        [e.event_id for e in recent]
    then_ready(p, "#watchlist", lambda: page.select_option("#w-days", "30"))
    every = sorted((e for e in ws.events if e.subject_id == VICTIM and e.case_ref is None),
                   key=lambda e: -e.t_ms)
    assert p.ids("[data-testid=watch-opens] tr[data-event-id]", "data-event-id") == \
        [e.event_id for e in every]

    # A lead adds a subject (a member of staff who reported a colleague), then removes it.
    page.fill("#w-subject", "P-555")
    page.fill("#w-reason", "staff member: whistle-blower")
    then_ready(p, "#watchlist", lambda: page.click("#w-add"))
    added = page.locator('#watchlist tr[data-subject-id="P-555"]')
    expect(added).to_contain_text("whistle-blower")
    expect(added).to_contain_text("lena")
    assert ws.watch.written[-1][0] == "P-555" and b"whistle-blower" in ws.watch.written[-1][1]
    p.shot("watchlist")
    then_ready(p, "#watchlist", lambda: added.locator("[data-watch-remove]").click())
    expect(added).to_have_count(0)
    assert ws.watch.written[-1] == ("P-555", None)
    p.close()

    # An analyst sees the list but cannot change it.
    a = Page(browser, ws, "ana")
    a.go("#/watchlist", "#watchlist")
    expect(a.page.locator(f'#watchlist tr[data-subject-id="{VICTIM}"]')).to_be_visible()
    expect(a.page.locator("#w-add")).to_have_count(0)
    expect(a.page.locator("[data-watch-remove]")).to_have_count(0)
    a.close()


# --- exports of the current view -------------------------------------------------------
def test_each_export_holds_exactly_the_filtered_view(browser: Any, ws: Workspace) -> None:
    p = Page(browser, ws)
    page = p.page
    then_ready(p, "#feed", lambda: page.select_option("#f-severity", "high"))
    then_ready(p, "#feed", lambda: page.select_option("#f-area", "South"))
    south = {u for u, (_, _, area) in STAFF.items() if area == "South"}
    want = order([a for a in ws.alerts if a.severity == "high" and a.user_id in south],
                 lambda a: a.score, reverse=True)
    assert len(want) > 5 and p.ids() == want[:100]

    p.gave_why("#/alerts")
    with page.expect_download() as got:
        page.click("#export-csv")
    text = Path(got.value.path()).read_text(encoding="utf-8")
    table = list(csv.DictReader(io.StringIO(text)))
    assert [r["alert_id"] for r in table] == want
    assert {r["severity"] for r in table} == {"high"} and {r["area"] for r in table} == {"South"}
    assert got.value.suggested_filename.endswith(".csv")

    with page.expect_download() as got:
        page.click("#export-ndjson")
    docs = [json.loads(line) for line in
            Path(got.value.path()).read_text(encoding="utf-8").splitlines() if line]
    assert [d["event"]["id"] for d in docs] == want
    assert all(d["labels"]["accesswatch_severity"] == "high" for d in docs)

    # A search narrows the exports too.
    then_ready(p, "#feed", lambda: page.fill("#q", want[0]))
    with page.expect_download() as got:
        page.click("#export-csv")
    table = list(csv.DictReader(io.StringIO(Path(got.value.path()).read_text("utf-8"))))
    assert [r["alert_id"] for r in table] == [want[0]]
    p.close()


# --- the detail pane keeps working over the paged list ----------------------------------
def test_the_detail_pane_opens_over_the_list_and_triage_updates_the_row(
        browser: Any, ws: Workspace) -> None:
    p = Page(browser, ws, "ana")
    page = p.page
    then_ready(p, "#feed", lambda: page.fill("#q", SUSPECT))
    page.click('#feed tr[data-alert-id="aw-suspect-b"] td.alert')
    reasons = page.locator("[data-testid=reasons] li")
    expect(reasons).to_have_text(suspect_alerts()[1].reasons)
    expect(page.locator("[data-testid=evidence] li")).to_have_count(2)
    expect(page.locator("[data-testid=alert-case] a")).to_have_text(
        ws.on_loop(lambda: ws.state.case_of["aw-suspect-b"]))
    page.select_option("#triage-assignee", "ana")
    page.click("[data-action=assign]")
    expect(page.locator("[data-testid=triage-log] li")).to_have_count(1)
    expect(page.locator("[data-action=unassign]")).to_be_visible()
    row = page.locator('#feed tr[data-alert-id="aw-suspect-b"]')
    expect(row).to_contain_text("→ ana")
    p.shot("detail")
    # Assigned to me: the filter "me" finds it.
    then_ready(p, "#feed", lambda: page.select_option("#f-assignee", "me"))
    assert p.ids() == ["aw-suspect-b"]
    p.close()


def test_a_read_says_the_alert_worked_or_the_reason_asked_for_once(browser: Any,
                                                                   ws: Workspace) -> None:
    from console.consultations import Purpose

    p = Page(browser, ws)
    before = len(ws.consulted.written)
    p.go(f"#/member/{SUSPECT}", "#timeline")  # straight to a timeline: asked why
    p.page.evaluate("h => { window.location.hash = h; }", "#/alerts")
    p.go(f"#/member/{SUSPECT}", "#timeline")  # the same view again: not asked again
    assert p.asked == 1 and p.refused == []
    timelines = [c for c in ws.consulted.written[before:] if c.what.kind == "timeline"]
    assert [c.purpose for c in timelines] == [Purpose(text="a browser test")] * 2
    alert_id = ws.alerts[0].alert_id
    p.page.evaluate("h => { window.location.hash = h; }", f"#/alert/{alert_id}")
    link = p.page.locator("#detail [data-testid=member-timeline]")
    link.wait_for()
    then_ready(p, "#timeline", link.click)  # from the alert being worked: not asked
    assert p.asked == 1
    assert ws.consulted.written[-1].purpose == Purpose(alert_id=alert_id)
    assert ws.consulted.written[-1].user == "lena"
