"""Every user mistake ends in one line on stderr, naming what is wrong (issue 17).

Each bad invocation runs the real CLI in a subprocess, in a directory of its
own, with no ``ACCESSWATCH_*`` variable but its own: exit 2 for a usage
mistake (arguments, settings), 1 for a failure while running (a file's
content, no broker); exactly one line on stderr; no traceback.  Commands that
need a broker point at a port where nothing listens and wait one second.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from accesswatch.cli import build_parser
from tests.streams.conftest import broker, free_port, unique_env  # noqa: F401

NO_BROKER = {"ACCESSWATCH_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",
             "ACCESSWATCH_BROKER_WAIT": "1"}
USAGE, FAILED = 2, 1


@dataclass(frozen=True)
class Bad:
    """A bad invocation; ``{d}`` in an argument is the shared data directory."""

    id: str
    args: tuple[str, ...]
    code: int
    says: tuple[str, ...]  # fragments the one line must hold
    env: dict[str, str] = field(default_factory=dict)
    dotenv: str | None = None


def bad(id: str, args: str, code: int, *says: str, env: dict[str, str] | None = None,
        dotenv: str | None = None) -> Bad:
    return Bad(id, tuple(args.split()), code, says, env or {}, dotenv)


CASES = [
    # ---- generate -------------------------------------------------------------------
    bad("generate-staff-too-few", "generate --out f --staff 10", USAGE, "--staff", "at least 40"),
    bad("generate-days-too-few", "generate --out f --days 1", USAGE, "--days", "at least 3"),
    bad("generate-staff-not-number", "generate --out f --staff ten", USAGE, "--staff", "'ten'"),
    bad("generate-out-onto-file", "generate --out {d}/force/events.jsonl", USAGE, "--out",
        "events.jsonl is a file"),
    bad("generate-no-out", "generate --staff 50", USAGE, "--out"),
    bad("generate-start-not-a-date", "generate --out f --start 2026-13-01", USAGE, "--start",
        "'2026-13-01' is not a date"),
    bad("generate-invalid-lines-negative", "generate --out f --invalid-lines -3", USAGE,
        "--invalid-lines", "-3"),
    # ---- backtest -------------------------------------------------------------------
    bad("backtest-events-missing", "backtest nope.jsonl --ref {d}/force --out a.jsonl", USAGE,
        "nope.jsonl: no such file"),
    bad("backtest-events-is-dir", "backtest {d}/force --ref {d}/force --out a.jsonl", USAGE,
        "force is a directory"),
    bad("backtest-ref-missing", "backtest {d}/force/events.jsonl --ref nope --out a.jsonl",
        USAGE, "--ref", "nope: no such directory"),
    bad("backtest-ref-is-file",
        "backtest {d}/force/events.jsonl --ref {d}/force/staff.jsonl --out a.jsonl", USAGE,
        "--ref", "staff.jsonl is a file"),
    bad("backtest-ref-empty-dir", "backtest {d}/force/events.jsonl --ref {d}/empty --out a.jsonl",
        USAGE, "--ref", "staff.jsonl", "--allow-empty"),
    bad("backtest-ref-lacks-files",
        "backtest {d}/force/events.jsonl --ref {d}/staff-only --out a.jsonl", USAGE,
        "subjects.jsonl, cases.jsonl, duties.jsonl missing"),
    bad("backtest-ref-no-records",
        "backtest {d}/force/events.jsonl --ref {d}/no-records --out a.jsonl", USAGE,
        "hold no records", "--allow-empty"),
    bad("backtest-out-is-dir", "backtest {d}/force/events.jsonl --ref {d}/force --out {d}/empty",
        USAGE, "--out", "is a directory"),
    bad("backtest-out-dir-missing",
        "backtest {d}/force/events.jsonl --ref {d}/force --out nowhere/a.jsonl", USAGE,
        "--out", "nowhere does not exist"),
    bad("backtest-jobs-negative",
        "backtest {d}/force/events.jsonl --ref {d}/force --out a.jsonl --jobs -1", USAGE,
        "--jobs", "-1"),
    bad("backtest-rules-missing",
        "backtest {d}/force/events.jsonl --ref {d}/force --out a.jsonl --rules nope.yaml", USAGE,
        "--rules", "nope.yaml"),
    bad("backtest-model-missing",
        "backtest {d}/force/events.jsonl --ref {d}/force --out a.jsonl --model nope.skops",
        USAGE, "--model", "nope.skops"),
    bad("backtest-model-not-a-model",
        "backtest {d}/force/events.jsonl --ref {d}/force --out a.jsonl --model {d}/labels.json",
        FAILED, "labels.json", "skops"),
    bad("backtest-unknown-flag",
        "backtest {d}/force/events.jsonl --ref {d}/force --out a.jsonl --bogus", USAGE,
        "accesswatch backtest", "--bogus"),
    # ---- whatif ---------------------------------------------------------------------
    bad("whatif-rules-missing", "whatif {d}/force/events.jsonl --ref {d}/force --rules nope.yaml",
        USAGE, "--rules", "nope.yaml: no such file"),
    bad("whatif-no-rules", "whatif {d}/force/events.jsonl --ref {d}/force", USAGE, "--rules"),
    # ---- budget ---------------------------------------------------------------------
    bad("budget-no-per-day", "budget {d}/force/events.jsonl --ref {d}/force", USAGE,
        "--per-day"),
    bad("budget-per-day-zero", "budget {d}/force/events.jsonl --ref {d}/force --per-day 0",
        USAGE, "--per-day", "above 0"),
    bad("budget-per-day-not-number",
        "budget {d}/force/events.jsonl --ref {d}/force --per-day ten", USAGE, "--per-day",
        "'ten'"),
    bad("budget-labels-missing",
        "budget {d}/force/events.jsonl --ref {d}/force --per-day 5 --labels nope.json", USAGE,
        "--labels", "nope.json: no such file"),
    bad("budget-labels-are-alerts",
        "budget {d}/force/events.jsonl --ref {d}/force --per-day 5 --labels {d}/alerts.jsonl",
        FAILED, "--labels", "not valid JSON"),
    bad("budget-write-dir-missing",
        "budget {d}/force/events.jsonl --ref {d}/force --per-day 5 --write nowhere/t.yaml",
        USAGE, "--write", "nowhere does not exist"),
    bad("budget-impossible",
        "budget {d}/force/events.jsonl --ref {d}/force --per-day 0.01 --no-progress", FAILED,
        "no settings keep this pack within 0.01 alerts a day", "--per-day"),
    # ---- train ----------------------------------------------------------------------
    bad("train-ref-missing", "train {d}/force/events.jsonl --ref nope --out m.skops", USAGE,
        "--ref", "nope"),
    bad("train-since-no-zone",
        "train {d}/force/events.jsonl --ref {d}/force --out m.skops --since 2026-03-02T00:00",
        USAGE, "--since"),
    bad("train-alert-rate-above-one",
        "train {d}/force/events.jsonl --ref {d}/force --out m.skops --alert-rate 2", USAGE,
        "--alert-rate", "at most 1"),
    bad("train-days-zero", "train {d}/force/events.jsonl --ref {d}/force --out m.skops --days 0",
        USAGE, "--days", "above 0"),
    # ---- evaluate -------------------------------------------------------------------
    bad("evaluate-labels-missing", "evaluate --labels nope.json --alerts {d}/alerts.jsonl",
        USAGE, "--labels", "nope.json: no such file"),
    bad("evaluate-labels-is-dir", "evaluate --labels {d}/force --alerts {d}/alerts.jsonl", USAGE,
        "--labels", "is a directory"),
    bad("evaluate-labels-are-jsonl",
        "evaluate --labels {d}/alerts.jsonl --alerts {d}/alerts.jsonl", FAILED, "--labels",
        "alerts.jsonl", "not valid JSON"),
    bad("evaluate-labels-wrong-shape", "evaluate --labels {d}/list.json --alerts {d}/alerts.jsonl",
        FAILED, "--labels", "list.json", "incidents"),
    bad("evaluate-labels-not-utf8", "evaluate --labels {d}/binary.json --alerts {d}/alerts.jsonl",
        FAILED, "--labels", "UTF-8"),
    bad("evaluate-files-swapped", "evaluate --labels {d}/labels.json --alerts {d}/labels.json",
        FAILED, "--alerts", "labels.json:1", "not valid JSON"),
    bad("evaluate-alert-lacks-fields",
        "evaluate --labels {d}/labels.json --alerts {d}/not-alerts.jsonl", FAILED, "--alerts",
        "not-alerts.jsonl:1", "lacks"),
    bad("evaluate-since-garbage",
        "evaluate --labels {d}/labels.json --alerts {d}/alerts.jsonl --since yesterday", USAGE,
        "--since", "yesterday"),
    # ---- rules ----------------------------------------------------------------------
    bad("rules-missing", "rules nope.yaml", USAGE, "nope.yaml: no such file"),
    bad("rules-is-dir", "rules {d}/empty", USAGE, "empty is a directory"),
    # ---- worker ---------------------------------------------------------------------
    bad("worker-unknown-flag", "worker --bogus", USAGE, "accesswatch worker:", "--bogus"),
    bad("worker-model-missing", "worker --model nope.skops", USAGE, "--model", "nope.skops"),
    bad("worker-model-path-setting", "worker --metrics-port 0", USAGE, "nope.skops",
        "ACCESSWATCH_MODEL_PATH", env={"ACCESSWATCH_MODEL_PATH": "nope.skops"}),
    bad("worker-metrics-port-too-big", "worker --metrics-port 70000", USAGE, "--metrics-port",
        "70000"),
    bad("worker-batch-size-zero", "worker --batch-size 0", USAGE, "--batch-size"),
    # ---- topics ---------------------------------------------------------------------
    bad("topics-bad-action", "topics frob", USAGE, "'frob'", "'create', 'check'"),
    bad("topics-no-action", "topics", USAGE, "action"),
    bad("topics-no-broker", "topics create", FAILED, "no Kafka broker reachable", "after 1 s",
        env=NO_BROKER),
    bad("bootstrap-garbage", "topics create", USAGE, "ACCESSWATCH_BOOTSTRAP_SERVERS",
        "not host:port", env={"ACCESSWATCH_BOOTSTRAP_SERVERS": "garbage::"}),
    bad("bootstrap-no-port", "topics check", USAGE, "ACCESSWATCH_BOOTSTRAP_SERVERS",
        "not host:port", env={"ACCESSWATCH_BOOTSTRAP_SERVERS": "kafka1"}),
    bad("bootstrap-port-not-number", "load-ref {d}/force", USAGE, "'kafka1:nine' is not host",
        env={"ACCESSWATCH_BOOTSTRAP_SERVERS": "kafka1:nine"}),
    # ---- settings -------------------------------------------------------------------
    bad("partitions-zero", "topics create", USAGE, "ACCESSWATCH_PARTITIONS=0", "environment",
        env={"ACCESSWATCH_PARTITIONS": "0"}),
    bad("log-level-verbose", "config", USAGE, "ACCESSWATCH_LOG_LEVEL=verbose", "'debug'",
        env={"ACCESSWATCH_LOG_LEVEL": "verbose"}),
    bad("dotenv-bad-value", "config", USAGE, "ACCESSWATCH_PARTITIONS=many", ".env",
        dotenv="ACCESSWATCH_PARTITIONS=many\n"),
    bad("sasl-incomplete", "config", USAGE, "ACCESSWATCH_SASL_USERNAME",
        "ACCESSWATCH_SASL_PASSWORD", env={"ACCESSWATCH_SECURITY_PROTOCOL": "SASL_SSL"}),
    bad("sasl-incomplete-in-dotenv", "replay {d}/force/events.jsonl", USAGE,
        "ACCESSWATCH_SASL_MECHANISM", "ACCESSWATCH_SECURITY_PROTOCOL set in .env",
        dotenv="ACCESSWATCH_SECURITY_PROTOCOL=SASL_PLAINTEXT\n"),
    bad("security-protocol-choice", "config", USAGE, "ACCESSWATCH_SECURITY_PROTOCOL", "'SSL'",
        env={"ACCESSWATCH_SECURITY_PROTOCOL": "TLS"}),
    bad("broker-wait-negative", "config", USAGE, "ACCESSWATCH_BROKER_WAIT",
        env={"ACCESSWATCH_BROKER_WAIT": "-1"}),
    bad("metrics-port-not-number", "config", USAGE, "ACCESSWATCH_METRICS_PORT=abc",
        env={"ACCESSWATCH_METRICS_PORT": "abc"}),
    bad("exactly-once", "config", USAGE, "ACCESSWATCH_PROCESSING_GUARANTEE",
        env={"ACCESSWATCH_PROCESSING_GUARANTEE": "exactly_once"}),
    bad("console-port-negative", "config", USAGE, "ACCESSWATCH_CONSOLE_PORT=-8",
        env={"ACCESSWATCH_CONSOLE_PORT": "-8"}),
    # ---- load-ref -------------------------------------------------------------------
    bad("load-ref-missing", "load-ref nope", USAGE, "nope: no such directory"),
    bad("load-ref-is-file", "load-ref {d}/force/staff.jsonl", USAGE, "staff.jsonl is a file"),
    bad("load-ref-empty-dir", "load-ref {d}/empty", USAGE, "holds none of", "staff.jsonl",
        "--allow-empty", env=NO_BROKER),
    bad("load-ref-no-records", "load-ref {d}/no-records", USAGE, "hold no records",
        env=NO_BROKER),
    bad("load-ref-no-broker", "load-ref {d}/force", FAILED, "no Kafka broker reachable",
        env=NO_BROKER),
    # ---- replay ---------------------------------------------------------------------
    bad("replay-rate-negative", "replay {d}/force/events.jsonl --rate -5", USAGE, "--rate", "-5"),
    bad("replay-rate-not-number", "replay {d}/force/events.jsonl --rate fast", USAGE, "--rate",
        "'fast'"),
    bad("replay-limit-zero", "replay {d}/force/events.jsonl --limit 0", USAGE, "--limit"),
    bad("replay-missing", "replay nope.jsonl", USAGE, "nope.jsonl: no such file"),
    bad("replay-no-broker", "replay {d}/force/events.jsonl", FAILED, "no Kafka broker reachable",
        env=NO_BROKER),
    # ---- alerts ---------------------------------------------------------------------
    bad("alerts-max-negative", "alerts tail --max -1", USAGE, "--max", "-1"),
    bad("alerts-idle-exit-negative", "alerts tail --idle-exit -2", USAGE, "--idle-exit"),
    bad("alerts-colour-choice", "alerts tail --color pink", USAGE, "'pink'", "'never'"),
    bad("alerts-bad-action", "alerts follow", USAGE, "'follow'", "'tail'"),
    bad("alerts-no-broker", "alerts tail", FAILED, "no Kafka broker reachable", env=NO_BROKER),
    # ---- console, config, top level -------------------------------------------------
    bad("console-users-missing", "console --users nope.yaml", USAGE, "--users", "nope.yaml"),
    bad("console-export-out-is-dir", "console export-ecs --out {d}/empty", USAGE, "--out"),
    bad("console-export-no-broker", "console export-ecs --out x.ndjson", FAILED,
        "no Kafka broker reachable", env=NO_BROKER),
    bad("config-unknown-flag", "config --yaml", USAGE, "accesswatch config:", "--yaml"),
    bad("unknown-command", "frobnicate", USAGE, "'frobnicate'", "generate"),
    bad("unknown-top-level-flag", "--bogus config", USAGE, "--bogus"),
]


ROOT = Path(__file__).parents[1]


def run(args: list[str], cwd: Path, env: dict[str, str] | None = None,
        timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """The CLI in a subprocess: no ACCESSWATCH_* variable but ``env``."""
    clean = {k: v for k, v in os.environ.items() if not k.upper().startswith("ACCESSWATCH_")}
    return subprocess.run([sys.executable, "-m", "accesswatch.cli", *args], cwd=cwd,
                          env={**clean, "PYTHONPATH": str(ROOT), **(env or {})},
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small force and the wrong files people give instead."""
    d = tmp_path_factory.mktemp("data")
    done = run(["generate", "--out", str(d / "force"), "--staff", "40", "--days", "3"], d)
    assert done.returncode == 0, done.stderr
    (d / "empty").mkdir()
    (d / "staff-only").mkdir()
    (d / "staff-only" / "staff.jsonl").write_bytes((d / "force" / "staff.jsonl").read_bytes())
    (d / "no-records").mkdir()
    for name in ("staff", "subjects", "cases", "duties"):
        (d / "no-records" / f"{name}.jsonl").write_text("\n")
    (d / "labels.json").write_bytes((d / "force" / "labels.json").read_bytes())
    alert = {"alert_id": "a1", "user_id": "U1", "rule_id": "AW-001", "event_ids": ["e1"],
             "first_seen": "2026-03-02T09:00:00Z", "last_seen": "2026-03-02T09:00:00Z"}
    second = {**alert, "alert_id": "a2"}
    (d / "alerts.jsonl").write_text(json.dumps(alert) + "\n" + json.dumps(second) + "\n")
    (d / "not-alerts.jsonl").write_text('{"user_id": "U1"}\n')
    (d / "list.json").write_text("[1, 2, 3]\n")
    (d / "binary.json").write_bytes(b"\x80\x81 not text")
    return d


