"""Load a YAML rule pack into typed rules; every problem names file, line and rule.

A pack's problems are gathered and raised together as one ``RulePackError``.
Allow-list entries past their ``expires`` date are left out, each with a
warning (``allowlist.py``).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import date
from importlib.resources import files
from pathlib import Path
from typing import Any

import msgspec
import yaml

from accesswatch.rules.allowlist import Allowances, today_in
from accesswatch.rules.problems import Problems, nearest
from accesswatch.rules.schema import check_struct, key_nodes, line_of, value_nodes
from accesswatch.rules.types import AnyRule, Rule, Settings

_TOP_KEYS = {"version", "lists", "settings", "rules"}
_PATH = re.compile(r"at `\$\.([A-Za-z_]+)")
_UNKNOWN = re.compile(r"unknown field `([^`]+)`")


class _PackLoader(yaml.SafeLoader):
    """YAML dates stay text: ``allowlist.py`` reads them and names the line of a bad
    one (PyYAML raises a bare ValueError for ``2027-02-30``)."""




def _date_as_text(loader: yaml.SafeLoader, node: yaml.Node) -> str:
    return str(node.value)


_PackLoader.add_constructor("tag:yaml.org,2002:timestamp", _date_as_text)


@dataclass(frozen=True)
class RulePack:
    rules: tuple[Rule, ...]
    lists: dict[str, list[str]]
    settings: Settings
    source: str
    version: str  # content hash: which pack is in force, for metrics and alerts
    # One line per allow-list entry left out because it expired, for the user to see.
    warnings: tuple[str, ...] = ()
    # The soonest expiry among the entries applied: after that day, load the pack again.
    next_expiry: date | None = None

    @property
    def active(self) -> tuple[Rule, ...]:
        return tuple(r for r in self.rules if r.status != "deprecated")

    def lapsed(self, today: date | None = None) -> bool:
        """Whether an allow-list entry applied when the pack was read has expired since."""
        if self.next_expiry is None:
            return False
        return (today or today_in(self.settings.timezone)) > self.next_expiry


def default_rules_path() -> Path:
    return Path(str(files("accesswatch.rules").joinpath("default.yaml")))


def load_rules(path: Path | str | None = None, *, today: date | None = None) -> RulePack:
    """Load and validate a rule pack (the shipped one by default).

    ``today`` judges allow-list expiry (default: today in the pack's time zone).
    """
    path = Path(path) if path is not None else default_rules_path()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        Problems(str(path)).fail(None, None, f"cannot read: {e}")
    return parse_rules(text, str(path), today=today)


def parse_rules(text: str, source: str = "<rules>", *, today: date | None = None) -> RulePack:
    """Validate a pack; raise ``RulePackError`` listing every problem found."""
    problems = Problems(source)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.load(text, Loader=_PackLoader)
    except yaml.YAMLError as e:  # nothing further can be read
        mark = getattr(e, "problem_mark", None)
        problems.fail(
            mark.line + 1 if mark is not None else None,
            None,
            f"not valid YAML: {getattr(e, 'problem', e)}",
        )
    if not isinstance(data, dict) or root is None:
        problems.fail(1, None, "a rule pack is a mapping with a `rules:` list")
    _repeated_keys(root, problems)
    top = value_nodes(root)
    for key in data:
        if key not in _TOP_KEYS:
            guess = nearest(key, _TOP_KEYS)
            hint = f" (did you mean {guess!r}?)" if guess else ""
            problems.add(
                line_of(key_nodes(root).get(key), root),
                None,
                f"unknown top-level key {key!r}{hint}",
            )
    settings = _convert(
        data.get("settings") or {}, Settings, problems, top.get("settings") or root, None
    )
    zone = settings.timezone if settings is not None else Settings().timezone
    allowances = Allowances(problems, today or today_in(zone))
    lists, broken, annotated = _lists(
        data.get("lists") or {}, allowances, top.get("lists") or root
    )
    raw_rules = data.get("rules")
    rules_node = top.get("rules")
    if not isinstance(raw_rules, list) or not raw_rules or rules_node is None:
        problems.fail(line_of(rules_node, root), None, "`rules:` must be a non-empty list")
    rules: list[Rule] = []
    seen: dict[str, int] = {}
    for raw, node in zip(raw_rules, rules_node.value, strict=True):
        if not isinstance(raw, dict):
            problems.add(line_of(node), None, "each rule is a mapping")
            continue
        rule_id = raw.get("id") if isinstance(raw.get("id"), str) else None
        if rule_id is not None:
            if rule_id in seen:
                problems.add(
                    line_of(node), rule_id, f"duplicate id (first at line {seen[rule_id]})"
                )
            seen.setdefault(rule_id, line_of(node) or 0)
        expanded, complete = _expand(raw, lists, broken, annotated, allowances, node, rule_id)
        rule = _convert(expanded, AnyRule, problems, node, rule_id, checked=complete)
        if rule is not None:
            rules.append(rule)
    problems.raise_any()
    version = hashlib.sha256(text.encode()).hexdigest()[:12]
    return RulePack(tuple(rules), lists, settings, source, version,
                    tuple(allowances.warnings), allowances.next_expiry)


def _convert(
    value: Any,
    typ: Any,
    problems: Problems,
    node: yaml.Node,
    rule_id: str | None,
    checked: bool = True,
) -> Any:
    """``value`` as a ``typ``, or None with its problems added.

    The key-by-key check reports every bad key; the whole conversion then
    catches what spans fields (``__post_init__``).  It is skipped when the rule
    already has problems (``checked=False``), whose knock-on errors would mislead.
    """
    found = check_struct(value, typ, node)
    for line, message in found:
        problems.add(line, rule_id, message)
    if found or not checked:
        return None
    try:
        return msgspec.convert(value, typ)
    except msgspec.ValidationError as e:
        message = str(e)
        field = _PATH.search(message) or _UNKNOWN.search(message)
        name = field.group(1) if field else message.split(" ", 1)[0].rstrip(":")
        problems.add(line_of(key_nodes(node).get(name), node), rule_id, message)
        return None


def _lists(
    value: Any, allowances: Allowances, node: yaml.Node
) -> tuple[dict[str, list[str]], set[str], set[str]]:
    """The pack's shared lists (their entries that apply today), the names of those
    that are malformed, and of those with ``{value, reason, expires}`` entries."""
    problems = allowances.problems
    if not isinstance(value, dict):
        problems.add(line_of(node), None, "`lists:` must map names to lists")
        return {}, set(), set()
    good: dict[str, list[str]] = {}
    broken: set[str] = set()
    annotated: set[str] = set()
    keys, kids = key_nodes(node), value_nodes(node)
    for name, items in value.items():
        if not isinstance(items, list):
            broken.add(name)
            problems.add(
                line_of(keys.get(name), node),
                None,
                f"list {name!r} must be a list of strings (or of allow-list entries: "
                "`value`, `reason`, `expires`)",
            )
            continue
        if any(isinstance(i, dict) for i in items):
            annotated.add(name)
        values = allowances.values(items, kids.get(name), f"list {name!r}", None)
        if values is None:
            broken.add(name)
        else:
            good[name] = values
    return good, broken, annotated


def _expand(
    raw: dict[str, Any],
    lists: dict[str, list[str]],
    broken: set[str],
    annotated: set[str],
    allowances: Allowances,
    node: yaml.Node,
    rule_id: str | None,
) -> tuple[dict[str, Any], bool]:
    """Replace ``$name`` items in string lists with the shared list's items, and
    ``exempt:`` entries with the values of those that apply today.

    Also says whether every item could be read (a broken list is reported once,
    where it is defined).  A list with ``{value, reason, expires}`` entries is an
    allow-list: used outside ``exempt:``, an expiry would quietly narrow what a
    rule looks for, so that is refused.
    """
    problems = allowances.problems
    complete = True

    def walk(value: Any, at: yaml.Node, path: tuple[str, ...]) -> Any:
        if isinstance(value, dict):
            kids, keys = value_nodes(at), key_nodes(at)
            return {
                k: walk(v, kids.get(k, at), (*path, k))
                if isinstance(v, dict)
                else walk_list(v, keys.get(k, at), kids.get(k), (*path, str(k)))
                for k, v in value.items()
            }
        return walk_list(value, at, None, path)

    def walk_list(
        value: Any, at: yaml.Node, seq: yaml.Node | None, path: tuple[str, ...]
    ) -> Any:
        nonlocal complete
        if not isinstance(value, list):
            return value
        allow = len(path) == 2 and path[0] == "exempt"
        out: list[Any] = []
        for n, item in enumerate(value):
            if not (isinstance(item, str) and item.startswith("$")):
                if not allow:
                    out.append(item)
                    continue
                item_node = seq.value[n] if isinstance(seq, yaml.SequenceNode) else at
                ok, applies = allowances.read(item, item_node, ".".join(path), n, rule_id)
                complete = complete and ok
                if applies is not None:
                    out.append(applies)
            elif item[1:] in lists:
                if item[1:] in annotated and not allow:
                    complete = False
                    problems.add(
                        line_of(at, node),
                        rule_id,
                        f"list {item!r} holds allow-list entries (`value`, `reason`, "
                        "`expires`): only `exempt:` may use it",
                    )
                out.extend(lists[item[1:]])
            else:
                complete = False
                if item[1:] not in broken:
                    guess = nearest(item[1:], lists)
                    hint = f" (did you mean '${guess}'?)" if guess else ""
                    problems.add(line_of(at, node), rule_id, f"unknown list {item!r}{hint}")
        return out

    expanded: dict[str, Any] = walk(raw, node, ())
    return expanded, complete


def _repeated_keys(root: yaml.Node, problems: Problems) -> None:
    """Report a key given twice in one mapping, at any depth (YAML would keep the last)."""
    seen: set[int] = set()  # an alias reuses a node: check it once, and never loop

    def walk(node: yaml.Node, rule_id: str | None, in_rules: bool = False) -> None:
        if id(node) in seen:
            return
        seen.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            for item in node.value:
                walk(item, _rule_id(item) if in_rules else rule_id)
        elif isinstance(node, yaml.MappingNode):
            first: dict[tuple[str, str], int] = {}
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode):
                    line = line_of(key) or 0
                    if (key.tag, key.value) in first:
                        where = first[(key.tag, key.value)]
                        problems.add(
                            line, rule_id, f"repeated key {key.value!r} (first at line {where})"
                        )
                    else:
                        first[(key.tag, key.value)] = line
                walk(value, rule_id, in_rules=node is root and key.value == "rules")

    walk(root, None)


def _rule_id(node: yaml.Node) -> str | None:
    """A rule's id as loading sees it (the last ``id:`` if it is repeated)."""
    found = None
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if key.value == "id" and isinstance(value, yaml.ScalarNode):
                found = value.value
    return found
