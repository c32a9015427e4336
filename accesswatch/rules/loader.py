"""Load a YAML rule pack into typed rules; every error names file, line and rule."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

import msgspec
import yaml

from accesswatch.errors import RulesError
from accesswatch.rules.types import AnyRule, Rule, Settings

_TOP_KEYS = {"version", "lists", "settings", "rules"}
_PATH = re.compile(r"at `\$\.([A-Za-z_]+)")
_UNKNOWN = re.compile(r"unknown field `([^`]+)`")


@dataclass(frozen=True)
class RulePack:
    rules: tuple[Rule, ...]
    lists: dict[str, list[str]]
    settings: Settings
    source: str
    version: str  # content hash: which pack is in force, for metrics and alerts

    @property
    def active(self) -> tuple[Rule, ...]:
        return tuple(r for r in self.rules if r.status != "deprecated")


def default_rules_path() -> Path:
    return Path(str(files("accesswatch.rules").joinpath("default.yaml")))


def load_rules(path: Path | str | None = None) -> RulePack:
    """Load and validate a rule pack (the shipped one by default)."""
    path = Path(path) if path is not None else default_rules_path()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise RulesError(str(path), None, None, f"cannot read: {e}") from None
    return parse_rules(text, str(path))


def parse_rules(text: str, source: str = "<rules>") -> RulePack:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise RulesError(
            source, line, None, f"not valid YAML: {getattr(e, 'problem', e)}"
        ) from None
    if not isinstance(data, dict) or root is None:
        raise RulesError(source, 1, None, "a rule pack is a mapping with a `rules:` list")
    top = _children(root)
    for key in data:
        if key not in _TOP_KEYS:
            raise RulesError(
                source, _line(_keys(root).get(key), root), None, f"unknown top-level key {key!r}"
            )
    lists = _lists(data.get("lists") or {}, source, top.get("lists") or root)
    settings = _convert(
        data.get("settings") or {}, Settings, source, top.get("settings") or root, None
    )
    raw_rules = data.get("rules")
    rules_node = top.get("rules")
    if not isinstance(raw_rules, list) or not raw_rules or rules_node is None:
        raise RulesError(source, _line(rules_node, root), None, "`rules:` must be a non-empty list")
    rules: list[Rule] = []
    seen: dict[str, int] = {}
    for raw, node in zip(raw_rules, rules_node.value, strict=True):
        rule_id = raw.get("id") if isinstance(raw, dict) else None
        if not isinstance(raw, dict):
            raise RulesError(source, _line(node, root), None, "each rule is a mapping")
        expanded = _expand(raw, lists, source, node, rule_id)
        rule = _convert(expanded, AnyRule, source, node, rule_id)
        if rule.id in seen:
            raise RulesError(
                source, _line(node, root), rule.id, f"duplicate id (first at line {seen[rule.id]})"
            )
        seen[rule.id] = _line(node, root) or 0
        rules.append(rule)
    version = hashlib.sha256(text.encode()).hexdigest()[:12]
    return RulePack(tuple(rules), lists, settings, source, version)


def _convert(value: Any, typ: Any, source: str, node: yaml.Node, rule_id: str | None) -> Any:
    try:
        return msgspec.convert(value, typ)
    except msgspec.ValidationError as e:
        message = str(e)
        field = _PATH.search(message) or _UNKNOWN.search(message)
        name = field.group(1) if field else message.split(" ", 1)[0].rstrip(":")
        key_node = _keys(node).get(name)
        raise RulesError(source, _line(key_node, node), rule_id, message) from None


def _lists(value: Any, source: str, node: yaml.Node) -> dict[str, list[str]]:
    if not isinstance(value, dict):
        raise RulesError(source, _line(node, node), None, "`lists:` must map names to lists")
    for name, items in value.items():
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            child = _keys(node).get(name)
            raise RulesError(
                source, _line(child, node), None, f"list {name!r} must be a list of strings"
            )
    return {name: list(items) for name, items in value.items()}


def _expand(
    raw: dict[str, Any],
    lists: dict[str, list[str]],
    source: str,
    node: yaml.Node,
    rule_id: str | None,
) -> dict[str, Any]:
    """Replace ``$name`` items in string lists with the shared list's items."""

    def walk(value: Any, at: yaml.Node) -> Any:
        if isinstance(value, dict):
            kids, keys = _children(at), _keys(at)
            return {
                k: walk(v, kids.get(k, at))
                if isinstance(v, dict)
                else walk_list(v, keys.get(k, at))
                for k, v in value.items()
            }
        return walk_list(value, at)

    def walk_list(value: Any, at: yaml.Node) -> Any:
        if isinstance(value, list):
            out: list[Any] = []
            for item in value:
                if isinstance(item, str) and item.startswith("$"):
                    if item[1:] not in lists:
                        raise RulesError(source, _line(at, node), rule_id, f"unknown list {item!r}")
                    out.extend(lists[item[1:]])
                else:
                    out.append(item)
            return out
        return value

    expanded: dict[str, Any] = walk(raw, node)
    return expanded


def _children(node: yaml.Node | None) -> dict[Any, yaml.Node]:
    """Value nodes of a mapping by key, to descend into."""
    if isinstance(node, yaml.MappingNode):
        return {k.value: v for k, v in node.value}
    return {}


def _keys(node: yaml.Node | None) -> dict[Any, yaml.Node]:
    """Key nodes of a mapping by key: where an error about that key points."""
    if isinstance(node, yaml.MappingNode):
        return {k.value: k for k, _ in node.value}
    return {}


def _line(node: yaml.Node | None, fallback: yaml.Node | None) -> int | None:
    target = node if node is not None else fallback
    return target.start_mark.line + 1 if target is not None else None
