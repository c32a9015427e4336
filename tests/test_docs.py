"""The docs name only what the code has, and the code nothing the docs leave out.

Three kinds of name are checked in README.md and docs/*.md (not docs/BENCHMARKS.md,
which ``make bench`` writes, nor CHANGELOG.md, which is history):

- ``ACCESSWATCH_*`` variables: the settings' fields (``streams/settings.py``,
  ``console/config.py``) and the variables code reads from ``os.environ``;
- ``accesswatch_*`` metrics, as a fresh registry of ``streams.metrics.Metrics``
  exposes them (with the ``_total``, ``_bucket``, ``_count``, ``_sum``, ``_info``
  samples);
- ``--flags`` of the ``accesswatch`` parser and every subcommand; and on a line
  ``accesswatch COMMAND … --flag``, the flag must be that command's.
"""

from __future__ import annotations

import argparse
import ast
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [
    ROOT / "README.md",
    *sorted(p for p in (ROOT / "docs").glob("*.md") if p.name != "BENCHMARKS.md"),
]
# Where code reads ACCESSWATCH_* variables from the environment itself.
ENVIRONMENT_READERS = [
    *(
        p
        for pkg in ("accesswatch", "streams", "console", "models")
        for p in sorted((ROOT / pkg).rglob("*.py"))
    ),
    *sorted((ROOT / "tests").rglob("conftest.py")),
]

VARIABLE = re.compile(r"\bACCESSWATCH_[A-Z0-9_]*[A-Z0-9](?![A-Za-z0-9_*])")  # not a prefix_*
METRIC = re.compile(r"\baccesswatch_[a-z0-9_]*[a-z0-9]\b")
FLAG = re.compile(r"(?<![\w/.=-])--[a-z][a-z0-9]*(?:[-.][a-z0-9]+)*")
COMMAND = re.compile(r"\baccesswatch(?:\s+--debug)?\s+([a-z][a-z-]*)([^`#|;&()\n]*)")

# Names the docs may use that are not ours to check, each with why.
IGNORED_FLAGS = {
    "--bootstrap-server": "kafka-acls.sh (operations.md, Kafka ACLs)",
    "--command-config": "kafka-acls.sh",
    "--topic": "kafka-acls.sh",
    "--add": "kafka-acls.sh",
    "--list": "kafka-acls.sh",
    "--allow-principal": "kafka-acls.sh",
    "--operation": "kafka-acls.sh",
    "--group": "kafka-acls.sh",
    "--resource-pattern-type": "kafka-acls.sh",
    "--partition": "kafka-console-consumer.sh (operations.md, a quarantined record)",
    "--offset": "kafka-console-consumer.sh",
    "--max-messages": "kafka-console-consumer.sh",
    "--only": "noida-db up: the local broker in the tour",
    "--kafka-port": "noida-db up",
    "--data-dir": "noida-db up / down",
    "--build": "docker compose up",
    "--scale": "docker compose up",
    "--profile": "docker compose",
    "--rm": "docker compose run",
    "--no-deps": "docker compose run",
    "--force-recreate": "docker compose up",
    "--index": "docker compose exec",
    "--tail": "docker compose logs",
}
IGNORED_METRICS = {
    "accesswatch_severity": "a label of the console's ECS documents (console/ecs.py)",
    "accesswatch_role": "the OpenID claim single sign-on reads the role from (console/oidc.py)",
}
IGNORED_VARIABLES: dict[str, str] = {}
_FORMS = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("_count", "_sum", "_created"),
    "info": ("_info",),
}


@dataclass(frozen=True)
class Known:
    """The names the code has."""

    settings: frozenset[str]  # ACCESSWATCH_* of a settings field
    environment: frozenset[str]  # ACCESSWATCH_* read from os.environ directly
    metrics: dict[str, frozenset[str]]  # family → every spelling of it
    commands: dict[tuple[str, ...], frozenset[str]]  # () is the top level

    @property
    def variables(self) -> frozenset[str]:
        return self.settings | self.environment

    @property
    def metric_names(self) -> frozenset[str]:
        return frozenset().union(*self.metrics.values())

    @property
    def flags(self) -> frozenset[str]:
        return frozenset().union(*self.commands.values())

    def flags_of(self, command: str) -> frozenset[str]:
        """A command's own flags, its actions' (``console export-ecs --out``) and the top
        level's."""
        return frozenset().union(
            *(flags for path, flags in self.commands.items() if path[:1] in ((), (command,)))
        )


def settings_variables() -> frozenset[str]:
    from console.config import ConsoleSettings
    from streams.settings import Settings

    assert Settings.model_config["env_prefix"] == "ACCESSWATCH_"
    assert issubclass(ConsoleSettings, Settings)
    return frozenset(f"ACCESSWATCH_{name.upper()}" for name in ConsoleSettings.model_fields)