@pytest.fixture(scope="module")
def outcomes(data: Path, tmp_path_factory: pytest.TempPathFactory
             ) -> dict[str, subprocess.CompletedProcess[str]]:
    """Every case, run side by side (most of each is interpreter start or a broker wait)."""

    def one(case: Bad) -> subprocess.CompletedProcess[str]:
        cwd = tmp_path_factory.mktemp(case.id)
        if case.dotenv is not None:
            (cwd / ".env").write_text(case.dotenv)
        return run([a.replace("{d}", str(data)) for a in case.args], cwd, case.env)

    with ThreadPoolExecutor(max_workers=6) as pool:
        return dict(zip([c.id for c in CASES], pool.map(one, CASES), strict=True))


def test_the_table_is_big_enough() -> None:
    assert len(CASES) >= 45 and len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_a_mistake_is_one_line_naming_it(
        case: Bad, outcomes: dict[str, subprocess.CompletedProcess[str]]) -> None:
    done = outcomes[case.id]
    said = f"exit {done.returncode}\nstdout: {done.stdout}\nstderr: {done.stderr}"
    assert "Traceback" not in done.stdout + done.stderr, said
    assert done.returncode == case.code, said
    lines = done.stderr.rstrip("\n").split("\n")
    assert len(lines) == 1 and lines[0].strip(), said
    for fragment in case.says:
        assert fragment in lines[0], f"{fragment!r} not in: {lines[0]}"
    assert lines[0].startswith("accesswatch"), said


