"""The live wing keeps off Faust's, mode's and aiokafka's private parts (issue 16).

One module, ``streams/kafka_compat.py``, may reach into aiokafka: it is
checked against the versions it was read on, and kept small.  Everywhere else
under ``streams/`` (and in ``accesswatch/ops/`` and ``console/``) a scan of the syntax tree refuses:

- ``x._name`` on anything but our own ``self``/``cls`` (and not on ``self``
  either inside a class that derives from a Faust, mode or aiokafka class);
- assigning to an attribute of a name imported from those libraries (a patch);
- importing a ``_private`` name from them, or calling ``setattr`` on them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
STREAMS = ROOT / "streams"
COMPAT = "kafka_compat.py"
# The worker, and every other package that runs Kafka clients (operator commands, console).
SCANNED = sorted(str(p.relative_to(ROOT)) for where in ("streams", "accesswatch/ops", "console")
                 for p in (ROOT / where).glob("*.py") if p.name != COMPAT)
LIBRARIES = ("faust", "mode", "aiokafka")
MAX_COMPAT_LINES = 200


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _from_library(module: str | None) -> bool:
    return module is not None and module.split(".")[0] in LIBRARIES


def reaches(source: str) -> list[str]:
    """Every reach into a library's private parts in ``source``: 'line: code'."""
    tree = ast.parse(source)
    imported: set[str] = set()  # local names bound to library modules or objects
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if _from_library(alias.name):
                    imported.add((alias.asname or alias.name).split(".")[0])
        elif isinstance(node, ast.ImportFrom) and _from_library(node.module):
            for alias in node.names:
                imported.add(alias.asname or alias.name)
                if _private(alias.name):
                    found.append((node.lineno, f"imports {alias.name}"))
    library_classes = {node for node in ast.walk(tree) if isinstance(node, ast.ClassDef)
                       and any(_root(base) in imported for base in node.bases)}
    inside_library_class = {id(n) for cls in library_classes for n in ast.walk(cls)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            own = isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")
            if not own or id(node) in inside_library_class:
                found.append((node.lineno, ast.unparse(node)))
        elif isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Attribute) and _root(target) in imported:
                    found.append((node.lineno, f"assigns {ast.unparse(target)}"))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and \
                node.func.id in ("setattr", "delattr") and node.args and \
                _root(node.args[0]) in imported:
            found.append((node.lineno, ast.unparse(node)))
    return [f"{line}: {what}" for line, what in sorted(found)]


def _root(node: ast.expr) -> str | None:
    while isinstance(node, ast.Attribute | ast.Call | ast.Subscript):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else None


@pytest.mark.parametrize("path", SCANNED)
def test_no_module_but_one_reaches_into_a_librarys_private_parts(path: str) -> None:
    assert reaches((ROOT / path).read_text()) == []


def test_the_scan_finds_what_the_old_fast_path_did() -> None:
    old = '''
from faust.transport.consumer import Consumer, ack_lock
from faust.tables.recovery import Recovery
import aiokafka

Consumer._drain_messages = lambda self, fetcher: None
Recovery.on_recovery_completed = None

class Patched(Consumer):
    def go(self):
        return self._n_acked

def ack(consumer):
    consumer._n_acked += 1
    setattr(aiokafka.client.AIOKafkaClient, "x", 1)

class Ours:
    def go(self):
        return self._mine  # our own object: allowed
'''
    assert reaches(old) == [
        "6: Consumer._drain_messages", "6: assigns Consumer._drain_messages",
        "7: assigns Recovery.on_recovery_completed", "11: self._n_acked",
        "14: consumer._n_acked", "15: setattr(aiokafka.client.AIOKafkaClient, 'x', 1)"]


def test_the_one_module_that_does_is_small_and_checks_versions() -> None:
    source = (STREAMS / COMPAT).read_text()
    assert len(source.splitlines()) < MAX_COMPAT_LINES
    install = next(n for n in ast.walk(ast.parse(source))
                   if isinstance(n, ast.FunctionDef) and n.name == "install")
    assert "untested()" in ast.unparse(install)  # refuses an unknown version
