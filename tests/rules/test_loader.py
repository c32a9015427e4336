"""A bad rules file fails with file, line and rule id."""

from __future__ import annotations

from pathlib import Path

import pytest

from accesswatch.errors import RulesError
from accesswatch.rules import load_rules, parse_rules

GOOD_RULE = """\
  - id: AW-100
    title: Own record
    kind: relationship
    relation: self
    severity: high
"""


def pack(*rules: str, head: str = "version: 1\n") -> str:
    return head + "rules:\n" + "".join(rules)


@pytest.mark.parametrize(
    ("text", "line", "rule_id", "words"),
    [
        # unknown key inside a rule: the key's own line
        (
            pack(
                GOOD_RULE,
                "  - id: AW-101\n    title: x\n    kind: victim\n    severity: high\n"
                "    colour: red\n",
            ),
            12,
            "AW-101",
            "unknown field `colour`",
        ),
        # bad enum value
        (
            pack("  - id: AW-102\n    title: x\n    kind: victim\n    severity: huge\n"),
            6,
            "AW-102",
            "Invalid enum value 'huge'",
        ),
        # unknown kind
        (
            pack("  - id: AW-103\n    title: x\n    kind: telepathy\n    severity: low\n"),
            5,
            "AW-103",
            "telepathy",
        ),
        # a duration that is not one
        (
            pack(
                "  - id: AW-104\n    title: x\n    kind: window_count\n    severity: low\n"
                "    window: fortnight\n"
            ),
            7,
            "AW-104",
            "not a duration",
        ),
        # a window that must be > 0
        (
            pack(
                "  - id: AW-105\n    title: x\n    kind: window_count\n    severity: low\n"
                "    window: 0m\n"
            ),
            7,
            "AW-105",
            "window must be > 0",
        ),
        # a missing required field
        (pack("  - id: AW-106\n    kind: victim\n    severity: low\n"), 3, "AW-106", "title"),
        # duplicate id
        (pack(GOOD_RULE, GOOD_RULE), 8, "AW-100", "duplicate id"),
        # a reference to a list that does not exist
        (
            pack(
                "  - id: AW-107\n    title: x\n    kind: flagged_record\n    severity: low\n"
                "    flags: [$nope]\n"
            ),
            7,
            "AW-107",
            "unknown list '$nope'",
        ),
        # unknown top-level key
        ("version: 1\nrulez: []\nrules:\n" + GOOD_RULE, 2, None, "unknown top-level key"),
    ],
)
def test_bad_rule_names_file_line_and_rule(
    text: str, line: int, rule_id: str | None, words: str
) -> None:
    with pytest.raises(RulesError) as info:
        parse_rules(text, "rules/bad.yaml")
    err = info.value
    assert err.path == "rules/bad.yaml"
    assert err.rule_id == rule_id
    assert words in err.message
    if line is not None:
        assert err.line == line, str(err)
    assert str(err).startswith(f"rules/bad.yaml:{err.line}")


def test_invalid_yaml_names_line() -> None:
    with pytest.raises(RulesError) as info:
        parse_rules("rules:\n  - id: AW-1\n    title: [unclosed\n", "x.yaml")
    assert info.value.line is not None and info.value.line >= 3
    assert "not valid YAML" in str(info.value)


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match=r"nope\.yaml"):
        load_rules(tmp_path / "nope.yaml")


def test_lists_expand_into_rules() -> None:
    text = (
        "lists:\n  flags: [vip, protected]\n  auditors: [psd1]\nrules:\n"
        "  - id: AW-200\n    title: x\n    kind: flagged_record\n    severity: high\n"
        "    flags: [$flags, restricted]\n    exempt: {users: [$auditors]}\n"
    )
    rule = parse_rules(text).rules[0]
    assert rule.flags == ["vip", "protected", "restricted"]  # type: ignore[attr-defined]
    assert rule.exempt.users == ["psd1"]


def test_shipped_pack_loads_and_is_versioned() -> None:
    pack = load_rules()
    assert len({r.id for r in pack.rules}) == len(pack.rules) >= 15
    assert len(pack.version) == 12
