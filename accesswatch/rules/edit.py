"""Set fields of rules in a pack's YAML text, keeping everything else as written.

Comments, order and layout stay: only each value is replaced where it stands
(or, for a field the rule leaves at its default, a line is added after its
``id``).  ``accesswatch budget --write`` uses it, so what an analyst ships is
the pack they know with a few numbers changed.

>>> pack = "rules:\\n  - id: AW-9  # fast\\n    threshold: 20\\n"
>>> set_fields(pack, {"AW-9": {"threshold": "30"}})
'rules:\\n  - id: AW-9  # fast\\n    threshold: 30\\n'
"""

from __future__ import annotations

import yaml

from accesswatch.errors import AccessWatchError
from accesswatch.rules.schema import key_nodes, value_nodes


def set_fields(text: str, changes: dict[str, dict[str, str]]) -> str:
    """``text`` with ``changes[rule_id][field]`` (YAML scalars, as text) set in each rule.

    The caller checks the result by loading it: a value shared through a YAML
    alias would change everywhere it is used.
    """
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    rules = value_nodes(root).get("rules")
    edits: list[tuple[int, int, str]] = []  # (start, end, replacement) in ``text``
    found: set[str] = set()
    for node in rules.value if isinstance(rules, yaml.SequenceNode) else []:
        kids = value_nodes(node)
        rule_id = getattr(kids.get("id"), "value", None)
        if rule_id not in changes:
            continue
        found.add(rule_id)
        for name, value in changes[rule_id].items():
            edits.append(_edit(text, node, name, value))
    missing = set(changes) - found
    if missing:
        raise AccessWatchError(f"no rule {', '.join(sorted(missing))} in the pack to change")
    for start, end, new in sorted(edits, reverse=True):
        text = text[:start] + new + text[end:]
    return text


def _edit(text: str, rule: yaml.MappingNode, name: str, value: str) -> tuple[int, int, str]:
    kids = value_nodes(rule)
    if name in kids:
        node = kids[name]
        if not isinstance(node, yaml.ScalarNode):
            raise AccessWatchError(f"rule {kids['id'].value}: {name} is not a single value")
        return node.start_mark.index, node.end_mark.index, value
    if rule.flow_style:  # {id: X, kind: ...}: before the closing brace
        end = text.rindex("}", 0, rule.end_mark.index)
        return end, end, f", {name}: {value}"
    id_key, id_value = key_nodes(rule)["id"], kids["id"]
    eol = text.find("\n", id_value.end_mark.index)
    if eol < 0:
        return len(text), len(text), f"\n{' ' * id_key.start_mark.column}{name}: {value}"
    return eol + 1, eol + 1, f"{' ' * id_key.start_mark.column}{name}: {value}\n"
