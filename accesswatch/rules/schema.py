"""Check a mapping against a rule's Struct key by key, so every bad key is reported.

msgspec stops at the first error in a value; these checks find each unknown
key (with the nearest known one), each missing field and each bad field value
(with the allowed values of an enum) first.  Only a mapping that passes them
is converted whole, which also runs the checks across fields in
``__post_init__``; so a valid pack is converted exactly as before.
"""

from __future__ import annotations

import re
from typing import Any, Literal, get_args, get_origin

import msgspec
import yaml

from accesswatch.rules.problems import nearest

Found = list[tuple[int | None, str]]  # (line, message) for the caller to attach file and rule
_ENUM_VALUE = re.compile(r"^Invalid enum value '(.*)'")


def check_struct(value: Any, typ: Any, node: yaml.Node, path: str = "$") -> Found:
    """Problems with ``value`` as a ``typ`` (a Struct or a union of tagged Structs)."""
    found: Found = []
    cls = _pick_tagged(value, typ, node, path, found)
    if cls is None:
        return found
    if not isinstance(value, dict):
        return [(line_of(node), _convert_error(value, cls, path))]
    fields = {f.encode_name: f for f in msgspec.structs.fields(cls)}
    allowed = set(fields)
    tag_field = cls.__struct_config__.tag_field
    if tag_field is not None:
        allowed.add(tag_field)
    keys, kids = key_nodes(node), value_nodes(node)
    meant: set[str] = set()
    for key in value:
        if key not in allowed:
            guess = nearest(key, allowed)
            hint = f" (did you mean `{guess}`?)" if guess else ""
            message = f"Object contains unknown field `{key}`{_at(path)}{hint}"  # msgspec's wording
            found.append((line_of(keys.get(key), node), message))
            if guess:
                meant.add(guess)
    for name, field in fields.items():
        if name not in value:
            if field.required and name not in meant:  # a misspelt key already says so
                found.append((line_of(node), f"Object missing required field `{name}`{_at(path)}"))
            continue
        at_key = keys.get(name)
        if _is_struct(field.type):
            found += check_struct(value[name], field.type, kids.get(name, node), f"{path}.{name}")
            continue
        try:
            msgspec.convert(value[name], field.type)
        except msgspec.ValidationError as e:
            message = _with_path(str(e), f"{path}.{name}")
            found.append((line_of(at_key, node), _with_allowed(message, field.type)))
    return found


def _pick_tagged(value: Any, typ: Any, node: yaml.Node, path: str, found: Found) -> Any:
    """The Struct a value of a tagged union names (``kind: victim``), or ``typ`` itself."""
    if _is_struct(typ):
        return typ
    by_tag = {cls.__struct_config__.tag: cls for cls in get_args(typ)}
    tag_field = next(iter(get_args(typ))).__struct_config__.tag_field
    if not isinstance(value, dict):
        found.append((line_of(node), _convert_error(value, typ, path)))
        return None
    allowed = f"allowed: {', '.join(by_tag)}"
    if tag_field not in value:
        found.append((line_of(node), f"Object missing required field `{tag_field}` ({allowed})"))
        return None
    tag = value[tag_field]
    if isinstance(tag, str) and tag in by_tag:
        return by_tag[tag]
    guess = nearest(tag, by_tag)
    hint = f"; did you mean {guess!r}?" if guess else ""
    line = line_of(key_nodes(node).get(tag_field), node)
    found.append((line, f"Invalid value {tag!r} - at `{path}.{tag_field}` ({allowed}{hint})"))
    return None


def _with_allowed(message: str, typ: Any) -> str:
    """``Invalid enum value 'huge'`` → ``... (allowed: low, medium, high, critical)``."""
    values = _literal_values(typ)
    bad = _ENUM_VALUE.match(message)
    if values is None or bad is None:
        return message
    names = [str(v) for v in values]
    guess = nearest(bad.group(1), names)
    hint = f"; did you mean {guess!r}?" if guess else ""
    return f"{message} (allowed: {', '.join(names)}{hint})"


def _literal_values(typ: Any) -> tuple[Any, ...] | None:
    if get_origin(typ) is Literal:
        return get_args(typ)
    for arg in get_args(typ):
        values = _literal_values(arg)
        if values is not None:
            return values
    return None


def _with_path(message: str, path: str) -> str:
    """Put a field's own error at its place in the rule: ``$[1]`` → ``$.actions[1]``."""
    head, sep, rest = message.partition(" - at `$")
    return f"{head} - at `{path}{rest}" if sep else f"{message} - at `{path}`"


def _convert_error(value: Any, typ: Any, path: str) -> str:
    try:
        msgspec.convert(value, typ)
    except msgspec.ValidationError as e:
        return str(e) if path == "$" else _with_path(str(e), path)
    return f"not a valid {getattr(typ, '__name__', typ)}"  # not reached: callers pass a non-mapping


def _at(path: str) -> str:
    return "" if path == "$" else f" - at `{path}`"


def _is_struct(typ: Any) -> bool:
    return isinstance(typ, type) and issubclass(typ, msgspec.Struct)


def value_nodes(node: yaml.Node | None) -> dict[Any, yaml.Node]:
    """Value nodes of a mapping by key, to descend into."""
    if isinstance(node, yaml.MappingNode):
        return {k.value: v for k, v in node.value}
    return {}


def key_nodes(node: yaml.Node | None) -> dict[Any, yaml.Node]:
    """Key nodes of a mapping by key: where an error about that key points."""
    if isinstance(node, yaml.MappingNode):
        return {k.value: k for k, _ in node.value}
    return {}


def line_of(node: yaml.Node | None, fallback: yaml.Node | None = None) -> int | None:
    target = node if node is not None else fallback
    return target.start_mark.line + 1 if target is not None else None