def test_a_wrong_ref_stops_before_the_events_are_opened(data: Path, tmp_path: Path) -> None:
    # A FIFO with no writer blocks whoever opens it: the backtest must not get that far.
    fifo = tmp_path / "events.fifo"
    os.mkfifo(fifo)
    for ref in ("nope", str(data / "empty"), str(data / "staff-only"), str(data / "no-records")):
        started = time.monotonic()
        done = run(["backtest", str(fifo), "--ref", ref, "--out", "a.jsonl"], tmp_path,
                   timeout=20)
        assert done.returncode == USAGE, done.stderr
        assert "--ref" in done.stderr and "Traceback" not in done.stderr
        assert time.monotonic() - started < 10
    # A missing events file too: the line is about --ref, which is checked first.
    done = run(["backtest", "no-such-events.jsonl", "--ref", str(data / "empty"), "--out",
                "a.jsonl"], tmp_path)
    assert done.returncode == USAGE and "--ref" in done.stderr
    assert "no-such-events" not in done.stderr


def test_allow_empty_accepts_a_reference_directory_without_records(
        data: Path, tmp_path: Path) -> None:
    done = run(["backtest", str(data / "force" / "events.jsonl"), "--ref", str(data / "empty"),
                "--out", "a.jsonl", "--allow-empty", "--no-progress"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert "not found" in done.stderr  # each missing file is still named


def test_debug_shows_the_traceback(data: Path, tmp_path: Path) -> None:
    args = ["evaluate", "--labels", str(data / "list.json"), "--alerts",
            str(data / "alerts.jsonl")]
    for env, argv in (({}, ["--debug", *args]), ({"ACCESSWATCH_DEBUG": "1"}, args)):
        done = run(argv, tmp_path, env)
        assert done.returncode == FAILED
        assert "Traceback" in done.stderr and "AccessWatchError" in done.stderr
        assert done.stderr.rstrip().splitlines()[-1].startswith("accesswatch evaluate: --labels")


def test_a_closed_pipe_ends_silently(data: Path, tmp_path: Path) -> None:
    """``evaluate --json | head -1``: the reader leaves early; no traceback, no noise."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ACCESSWATCH_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "accesswatch.cli", "evaluate", "--labels",
         str(data / "labels.json"), "--alerts", str(data / "alerts.jsonl"), "--json"],
        cwd=tmp_path, env=clean, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # before the child writes a byte
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=30) in (0, 1)
    assert err == "", err


def test_no_arguments_lists_the_commands_to_start_with(tmp_path: Path) -> None:
    done = run([], tmp_path)
    assert done.returncode == USAGE and "Traceback" not in done.stderr
    for name in ("generate", "backtest", "evaluate", "worker", "alerts"):
        assert f"accesswatch {name}" in done.stdout


def test_an_unknown_variable_is_warned_about_once_with_the_nearest_name(tmp_path: Path) -> None:
    env = {"ACCESSWATCH_PARTITONS": "8", "ACCESSWATCH_DEBUG": "0",
           "ACCESSWATCH_WORKER_RESTARTS": "0", "ACCESSWATCH_TEST_BROKER": "x:1",
           "ACCESSWATCH_CONSOLE_SECRET": "s" * 20}
    (tmp_path / ".env").write_text("ACCESSWATCH_BATCH_SIZ=5\nACCESSWATCH_BATCH_WAIT=0.2\n")
    done = run(["config"], tmp_path, env)
    assert done.returncode == 0, done.stderr
    warnings = done.stderr.strip().splitlines()
    assert len(warnings) == 2, done.stderr
    assert "ACCESSWATCH_PARTITONS" in warnings[1]
    assert "did you mean ACCESSWATCH_PARTITIONS?" in warnings[1]
    assert "ACCESSWATCH_BATCH_SIZ (set in .env)" in warnings[0]
    assert "did you mean ACCESSWATCH_BATCH_SIZE?" in warnings[0]
    # With an error after it: the warning, then the one line of the error.
    done = run(["topics", "create"], tmp_path, {**env, **NO_BROKER})
    lines = done.stderr.strip().splitlines()
    assert done.returncode == FAILED and len(lines) == 3, done.stderr
    assert "no Kafka broker reachable" in lines[-1] and "Traceback" not in done.stderr


def test_config_prints_every_value_in_force_and_where_it_came_from(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("ACCESSWATCH_BATCH_SIZE=7\nACCESSWATCH_PARTITIONS=2\n")
    done = run(["config"], tmp_path, {"ACCESSWATCH_PARTITIONS": "3",
                                      "ACCESSWATCH_SASL_PASSWORD": "pa55-word"})
    assert done.returncode == 0, done.stderr
    rows = {line.split()[0]: line.split(None, 2)[1:] for line in done.stdout.splitlines()}
    assert all(len(row) == 2 and row[1].strip() for row in rows.values()), done.stdout
    assert rows["ACCESSWATCH_PARTITIONS"] == ["environment", "3"]
    assert rows["ACCESSWATCH_BATCH_SIZE"] == [".env", "7"]
    assert rows["ACCESSWATCH_DLQ_PARTITIONS"][1].startswith("3 ")
    assert rows["ACCESSWATCH_RULES_PATH"][0] == "default"
    assert "pa55-word" not in done.stdout and rows["ACCESSWATCH_SASL_PASSWORD"][1] == "********"


def test_the_broker_wait_figure_is_true(tmp_path: Path) -> None:
    started = time.monotonic()
    done = run(["topics", "check"], tmp_path, {**NO_BROKER, "ACCESSWATCH_BROKER_WAIT": "3"})
    took = time.monotonic() - started
    assert done.returncode == FAILED and "after 3 s" in done.stderr, done.stderr
    assert 3 <= took < 8


def test_a_backtest_without_rejects_writes_no_rejects_file(data: Path, tmp_path: Path) -> None:
    done = run(["backtest", str(data / "force" / "events.jsonl"), "--ref", str(data / "force"),
                "--out", "alerts.jsonl", "--no-progress"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert " 0 rejected" in done.stderr and "see " not in done.stderr
    assert not (tmp_path / "alerts.rejects.jsonl").exists()


@pytest.mark.broker
def test_topics_create_says_how_to_resolve_a_partition_mismatch(broker: str,  # noqa: F811
                                                                 tmp_path: Path) -> None:
    env = unique_env(broker)
    assert run(["topics", "create"], tmp_path, env).returncode == 0
    done = run(["topics", "create"], tmp_path, {**env, "ACCESSWATCH_PARTITIONS": "8"})
    assert done.returncode == FAILED and "MISMATCH" in done.stdout
    remedy = done.stderr.strip().splitlines()
    assert len(remedy) == 1 and "Traceback" not in done.stderr, done.stderr
    assert "ACCESSWATCH_PARTITIONS=4" in remedy[0] and "new topic names" in remedy[0]


@pytest.mark.broker
def test_alerts_tail_says_it_waits_for_new_alerts(broker: str,  # noqa: F811
                                                  tmp_path: Path) -> None:
    env = unique_env(broker)
    assert run(["topics", "create"], tmp_path, env).returncode == 0
    done = run(["alerts", "tail", "--idle-exit", "0.5"], tmp_path, env)
    assert done.returncode == 0, done.stderr
    said = done.stderr.strip().splitlines()
    assert len(said) == 1 and "waiting for new alerts" in said[0], done.stderr
    assert "--from-beginning" in said[0]
    quiet = run(["alerts", "tail", "--from-beginning", "--idle-exit", "0.5"], tmp_path, env)
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr


# ---- help that teaches ------------------------------------------------------------------


def subcommands(parser: argparse.ArgumentParser, path: str = "accesswatch"
                ) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield f"{path} {name}", sub
                yield from subcommands(sub, f"{path} {name}")


def test_every_option_has_help_and_shows_its_default() -> None:
    found = list(subcommands(build_parser()))
    assert len(found) >= 14
    for name, sub in found:
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
                continue
            where = f"{name} {'/'.join(action.option_strings) or action.dest}"
            assert action.help, f"{where}: no help"
            shown = sub.formatter_class(prog=name)._get_help_string(action)  # type: ignore[attr-defined]
            if action.default not in (None, False) and not action.required:
                assert "%(default)s" in shown or "default:" in shown, f"{where}: default hidden"
            elif action.option_strings and not action.required and action.const is None:
                assert "default" in shown, f"{where}: what happens without it is not said"


def test_every_command_has_examples_and_the_top_level_no_markup() -> None:
    parser = build_parser()
    assert "``" not in (parser.description or "")
    for name, sub in subcommands(parser):
        if name == "accesswatch console hash-password" or name.count(" ") == 1:
            assert "accesswatch " in (sub.epilog or ""), f"{name}: no example"
    help_of = {name: sub.format_help() for name, sub in subcommands(parser)}
    assert "check:" in help_of["accesswatch topics"]
    assert "(default: 200.0)" in help_of["accesswatch replay"]
    assert "ignored" in help_of["accesswatch worker"]
