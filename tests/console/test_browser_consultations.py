"""The lead's consultation log in headless Chromium: an analyst opens a subject's page
and a member's timeline, saying why; the lead's page lists exactly those reads, with
who, when, from where, what and why.  An analyst has no such page.

No broker: the workspace of ``test_browser_workspace`` (its app served in-process),
its consultations written to a list and folded into the log a lead reads, as the
console's topic does (``console.consultations.ConsultationTopic``).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from console import consultations as cons
from console.consultations import Consultation, Purpose
from tests.console import test_browser_workspace as workspace
from tests.console.test_browser_workspace import (  # noqa: F401 (a fixture)
    SUSPECT,
    VICTIM,
    Page,
    Workspace,
    browser,
    then_ready,
)

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect
LONDON = ZoneInfo("Europe/London")
WHY_SUBJECT = "checking who opened P-204 for the victim's complaint"
WHY_TIMELINE = "reviewing E00412's week <b>&amp;</b>"  # shown as text, never as markup


@pytest.fixture
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Workspace]:
    """The workspace, its consultations also held for a lead to read."""
    held = cons.ConsultationLog(1000)
    build = workspace.build_app

    def with_log(**kw: Any) -> Any:
        written = kw["consultation_recorder"]  # the workspace's list: kept as it is

        async def recorder(c: Consultation) -> None:
            await written(c)
            held.apply_record(cons.encode(c))  # as read back from the topic

        return build(**{**kw, "consultation_recorder": recorder, "consultation_log": held})

    monkeypatch.setattr(workspace, "build_app", with_log)
    w = Workspace(tmp_path)
    yield w
    w.close()


def london(iso: str) -> re.Pattern[str]:
    """``iso`` as the page shows a time: London's clock, "06 Mar 09:14:03" (ICU may
    spell September "Sept")."""
    t = dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone(LONDON)
    return re.compile("^" + re.escape(t.strftime("%d %b %H:%M:%S")).replace("Sep", "Sept?")
                      + "$")


def wall_minute(iso: str) -> str:
    """``iso`` as a ``datetime-local`` input takes it: London wall time, to the minute."""
    t = dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone(LONDON)
    return t.strftime("%Y-%m-%dT%H:%M")


def rows(p: Page) -> list[str]:
    return p.ids("#consultations tr[data-consultation-id]", "data-consultation-id")


def filtered(p: Page, **fields: str) -> None:
    for name, value in fields.items():
        p.page.fill(f"#cl-{name}", value)
    then_ready(p, "#consultations", lambda: p.page.click("#cl-apply"))


def test_a_lead_sees_exactly_the_reads_an_analyst_made_with_who_when_where_what_and_why(
        browser: Any, ws: Workspace) -> None:  # noqa: F811 (the imported fixture)
    ana = Page(browser, ws, "ana")
    # An analyst has no log: no link, and the API refuses.
    expect(ana.page.locator("[data-nav=consultations]")).to_be_hidden()
    expect(ana.page.locator("[data-nav=watchlist]")).to_be_visible()
    assert ana.page.evaluate("fetch('/api/consultations').then(r => r.status)") == 403
    ana.go("#/consultations", "#consultations")
    expect(ana.page.locator("[data-testid=consultations-error]")).to_have_text(
        "only a lead may read the consultation log")
    ana.expect_refused = [(403, "/api/consultations")] * 2
    before = len(ws.consulted.written)
    ana.purpose = WHY_SUBJECT  # asked why (nothing is being worked): the analyst says
    ana.go(f"#/subject/{VICTIM}", "#subject")
    ana.purpose = WHY_TIMELINE
    ana.go(f"#/member/{SUSPECT}", "#timeline")
    assert ana.asked == 2
    opened = ws.consulted.written[before:]
    assert [(c.user, c.what.kind) for c in opened] == [("ana", "subject"), ("ana", "timeline")]
    ana.close()

    lena = Page(browser, ws)
    link = lena.page.locator("[data-nav=consultations]")
    expect(link).to_be_visible()
    then_ready(lena, "#consultations", link.click)
    expect(link).to_have_attribute("aria-current", "page")
    assert lena.asked == 0  # reading the log asks no reason of a lead
    # Unfiltered: every read recorded before this one, newest first (this one is
    # recorded once answered).
    everything = ws.consulted.written[:-1]
    assert ws.consulted.written[-1].route == "/api/consultations"
    assert rows(lena) == [c.id for c in reversed(everything)]
    expect(lena.page.locator("[data-testid=consultations-counts]")).to_have_text(
        f"{len(everything)} consultations match · {len(everything)} held here "
        "(the newest 1,000)")

    # The analyst's reads of the victim: exactly the two, with who, when, where, what, why.
    filtered(lena, user="ana", subject=VICTIM)
    assert rows(lena) == [c.id for c in reversed(opened)]
    expect(lena.page.locator("[data-testid=consultations-counts]")).to_contain_text(
        "2 consultations match")
    for c, why in zip(opened, (WHY_SUBJECT, WHY_TIMELINE), strict=True):
        assert c.purpose == Purpose(text=why) and c.address == "127.0.0.1"
        row = lena.page.locator(f'#consultations tr[data-consultation-id="{c.id}"]')
        expect(row.locator("time")).to_have_attribute("datetime", c.at)
        expect(row.locator("time")).to_have_text(london(c.at))
        expect(row.locator("td.c-user")).to_have_text("anaanalyst · no staff id")
        expect(row.locator("td.c-address")).to_have_text("127.0.0.1")
        expect(row.locator("td.c-read")).to_have_text(f"{c.what.kind}{c.route}")
        expect(row.locator("td.c-purpose")).to_have_text(why)
        for kind, ids in c.what.ids.items():
            cell = row.locator(f'td.c-ids [data-kind="{kind}"]')
            if not ids:
                expect(cell).to_have_count(0)
                continue
            shown = ids[:8]
            more = c.what.counts[kind] - len(shown)
            expect(cell).to_have_text(f"{kind}: {' '.join(shown)}"
                                      + (f" (+{more} more)" if more else ""))
    subject_row = lena.page.locator(f'tr[data-consultation-id="{opened[0].id}"]')
    expect(subject_row.locator('[data-kind="subject"]')).to_contain_text(VICTIM)
    timeline_row = lena.page.locator(f'tr[data-consultation-id="{opened[1].id}"]')
    expect(timeline_row.locator('[data-kind="member"]')).to_contain_text(SUSPECT)
    assert timeline_row.locator("td.c-purpose b").count() == 0  # text, not markup
    lena.shot("consultations")

    # Narrowed by time (London wall time, to the minute): from the minute of the
    # subject's read, both; up to it, only what was read before that minute.
    minute, wall = opened[0].at[:16], wall_minute(opened[0].at)
    filtered(lena, **{"from": wall})
    assert rows(lena) == [c.id for c in reversed(opened)]
    then_ready(lena, "#consultations", lambda: lena.page.click("#cl-clear"))
    filtered(lena, to=wall)
    assert rows(lena) == [c.id for c in reversed(ws.consulted.written) if c.at[:16] < minute]
    expect(lena.page.locator("#cl-user")).to_have_value("")
    # A user who read nothing: none, and the page says so.
    then_ready(lena, "#consultations", lambda: lena.page.click("#cl-clear"))
    filtered(lena, user="vic")
    assert rows(lena) == []
    expect(lena.page.locator("#consultations .empty")).to_have_text(
        "No consultations match these filters.")
    lena.close()
