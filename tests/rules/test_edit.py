"""Setting a rule's field in the pack's text changes that value and nothing else."""

from __future__ import annotations

from textwrap import dedent

import pytest

from accesswatch.errors import AccessWatchError
from accesswatch.rules import parse_rules
from accesswatch.rules.edit import set_fields
from accesswatch.rules.loader import default_rules_path

PACK = dedent("""\
    # our pack
    rules:
      - id: AW-1   # enumeration
        title: x
        kind: window_count
        threshold: 20   # agreed with PSD, 2026-02
        severity: high
      - {id: AW-2, title: y, kind: off_duty, severity: low}
      - id: AW-3
        title: "z"
        kind: repeat_subject
        severity: low
""")


def test_a_value_is_replaced_where_it_stands() -> None:
    text = set_fields(PACK, {"AW-1": {"threshold": "30"}})
    assert text == PACK.replace("threshold: 20   #", "threshold: 30   #")


def test_a_field_left_at_its_default_is_added_to_its_rule() -> None:
    text = set_fields(PACK, {"AW-2": {"grace": "45m"}, "AW-3": {"min_days": "4"}})
    rules = {r.id: r for r in parse_rules(text).rules}
    assert rules["AW-2"].grace == "45m"  # type: ignore[attr-defined]
    assert rules["AW-3"].min_days == 4  # type: ignore[attr-defined]
    assert rules["AW-1"] == parse_rules(PACK).rules[0]
    assert "  - {id: AW-2, title: y, kind: off_duty, severity: low, grace: 45m}\n" in text
    assert "  - id: AW-3\n    min_days: 4\n    title:" in text


def test_the_shipped_pack_keeps_its_comments() -> None:
    shipped = default_rules_path().read_text()
    rule = {r.id: r for r in parse_rules(shipped).rules}["AW-009"]
    now = rule.threshold  # type: ignore[attr-defined]
    text = set_fields(shipped, {"AW-009": {"threshold": str(now + 5)}})
    changed = [
        (a, b) for a, b in zip(shipped.splitlines(), text.splitlines(), strict=True) if a != b
    ]
    assert changed == [(f"    threshold: {now}", f"    threshold: {now + 5}")]


def test_an_unknown_rule_is_refused() -> None:
    with pytest.raises(AccessWatchError, match="no rule AW-9"):
        set_fields(PACK, {"AW-9": {"threshold": "3"}})
