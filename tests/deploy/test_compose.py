"""docker-compose.yml: valid Compose, and everything it names is where it says.

No Docker engine runs here, so ``docker compose config`` cannot be the check.  The
file is validated against the Compose specification's JSON Schema, vendored as
compose-spec.json (where it came from: README.md beside this file), and the rest
is checked by reading it: files, ports, settings, commands.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from accesswatch.cli import build_parser
from streams.settings import Settings
from tests.deploy.conftest import DEPLOY, ROOT, load_yaml

COMPOSE = ROOT / "docker-compose.yml"
SCHEMA = Path(__file__).with_name("compose-spec.json")
SERVICES = {"kafka", "topics", "worker", "load-ref", "prometheus", "alertmanager", "grafana"}
ACCESSWATCH = {"topics", "worker", "load-ref"}
ONE_SHOT = {"topics", "load-ref"}
# Bind mounts of data the operator supplies at run time, not configuration in this repo.
RUNTIME_DATA = {("load-ref", "/data/reference")}
METRICS_PORT = 9464
_VAR = re.compile(r"\$\{(\w+)(?:(:?[-?])([^}]*))?\}")


OVERRIDES = sorted((DEPLOY / "compose").glob("*.yml"))
ENV_EXAMPLE = DEPLOY / "env.example"


class ComposeLoader(yaml.SafeLoader):
    """YAML as Compose reads it: ``!reset`` and ``!override`` keep their value."""


def _tagged(loader: ComposeLoader, node: yaml.Node) -> Any:
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_scalar(node)  # type: ignore[arg-type]


for _tag in ("!reset", "!override"):
    ComposeLoader.add_constructor(_tag, _tagged)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_yaml(COMPOSE)


def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def validator() -> jsonschema.Draft201909Validator:
    # The schema names draft 2019-09 by an old URL jsonschema does not recognise.
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft201909Validator.check_schema(schema)
    return jsonschema.Draft201909Validator(schema)


def test_the_file_validates_against_the_compose_specification(compose: dict[str, Any]) -> None:
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
              for e in validator().iter_errors(compose)]
    assert errors == []


def test_the_schema_refuses_what_compose_refuses(compose: dict[str, Any]) -> None:
    broken = json.loads(json.dumps(compose))
    broken["services"]["worker"]["helthcheck"] = broken["services"]["worker"].pop("healthcheck")
    assert not validator().is_valid(broken)


def test_every_part_of_the_stack_is_there(compose: dict[str, Any]) -> None:
    assert set(services(compose)) == SERVICES


def test_images_are_pinned_and_kafka_is_the_official_image_in_kraft_mode(
        compose: dict[str, Any]) -> None:
    for name, svc in services(compose).items():
        image = _interpolate(svc["image"])
        repo, _, tag = image.rpartition(":")
        assert repo and tag and tag != "latest" and re.search(r"\d", tag), f"{name}: {image}"
    kafka = services(compose)["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    env = kafka["environment"]
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert not any("ZOOKEEPER" in key for key in env)
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"  # topics create makes them


def test_accesswatch_services_run_real_commands_with_real_settings(
        compose: dict[str, Any]) -> None:
    parser = build_parser()
    for name in ACCESSWATCH:
        svc = services(compose)[name]
        args = parser.parse_args(svc["command"])  # exits on a command that does not exist
        assert args.command == svc["command"][0]
        for key in svc["environment"]:
            assert key.startswith("ACCESSWATCH_"), f"{name}: {key}"
            assert key.removeprefix("ACCESSWATCH_").lower() in Settings.model_fields, \
                f"{name}: {key} is not a setting (streams/settings.py)"


def test_the_worker_scales_and_starts_after_its_topics(compose: dict[str, Any]) -> None:
    worker = services(compose)["worker"]
    # `--scale worker=N` needs no fixed container name and no published host port.
    assert "container_name" not in worker and "ports" not in worker
    assert worker["depends_on"]["topics"]["condition"] == "service_completed_successfully"
    assert worker["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert services(compose)["topics"]["depends_on"]["kafka"]["condition"] == "service_healthy"


def test_long_running_services_have_health_checks_and_one_shots_do_not_restart(
        compose: dict[str, Any]) -> None:
    for name, svc in services(compose).items():
        if name in ONE_SHOT:
            assert svc["restart"] == "no", name
        else:
            assert svc["restart"] == "unless-stopped", name
            check = svc["healthcheck"]
            assert not check.get("disable") and check["test"], name


def test_state_lives_in_named_volumes(compose: dict[str, Any]) -> None:
    declared = set(compose["volumes"])
    used = set()
    for name, svc in services(compose).items():
        for source, _, _ in _mounts(svc):
            if source is not None and not source.startswith((".", "/")):
                assert source in declared, f"{name}: volume {source} is not declared"
                used.add(source)
    assert used == declared
    for name in ("kafka", "prometheus", "alertmanager", "grafana"):
        assert any(s in declared for s, _, _ in _mounts(services(compose)[name])), name


def test_every_file_a_service_mounts_or_builds_from_exists(compose: dict[str, Any]) -> None:
    for name, svc in services(compose).items():
        for source, target, _ in _mounts(svc):
            if source is None or not source.startswith((".", "/")):
                continue
            if (name, target) in RUNTIME_DATA:
                continue
            assert (ROOT / source).exists(), f"{name}: {source} does not exist"
        if "build" in svc:
            assert (ROOT / svc["build"]["context"] / svc["build"]["dockerfile"]).is_file()


def test_each_service_finds_its_config_where_it_looks(compose: dict[str, Any]) -> None:
    svc = services(compose)
    prom = _flag(svc["prometheus"]["command"], "--config.file")
    assert _host_path(svc["prometheus"], prom) == DEPLOY / "prometheus" / "prometheus.yml"
    am = _flag(svc["alertmanager"]["command"], "--config.file")
    assert _host_path(svc["alertmanager"], am) == DEPLOY / "alertmanager" / "alertmanager.yml"

    grafana = svc["grafana"]
    provisioning = _host_path(grafana, "/etc/grafana/provisioning")
    assert provisioning is not None and (provisioning / "datasources").is_dir()
    for provider_file in (provisioning / "dashboards").glob("*.yml"):
        for provider in load_yaml(provider_file)["providers"]:
            folder = _host_path(grafana, provider["options"]["path"])
            assert folder is not None and any(folder.glob("*.json")), provider_file
    home = _host_path(grafana, grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"])
    assert home is not None and home.is_file()


def test_ports_and_names_agree_across_the_stack(compose: dict[str, Any]) -> None:
    svc = services(compose)
    worker = svc["worker"]
    assert [int(p) for p in worker["expose"]] == [METRICS_PORT]
    assert f"127.0.0.1:{METRICS_PORT}/healthz" in " ".join(worker["healthcheck"]["test"])
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert f"ACCESSWATCH_METRICS_PORT={METRICS_PORT}" in dockerfile

    prometheus = load_yaml(DEPLOY / "prometheus" / "prometheus.yml")
    job = next(j for j in prometheus["scrape_configs"] if j["job_name"] == "accesswatch")
    assert job["dns_sd_configs"] == [{"names": ["worker"], "type": "A", "port": METRICS_PORT,
                                      "refresh_interval": "15s"}]
    targets = prometheus["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert targets == ["alertmanager:9093"]
    datasources = load_yaml(DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml")
    assert [d["url"] for d in datasources["datasources"]] == ["http://prometheus:9090"]
    bootstrap = svc["worker"]["environment"]["ACCESSWATCH_BOOTSTRAP_SERVERS"]
    assert bootstrap == "kafka:9092"
    assert "PLAINTEXT://kafka:9092" in svc["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]


def _interpolate(value: str) -> str:
    """``${NAME:-default}`` → default, as Compose does with NAME unset."""
    return _VAR.sub(lambda m: m.group(3) if m.group(2) in (":-", "-") else "", value)


def _mounts(svc: dict[str, Any]) -> list[tuple[str | None, str, bool]]:
    """(source, target, read_only) of each volume; source None for an anonymous volume."""
    out: list[tuple[str | None, str, bool]] = []
    for v in svc.get("volumes", []):
        if isinstance(v, dict):
            out.append((v.get("source"), v["target"], bool(v.get("read_only"))))
            continue
        parts = _interpolate(v).split(":")
        if len(parts) == 1:
            out.append((None, parts[0], False))
        else:
            out.append((parts[0], parts[1], len(parts) > 2 and "ro" in parts[2].split(",")))
    return out


def _host_path(svc: dict[str, Any], container_path: str) -> Path | None:
    """The repo path a bind mount of ``svc`` puts at ``container_path``."""
    for source, target, _ in _mounts(svc):
        if source and source.startswith(".") and (
                container_path == target or container_path.startswith(target + "/")):
            return (ROOT / source / container_path[len(target):].lstrip("/")).resolve()
    return None


def _flag(command: list[str], name: str) -> str:
    return next(arg.split("=", 1)[1] for arg in command if arg.startswith(name + "="))


@pytest.mark.parametrize("path", OVERRIDES, ids=lambda p: p.name)
def test_override_files_validate_and_name_real_services_and_settings(
        path: Path, compose: dict[str, Any]) -> None:
    override = yaml.load(path.read_text(), ComposeLoader)  # a SafeLoader
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
              for e in validator().iter_errors(override)]
    assert errors == []
    assert set(services(override)) <= set(services(compose))
    for name, svc in services(override).items():
        for key in svc.get("environment", {}):
            assert key.removeprefix("ACCESSWATCH_").lower() in Settings.model_fields, \
                f"{path.name} {name}: {key} is not a setting"


def test_env_example_lists_every_variable_the_compose_files_use() -> None:
    used = {m.group(1) for path in [COMPOSE, *OVERRIDES]
            for m in _VAR.finditer(path.read_text())}
    listed = set(re.findall(r"^#? ?(\w+)=", ENV_EXAMPLE.read_text(), re.M))
    assert used - listed == set()
