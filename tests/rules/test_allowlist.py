"""Allow-list entries with a reason and an expiry: applied until the day ends, then
left out with a one-line warning; a malformed entry is a problem with file:line."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from textwrap import dedent

import pytest

from accesswatch.cli import main
from accesswatch.core import Detector
from accesswatch.core.state import Member
from accesswatch.rules import RulePackError, load_rules, parse_rules
from tests.core.force import build_force, ev

SOURCE = "rules/local.yaml"
EXPIRES = date(2026, 3, 31)
BEFORE, LAST_DAY, AFTER = date(2026, 3, 1), EXPIRES, date(2026, 4, 1)
REASON = "PSD audit of Op HALO, ref PSD-2026-031"

# u1 opening their own record (P-U1) fires AW-100 unless u1 is exempt.
SHARED = dedent(f"""\
    lists:
      auditors:
        - psd-audit-1
        - {{value: u1, reason: "{REASON}", expires: 2026-03-31}}
    rules:
      - id: AW-100
        title: Own record
        kind: relationship
        relation: self
        unless_justified: false
        severity: high
        exempt: {{users: [$auditors]}}
""")
INLINE = dedent("""\
    rules:
      - id: AW-100
        title: Own record
        kind: relationship
        relation: self
        unless_justified: false
        severity: high
        exempt:
          roles:
            - value: constable
              reason: cover for the audit team
              expires: 2026-03-31
""")


def fires_for_u1(text: str, today: date) -> bool:
    pack = parse_rules(text, SOURCE, today=today)
    outcome = Detector(pack, build_force()).process(ev("u1", subject="P-U1"), Member())
    return any(a.rule_id == "AW-100" for a in outcome.changed)


@pytest.mark.parametrize("text", [SHARED, INLINE], ids=["shared-list", "inline-exempt"])
def test_an_entry_applies_through_its_expiry_day_and_not_after(text: str) -> None:
    assert not fires_for_u1(text, BEFORE)
    assert not fires_for_u1(text, LAST_DAY)
    assert fires_for_u1(text, AFTER)


def test_an_expired_entry_is_left_out_and_the_rest_kept() -> None:
    before, after = (parse_rules(SHARED, SOURCE, today=d) for d in (BEFORE, AFTER))
    assert before.lists["auditors"] == ["psd-audit-1", "u1"]
    assert after.lists["auditors"] == ["psd-audit-1"]
    assert after.rules[0].exempt.users == ["psd-audit-1"]
    assert before.warnings == ()


def test_the_warning_names_file_line_list_value_and_reason() -> None:
    pack = parse_rules(SHARED, SOURCE, today=AFTER)
    assert pack.warnings == (
        f"{SOURCE}:4: list 'auditors' entry 'u1' expired on 2026-03-31 and is not applied "
        f"(reason: {REASON})",
    )


def test_an_inline_entry_warns_with_its_rule_and_one_line() -> None:
    text = INLINE.replace(
        "cover for the audit team", "|-\n                cover for\n                the audit team"
    )
    (warning,) = parse_rules(text, SOURCE, today=AFTER).warnings
    assert warning == (
        f"{SOURCE}:10 rule AW-100: exempt.roles entry 'constable' expired on "
        "2026-03-31 and is not applied (reason: cover for the audit team)"
    )
    assert "\n" not in warning


def test_next_expiry_and_lapsed_say_when_to_read_the_pack_again() -> None:
    pack = parse_rules(SHARED, SOURCE, today=BEFORE)
    assert pack.next_expiry == EXPIRES
    assert not pack.lapsed(LAST_DAY) and pack.lapsed(AFTER)
    assert parse_rules(SHARED, SOURCE, today=AFTER).next_expiry is None


def test_plain_entries_never_expire() -> None:
    pack = parse_rules(SHARED.replace("expires: 2026-03-31", "expires: 2099-01-01"), SOURCE)
    assert pack.lists["auditors"] == ["psd-audit-1", "u1"] and not pack.warnings
    assert pack.next_expiry == date(2099, 1, 1)


def entry(text: str) -> str:
    """SHARED with u1's entry replaced by ``text`` (line 4)."""
    return SHARED.replace(f'{{value: u1, reason: "{REASON}", expires: 2026-03-31}}', text)


@pytest.mark.parametrize(
    ("text", "line", "rule_id", "words"),
    [
        (
            entry("{value: u1, reason: x, expiry: 2026-03-31}"),
            4,
            None,
            "list 'auditors' entry 2: unknown key 'expiry'",
        ),
        (entry("{value: u1, reason: x, expiry: 2026-03-31}"), 4, None, "did you mean `expires`"),
        (entry("{value: u1, expires: 2026-03-31}"), 4, None, "'u1' needs a `reason`"),
        (entry("{value: u1, reason: '  '}"), 4, None, "'u1' needs a `reason`"),
        (entry("{value: '', reason: x}"), 4, None, "`value` must be"),
        (entry("{reason: x}"), 4, None, "`value` must be"),
        (
            entry("{value: u1, reason: x, expires: 2026-02-30}"),
            4,
            None,
            "expires '2026-02-30': not a date like 2027-03-31",
        ),
        (entry("{value: u1, reason: x, expires: soon}"), 4, None, "not a date"),
        (entry("{value: u1, reason: x, expires: 2026-03-31T10:00:00Z}"), 4, None, "not a date"),
        (entry("{value: u1, reason: x, expires: 31/03/2026}"), 4, None, "not a date"),
        (entry("{value: u1, reason: x, expires: }"), 4, None, "not a date"),
        (entry("12345"), 4, None, "must be a string, or a mapping"),
        (
            INLINE.replace("expires: 2026-03-31", "expires: tomorrow"),
            10,
            "AW-100",
            "exempt.roles entry 1: 'constable' expires 'tomorrow'",
        ),
        (
            INLINE.replace("reason: cover for the audit team", "because: cover"),
            10,
            "AW-100",
            "unknown key 'because'",
        ),
        # an expiring list would quietly narrow what a rule looks for outside exempt:
        (
            SHARED.replace("relation: self", "relation: self\n    tags: [$auditors]"),
            10,
            "AW-100",
            "only `exempt:` may use it",
        ),
    ],
)
def test_a_malformed_entry_names_file_line_and_rule(
    text: str, line: int, rule_id: str | None, words: str
) -> None:
    with pytest.raises(RulePackError) as info:
        parse_rules(text, SOURCE, today=BEFORE)
    (problem,) = info.value.details
    assert (problem.path, problem.line, problem.rule_id) == (SOURCE, line, rule_id), str(problem)
    assert words in problem.message
    assert "Traceback" not in str(info.value)


def test_a_broken_list_is_reported_once_where_it_is_defined() -> None:
    with pytest.raises(RulePackError) as info:
        parse_rules(entry("{value: u1}"), SOURCE)
    assert [p.line for p in info.value.details] == [4]


def test_rules_and_backtest_print_each_warning_on_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pack = tmp_path / "local.yaml"
    pack.write_text(SHARED.replace("2026-03-31", "2020-01-31"))  # long past, whatever today is
    assert main(["rules", str(pack)]) == 0
    out, err = capsys.readouterr()
    assert err == (
        f"warning: {pack}:4: list 'auditors' entry 'u1' expired on 2020-01-31 and "
        f"is not applied (reason: {REASON})\n"
    )
    assert "1 rules" in out
    assert load_rules(pack).warnings == (err.removeprefix("warning: ").strip(),)
