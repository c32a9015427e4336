"""A pack's problems all at once: repeated keys, allowed values, "did you mean"."""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path
from textwrap import dedent
from typing import get_args

import msgspec
import pytest
import yaml

from accesswatch.errors import AccessWatchError, RulesError
from accesswatch.rules import RulePackError, load_rules, parse_rules
from accesswatch.rules.loader import default_rules_path
from accesswatch.rules.types import AnyRule, Settings, Severity

SOURCE = "rules/bad.yaml"


def problems_in(text: str) -> RulePackError:
    with pytest.raises(RulePackError) as info:
        parse_rules(text, SOURCE)
    return info.value


def line(text: str, snippet: str, occurrence: int = 1) -> int:
    """The 1-based line of the ``occurrence``-th line of ``text`` containing ``snippet``."""
    hits = [n for n, ln in enumerate(text.splitlines(), 1) if snippet in ln]
    return hits[occurrence - 1]


# --- repeated keys ---------------------------------------------------------

TOP_REPEATED = dedent("""\
    version: 1
    settings:
      horizon: 24h
    settings:
      horizon: 12h
    rules:
      - id: AW-100
        title: Own record
        kind: relationship
        severity: high
""")

RULE_REPEATED = dedent("""\
    version: 1
    rules:
      - id: AW-100
        title: Own record
        kind: relationship
        severity: high
        risk: 10
        severity: low
""")

NESTED_REPEATED = dedent("""\
    rules:
      - id: AW-100
        title: Own record
        kind: relationship
        severity: high
        exempt:
          users: [psd1]
          roles: [auditor]
          users: [psd2]
""")

ID_REPEATED = dedent("""\
    rules:
      - id: AW-100
        title: Own record
        kind: relationship
        severity: high
      - id: AW-101
        title: Other record
        id: AW-102
        kind: relationship
        severity: high
""")


@pytest.mark.parametrize(
    ("text", "key", "rule_id", "first", "again"),
    [
        (TOP_REPEATED, "settings", None, "settings:", "settings:\n  horizon: 12h"),
        (RULE_REPEATED, "severity", "AW-100", "severity: high", "severity: low"),
        (NESTED_REPEATED, "users", "AW-100", "[psd1]", "[psd2]"),  # at any depth
        (ID_REPEATED, "id", "AW-102", "id: AW-101", "id: AW-102"),  # the id loading keeps
    ],
    ids=["top-level", "in-a-rule", "nested", "rule-id"],
)
def test_a_repeated_key_is_refused_at_its_second_line(
    text: str, key: str, rule_id: str | None, first: str, again: str
) -> None:
    assert yaml.safe_load(text) is not None  # YAML alone keeps the last value, silently
    first_line = line(text, first)
    again_line = text[: text.index(again)].count("\n") + 1
    assert again_line > first_line
    err = problems_in(text)
    assert len(err.details) == 1, str(err)
    problem = err.details[0]
    assert (problem.path, problem.line, problem.rule_id) == (SOURCE, again_line, rule_id)
    message = f"repeated key {key!r} (first at line {first_line})"
    assert problem.message == message
    who = f" rule {rule_id}" if rule_id else ""
    assert str(err) == f"{SOURCE}:{again_line}{who}: {message}"


def test_the_same_key_in_different_mappings_is_not_repeated() -> None:
    text = dedent("""\
        lists:
          auditors: [psd1]
        rules:
          - id: AW-100
            title: x
            kind: relationship
            severity: high
            exempt: {users: [$auditors]}
          - id: AW-101
            title: x
            kind: relationship
            severity: high
            exempt: {users: [$auditors]}
    """)
    assert [r.id for r in parse_rules(text).rules] == ["AW-100", "AW-101"]


# --- every problem at once -------------------------------------------------

THREE_PROBLEMS = dedent("""\
    version: 1
    rules:
      - id: AW-100
        title: Own record
        kind: relationship
        severity: huge
      - id: AW-101
        title: Flagged
        kind: flagged_record
        flags: [vip]
        severity: low
        colour: red
      - id: AW-102
        title: Busy
        kind: window_count
        severity: low
        window: 1h
        window: 2h
""")


def test_every_problem_in_a_pack_is_reported_at_once() -> None:
    with pytest.raises(RulesError) as info:  # callers that catch RulesError still do
        parse_rules(THREE_PROBLEMS, SOURCE)
    err = info.value
    assert isinstance(err, RulePackError) and isinstance(err, AccessWatchError)
    where = [(p.line, p.rule_id) for p in err.details]
    assert where == [
        (line(THREE_PROBLEMS, "severity: huge"), "AW-100"),
        (line(THREE_PROBLEMS, "colour: red"), "AW-101"),
        (line(THREE_PROBLEMS, "window: 2h"), "AW-102"),
    ]
    assert err.problems == [str(p) for p in err.details]
    assert "Invalid enum value 'huge'" in err.problems[0]
    assert "unknown field `colour`" in err.problems[1]
    assert "repeated key 'window'" in err.problems[2]
    # str(): one line per problem, the first standing on its own.
    lines = str(err).splitlines()
    assert len(lines) == 3
    assert lines[0] == f"3 problems in {SOURCE}: {err.problems[0]}"
    assert [ln.strip() for ln in lines[1:]] == err.problems[1:]
    # The first problem's attributes, as a single RulesError had them.
    assert (err.path, err.line, err.rule_id) == (SOURCE, where[0][0], "AW-100")