def environment_reads(source: str) -> set[str]:
    """``ACCESSWATCH_*`` names a module reads with ``os.environ.get(…)``, ``os.getenv(…)``
    or ``os.environ[…]``, written out or through a module-level constant."""
    tree = ast.parse(source)
    constants = {
        target.id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
        for target in node.targets
        if isinstance(target, ast.Name)
    }

    def text(node: ast.AST) -> str | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        return constants.get(node.id) if isinstance(node, ast.Name) else None

    read: list[str | None] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args:
            func = node.func
            if isinstance(func, ast.Attribute):
                environ = ast.unparse(func.value).endswith("environ")
                if (environ and func.attr in {"get", "pop", "setdefault"}) or func.attr == "getenv":
                    read.append(text(node.args[0]))
            elif isinstance(func, ast.Name) and func.id == "getenv":
                read.append(text(node.args[0]))
        elif isinstance(node, ast.Subscript) and ast.unparse(node.value).endswith("environ"):
            read.append(text(node.slice))
    return {name for name in read if name and VARIABLE.fullmatch(name)}


def metric_families() -> dict[str, frozenset[str]]:
    from prometheus_client import CollectorRegistry

    from console.metrics import ConsoleMetrics
    from streams.metrics import Metrics

    registry = CollectorRegistry()
    Metrics(registry)
    ConsoleMetrics(registry)  # the console's /metrics
    return {
        family.name: frozenset(
            {family.name, *(family.name + suffix for suffix in _FORMS.get(family.type, ()))}
        )
        for family in registry.collect()
        if family.name.startswith("accesswatch_")
    }


