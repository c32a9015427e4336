"""End to end in headless Chromium: sign in, a live alert appears, its evidence, triage, restart.

Drives Debian's ``/usr/bin/chromium`` with Playwright (no browser download).  The
screenshot it takes is the one in the README: ``docs/console.png``.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import time
from pathlib import Path

import pytest

from console.config import ConsoleSettings, console_topic_specs
from streams.settings import Settings
from streams.topics import create_topics
from tests.console.conftest import SCREENSHOTS
from tests.console.helpers import QUERY_TEXT, users_yaml
from tests.console.live import (
    STAFF,
    ConsoleProcess,
    alert,
    background_alerts,
    event,
    producer,
    send,
    version,
)
from tests.streams.live import read_topic

pytestmark = pytest.mark.broker
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = ROOT / "docs" / "console.png"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-gpu",
                 "--no-first-run", "--disable-component-update", "--disable-sync"]
MODEL = {"name": "iforest", "version": "3f9a1c2d", "anomaly_score": 0.7312, "top_features": [
    {"name": "opens_last_hour", "value": 61.0, "baseline": 5.0},
    {"name": "prints_last_hour", "value": 12.0, "baseline": 0.4},
    {"name": "unjustified_share", "value": 0.82, "baseline": 0.1}]}


def chromium() -> str:
    path = shutil.which("chromium") or "/usr/bin/chromium"
    if not os.path.exists(path):
        (pytest.fail if os.environ.get("CI") else pytest.skip)(
            "chromium is not installed (make tools installs it)")
    return path


def test_sign_in_watch_an_alert_arrive_triage_it_and_keep_the_decision_over_a_restart(
        live_settings: Settings, live_env: dict[str, str], tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    expect = sync_api.expect
    browser_path = chromium()
    s = ConsoleSettings(_env_file=None)  # type: ignore[call-arg]
    create_topics(s)
    create_topics(s, console_topic_specs(s))
    tag = live_env["ACCESSWATCH_APP_ID"][:9]
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    p = producer(s)
    for user_id, role, unit, area in STAFF:
        send(p, s.topic_ref_staff, user_id, {"user_id": user_id, "surname": "X", "role": role,
                                             "unit": unit, "area": area, "status": "active"})
    minute = dt.timedelta(minutes=1)
    evidence = [
        event(f"{tag}-e1", "E17806", now - 9 * minute, "search", None, None, system="PNC"),
        event(f"{tag}-e2", "E17806", now - 8 * minute, "view", "PER-3851377", None),
        event(f"{tag}-e3", "E17806", now - 2 * minute, "print", "PER-3849822", "16/009034/26"),
    ]
    for e in evidence:
        send(p, s.topic_events, e["user_id"], e)
    for a in background_alerts(now, tag):
        send(p, s.topic_alerts, a["user_id"], a)
    users = users_yaml(tmp_path / "users.yaml")

    console = ConsoleProcess(live_env, tmp_path, users)
    try:
        console.wait_ready()
        # The real server, like the app in test_web.py, gives nothing without a session.
        assert console.status("GET", "/") == 303
        for method, path in [("GET", "/api/alerts"), ("GET", "/api/stream"),
                             ("GET", f"/api/alerts/aw-{tag}-bg00"), ("GET", "/api/ecs"),
                             ("POST", f"/api/alerts/aw-{tag}-bg00/triage")]:
            assert console.status(method, path) == 401, (method, path)
        with sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=browser_path, headless=True,
                                         args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))

            # Signed out, the console sends us to sign in.
            page.goto(f"{console.url}/")
            assert page.url.endswith("/login")
            page.fill("#username", "lena")
            page.fill("#password", "lead-password-1")
            page.click("button[type=submit]")
            page.wait_for_selector("#live.on")
            page.wait_for_selector(f'#feed tr[data-alert-id="aw-{tag}-bg00"]')

            # A new alert, published now, is in the feed within 2 seconds, without a reload.
            new_id = f"aw-{tag}-model"
            new = alert(new_id, "E17806", "AW-M01",
                        "Behaviour unlike this member's own (anomaly model)", "critical", 96.0,
                        now, [e["event_id"] for e in evidence],
                        ["opened 61 records in the last hour; their usual is 5 an hour",
                         "printed 12 records in the last hour; their usual is none"], MODEL,
                        first_seen=now - 9 * minute)
            started = time.monotonic()
            send(p, s.topic_alerts, "E17806", new)
            page.wait_for_selector(f'#feed tr[data-alert-id="{new_id}"]', timeout=2000)
            arrived = time.monotonic() - started
            assert arrived < 2.0, arrived
            print(f"\nalert in the feed {arrived * 1000:.0f} ms after it was published")

            # The filters apply to what arrives live too.
            page.select_option("#f-severity", "critical")
            expect(page.locator("#feed tbody tr")).to_have_count(2)
            page.select_option("#f-area", "East")
            expect(page.locator("#feed tbody tr")).to_have_count(1)
            page.select_option("#f-severity", "")
            page.select_option("#f-area", "")
            page.select_option("#f-sort", "newest")
            assert page.locator("#feed tbody tr").first.get_attribute("data-alert-id") == new_id
            page.select_option("#f-sort", "risk")

            # Open it: reasons, evidence in time order, the model's chart, the member's history.
            page.click(f'#feed tr[data-alert-id="{new_id}"]')
            reasons = page.locator("[data-testid=reasons] li")
            reasons.first.wait_for()
            assert reasons.all_inner_texts() == new["reasons"]
            rows = page.locator("[data-testid=evidence] li")
            assert rows.count() == 3
            texts = rows.all_inner_texts()
            assert "PNC" in texts[0] and "search" in texts[0]
            assert "view" in texts[1] and "PER-3851377" in texts[1] and "no case" in texts[1]
            assert "print" in texts[2] and "PER-3849822" in texts[2] and "16/009034/26" in texts[2]
            assert QUERY_TEXT not in page.content()
            assert page.locator("[data-testid=model-chart] rect").count() == 6
            assert page.locator("[data-testid=risk-chart] circle").count() == 3

            # Triage: assign, then decide with a note.
            page.select_option("#triage-assignee", "ana")
            page.click("[data-action=assign]")
            page.wait_for_selector("[data-testid=triage-log] li")
            page.fill("#triage-note", "Relative's record printed with no case; referred to PSD.")
            page.click("[data-action=misuse]")
            expect(page.locator("[data-testid=triage-status]")).to_have_text("misuse")
            row = page.locator(f'#feed tr[data-alert-id="{new_id}"]')
            assert "misuse" in row.inner_text()

            # More evidence: version 2 replaces the alert in place; the decision stays.
            v2 = {**version(new, 2, dt.datetime.now(dt.UTC)),
                  "reasons": [*new["reasons"], "and 3 more prints since"]}
            send(p, s.topic_alerts, "E17806", v2)
            expect(row.locator("[data-testid=updated]")).to_have_text("updated, v2")
            expect(page.locator("[data-testid=version]")).to_contain_text("updated, v2")
            assert reasons.all_inner_texts() == v2["reasons"]
            expect(page.locator("[data-testid=triage-status]")).to_have_text("misuse")
            # A replayed version 1, then another alert of the same member (same partition,
            # so it arrives after): once that one shows, the replay has been read, and ignored.
            send(p, s.topic_alerts, "E17806", new)
            later = alert(f"aw-{tag}-later", "E17806", "AW-010", "Access outside rostered duty",
                          "medium", 50.0, now, [evidence[0]["event_id"]], ["off duty"])
            send(p, s.topic_alerts, "E17806", later)
            page.wait_for_selector(f'#feed tr[data-alert-id="{later["alert_id"]}"]')
            expect(row.locator("[data-testid=updated]")).to_have_text("updated, v2")
            assert reasons.all_inner_texts() == v2["reasons"]

            # Restart the console: the decision comes back from the compacted topic.
            assert console.stop() == 0, console.tail()
            console = ConsoleProcess(live_env, tmp_path, users, port=console.port,
                                     name="console-2")
            console.wait_ready()
            page.goto(f"{console.url}/#/alert/{new_id}")
            expect(page.locator("[data-testid=triage-status]")).to_have_text("misuse",
                                                                             timeout=10_000)
            log = page.locator("[data-testid=triage-log] li").all_inner_texts()
            assert len(log) == 2
            assert log[0].startswith("Assign → ana by lena")
            assert log[1].startswith("Misuse by lena") and "referred to PSD" in log[1]
            page.wait_for_selector("#live.on")
            page.set_viewport_size({"width": 1440, "height": 1100})
            if SCREENSHOTS:  # refresh the README's
                page.screenshot(path=str(SCREENSHOT))
            assert not errors, errors
            browser.close()
    finally:
        console.stop()
        p.close()

    # Durable and audited: the compacted topic has the decision, the audit topic every step.
    decisions = [r for r in read_topic(s, s.triage_topic) if r.key == new_id.encode()]
    assert b'"status":"misuse"' in decisions[-1].value and b'"by":"lena"' in decisions[-1].value
    audit = [r.value for r in read_topic(s, s.triage_audit_topic)]
    assert len(audit) == 2 and b'"action":"assign"' in audit[0] and b'"action":"misuse"' in audit[1]
    assert QUERY_TEXT.encode() not in (tmp_path / "console.log").read_bytes()