def test_summary_is_one_line_pointing_at_the_full_listing(tmp_path: Path) -> None:
    path = tmp_path / "my rules.yaml"
    path.write_text(THREE_PROBLEMS)
    with pytest.raises(RulePackError) as info:
        load_rules(path)
    summary = info.value.summary()
    assert "\n" not in summary
    assert summary == (
        f"3 problems in {path}: {info.value.problems[0]} "
        f"(and 2 more; run `accesswatch rules '{path}'` to list them)"
    )


def test_the_error_survives_pickling() -> None:
    err = problems_in(THREE_PROBLEMS)
    again = pickle.loads(pickle.dumps(err))
    assert (type(again), again.problems, str(again)) == (RulePackError, err.problems, str(err))


def test_a_single_problem_reads_as_before() -> None:
    err = problems_in(RULE_REPEATED)
    assert str(err) == err.summary() == err.problems[0]
    assert str(err).startswith(f"{SOURCE}:{line(RULE_REPEATED, 'severity: low')} rule AW-100: ")


def test_problems_are_listed_in_file_order_across_sections() -> None:
    text = dedent("""\
        lists:
          staff: psd1
        settings:
          horizon: soon
        rules:
          - id: AW-100
            title: x
            kind: flagged_record
            severity: high
            flags: [$staff, $nobody]
    """)
    err = problems_in(text)
    assert [p.line for p in err.details] == [2, 4, 10]
    assert "list 'staff' must be a list of strings" in err.problems[0]
    assert "horizon" in err.problems[1]
    assert err.problems[2].endswith("rule AW-100: unknown list '$nobody'")
    assert "$staff" not in str(err)  # a broken list is reported once, where it is defined


# --- allowed values and "did you mean" -------------------------------------


def rule(**fields: str) -> str:
    body = {"id": "AW-100", "title": "x", "kind": "window_count", "severity": "low", **fields}
    return "rules:\n  - " + "\n    ".join(f"{k}: {v}" for k, v in body.items()) + "\n"


@pytest.mark.parametrize(
    ("text", "at", "allowed", "guess"),
    [
        (rule(severity="huge"), "`$.severity`", get_args(Severity), None),
        (rule(severity="hgih"), "`$.severity`", get_args(Severity), "high"),
        (
            rule(actions="[view, jump]"),
            "`$.actions[1]`",
            ("search", "view", "print", "export", "update"),
            None,
        ),
        (
            rule(kind="windowcount"),
            "`$.kind`",
            tuple(cls.__struct_config__.tag for cls in get_args(AnyRule)),
            "window_count",
        ),
    ],
    ids=["severity", "severity-misspelt", "action-in-a-list", "kind"],
)
def test_an_invalid_enum_lists_the_allowed_values(
    text: str, at: str, allowed: tuple[str, ...], guess: str | None
) -> None:
    err = problems_in(text)
    assert len(err.problems) == 1, str(err)
    message = err.details[0].message
    assert at in message
    assert f"(allowed: {', '.join(allowed)}" in message
    assert (f"did you mean {guess!r}?" in message) == (guess is not None), message
    assert err.rule_id == "AW-100"


@pytest.mark.parametrize(
    ("text", "bad", "meant"),
    [
        (rule(sevrity="low").replace("    severity: low\n", ""), "sevrity", "severity"),
        (rule(treshold="12"), "treshold", "threshold"),
        (rule(exempt="{userz: [psd1]}"), "userz", "users"),
        ("settings:\n  horizn: 12h\n" + rule(), "horizn", "horizon"),
    ],
    ids=["required-key", "kind-specific-key", "nested-key", "settings-key"],
)
def test_a_misspelt_key_suggests_the_right_one(text: str, bad: str, meant: str) -> None:
    err = problems_in(text)
    # One problem: the misspelling, not also "missing required field `severity`".
    assert len(err.problems) == 1, str(err)
    assert f"unknown field `{bad}`" in err.message
    assert err.message.endswith(f"(did you mean `{meant}`?)")
    assert err.line == line(text, f"{bad}:")


def test_a_misspelt_top_level_key_suggests_the_right_one() -> None:
    err = problems_in("version: 1\nrulez: []\n" + rule())
    assert err.problems == [f"{SOURCE}:2: unknown top-level key 'rulez' (did you mean 'rules'?)"]


def test_no_suggestion_when_nothing_is_close() -> None:
    err = problems_in(rule(colour="red"))
    assert err.message == "Object contains unknown field `colour`"


# --- valid packs load as before --------------------------------------------

SHIPPED_VERSION = "00d7feba65be"  # sha256 of default.yaml: change both pins with the pack
SHIPPED_DIGEST = "d211da162947"  # sha256 of the rules, lists and settings it loads to


def test_the_shipped_pack_loads_to_the_same_rule_pack() -> None:
    pack = load_rules()
    text = default_rules_path().read_text(encoding="utf-8")
    loaded = msgspec.json.encode([pack.rules, pack.lists, pack.settings])
    assert (pack.version, hashlib.sha256(loaded).hexdigest()[:12]) == (
        SHIPPED_VERSION,
        SHIPPED_DIGEST,
    ), "default.yaml or how it loads changed; if on purpose, update both pins"
    # And it is what plain msgspec makes of the YAML, lists expanded.
    data = yaml.safe_load(text)
    lists = data["lists"]

    def expand(value: object) -> object:
        if isinstance(value, dict):
            return {k: expand(v) for k, v in value.items()}
        if isinstance(value, list):
            shared = [lists[i[1:]] if str(i).startswith("$") else [i] for i in value]
            return [item for items in shared for item in items]
        return value

    assert pack.rules == tuple(msgspec.convert(expand(r), AnyRule) for r in data["rules"])
    assert pack.settings == msgspec.convert(data["settings"], Settings)
    assert pack.lists == lists