def parser_flags(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> dict[tuple[str, ...], frozenset[str]]:
    """Every ``--flag`` of the parser and its subcommands, by command path."""
    own: set[str] = set()
    found: dict[tuple[str, ...], frozenset[str]] = {}
    for action in parser._actions:  # argparse has no public way to walk a parser
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.update(parser_flags(sub, (*path, name)))
        own.update(o for o in action.option_strings if o.startswith("--"))
    found[path] = frozenset(own)
    return found


def code_names() -> Known:
    from accesswatch.cli import build_parser

    environment: set[str] = set()
    for path in ENVIRONMENT_READERS:
        environment |= environment_reads(path.read_text())
    return Known(
        settings=settings_variables(),
        environment=frozenset(environment),
        metrics=metric_families(),
        commands=parser_flags(build_parser()),
    )


@dataclass(frozen=True)
class Mention:
    where: str  # file:line
    kind: str  # variable, metric, flag
    name: str
    command: str | None = None  # the accesswatch command the flag was given to


def mentions(where: str, text: str) -> Iterator[Mention]:
    for n, line in enumerate(text.splitlines(), 1):
        at = f"{where}:{n}"
        yield from (Mention(at, "variable", m) for m in VARIABLE.findall(line))
        yield from (Mention(at, "metric", m) for m in METRIC.findall(line))
        yield from (Mention(at, "flag", m) for m in FLAG.findall(line))
        for command, rest in COMMAND.findall(line):
            yield from (Mention(at, "flag", m, command) for m in FLAG.findall(rest))


def unknown(found: Iterable[Mention], known: Known) -> list[str]:
    """Each mention of a name the code does not have, as ``file:line: what``."""
    problems = []
    for m in found:
        if m.kind == "variable" and m.name not in known.variables | IGNORED_VARIABLES.keys():
            problems.append(f"{m.where}: {m.name} is not a setting, nor read from the environment")
        elif m.kind == "metric" and m.name not in known.metric_names | IGNORED_METRICS.keys():
            problems.append(f"{m.where}: {m.name} is not a metric of streams.metrics.Metrics")
        elif (
            m.kind == "flag"
            and m.command is None
            and m.name not in known.flags | IGNORED_FLAGS.keys()
        ):
            problems.append(f"{m.where}: {m.name} is no option of any accesswatch command")
        elif (
            m.kind == "flag"
            and m.command is not None
            and (m.command,) in known.commands
            and m.name not in known.flags_of(m.command)
        ):
            problems.append(f"{m.where}: {m.name} is no option of accesswatch {m.command}")
    return sorted(set(problems))


def undocumented(found: Iterable[Mention], known: Known) -> list[str]:
    """Each name the code has that no doc mentions."""
    named = {(m.kind, m.name) for m in found}
    missing = [f"variable {v}" for v in sorted(known.variables) if ("variable", v) not in named]
    missing += [
        f"metric {family}"
        for family, spellings in sorted(known.metrics.items())
        if not any(("metric", s) in named for s in spellings)
    ]
    missing += [
        f"option {flag} of accesswatch {' '.join(path)}".rstrip()
        for path, flags in sorted(known.commands.items())
        for flag in sorted(flags)
        if ("flag", flag) not in named
    ]
    return missing


@pytest.fixture(scope="module")
def known() -> Known:
    return code_names()


@pytest.fixture(scope="module")
def documented() -> list[Mention]:
    return [m for path in DOCS for m in mentions(str(path.relative_to(ROOT)), path.read_text())]


def test_every_name_the_docs_use_is_in_the_code(known: Known, documented: list[Mention]) -> None:
    problems = unknown(documented, known)
    assert not problems, "the docs name what the code does not have:\n" + "\n".join(problems)


def test_every_name_the_code_has_is_in_the_docs(known: Known, documented: list[Mention]) -> None:
    missing = undocumented(documented, known)
    assert not missing, "not named in README.md or docs/*.md:\n" + "\n".join(missing)


def test_the_checker_reports_names_the_code_lacks(known: Known) -> None:
    doc = (
        "Set `ACCESSWATCH_NOPE=1` and watch `accesswatch_nope_total`.\n"
        "accesswatch backtest events.jsonl --nope\n"
        "accesswatch replay events.jsonl --from-beginning\n"
    )
    problems = unknown(mentions("doc.md", doc), known)
    assert problems == [
        "doc.md:1: ACCESSWATCH_NOPE is not a setting, nor read from the environment",
        "doc.md:1: accesswatch_nope_total is not a metric of streams.metrics.Metrics",
        "doc.md:2: --nope is no option of accesswatch backtest",
        "doc.md:2: --nope is no option of any accesswatch command",
        "doc.md:3: --from-beginning is no option of accesswatch replay",
    ]


def test_a_documented_name_gone_from_the_code_is_reported(
    known: Known, documented: list[Mention]
) -> None:
    # As if the code dropped a setting, a metric and an option the docs still name.
    commands = dict(known.commands)
    commands[("alerts",)] = commands[("alerts",)] - {"--from-beginning"}
    shrunk = Known(
        settings=known.settings - {"ACCESSWATCH_PARTITIONS"},
        environment=known.environment,
        metrics={f: s for f, s in known.metrics.items() if f != "accesswatch_alerts"},
        commands=commands,
    )
    problems = "\n".join(unknown(documented, shrunk))
    assert "ACCESSWATCH_PARTITIONS is not a setting" in problems
    assert "accesswatch_alerts_total is not a metric" in problems
    assert "--from-beginning is no option of any accesswatch command" in problems


def test_the_checker_reports_what_the_docs_leave_out(known: Known) -> None:
    missing = undocumented(mentions("doc.md", "`ACCESSWATCH_PARTITIONS`, `--json`"), known)
    assert "variable ACCESSWATCH_PARTITIONS" not in missing
    assert "variable ACCESSWATCH_BOOTSTRAP_SERVERS" in missing
    assert "metric accesswatch_alerts" in missing
    assert "option --from-beginning of accesswatch alerts" in missing
    assert not any(line.startswith("option --json ") for line in missing)


def test_wildcards_and_placeholders_are_not_names() -> None:
    doc = "`ACCESSWATCH_*`, `ACCESSWATCH_CONSOLE_*` and `ACCESSWATCH_<NAME>`; |---|---|"
    assert list(mentions("doc.md", doc)) == []


def test_names_read_from_the_environment_are_found() -> None:
    source = (
        'import os\nFLAG = "ACCESSWATCH_ONE"\n'
        'a = os.environ.get(FLAG)\nb = os.getenv("ACCESSWATCH_TWO")\n'
        'c = os.environ["ACCESSWATCH_THREE"]\nd = {"ACCESSWATCH_FOUR": 1}\n'
    )
    assert environment_reads(source) == {"ACCESSWATCH_ONE", "ACCESSWATCH_TWO", "ACCESSWATCH_THREE"}


def cli_sections(text: str) -> dict[str, str]:
    """docs/cli.md's text under each heading, by the heading's first word."""
    parts = re.split(r"^#{2,3} +(.+)$", text, flags=re.M)
    return {
        heading.split()[0].strip("`"): body
        for heading, body in zip(parts[1::2], parts[2::2], strict=True)
    }


def test_the_cli_reference_lists_every_option_under_its_command(known: Known) -> None:
    text = (ROOT / "docs" / "cli.md").read_text()
    sections = cli_sections(text)
    missing = [
        f"accesswatch {' '.join(path)}: {flag}" if path else f"accesswatch {flag}"
        for path, flags in sorted(known.commands.items())
        for flag in sorted(flags - {"--help"})
        if flag not in (sections.get(path[0], "") if path else text)
    ]
    missing += [
        f"accesswatch {path[0]}: no section"
        for path in known.commands
        if len(path) == 1 and path[0] not in sections
    ]
    assert not missing, "not in docs/cli.md under their command:\n" + "\n".join(missing)


def test_every_ignored_name_is_still_used_and_not_ours(
    known: Known, documented: list[Mention]
) -> None:
    # An entry nobody needs any more, or one that would hide a flag of ours, goes.
    named = {m.name for m in documented}
    ignored = IGNORED_FLAGS.keys() | IGNORED_METRICS.keys() | IGNORED_VARIABLES.keys()
    assert not ignored - named, f"ignored but not in the docs: {sorted(ignored - named)}"
    ours = ignored & (known.flags | known.metric_names | known.variables)
    assert not ours, f"ignored, yet the code has them: {sorted(ours)}"
