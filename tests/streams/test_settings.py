"""Settings from the environment and ``.env``; secrets never printed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from accesswatch.cli import main
from streams.settings import MASK, Settings


def test_defaults_run_against_a_local_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ACCESSWATCH_BOOTSTRAP_SERVERS", "ACCESSWATCH_METRICS_PORT"):
        monkeypatch.delenv(name, raising=False)
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    assert s.servers == ["127.0.0.1:9092"]
    assert s.topic_events == "access.events" and s.topic_dlq == "access.events.dlq"
    assert s.ref_topics == {"staff": "ref.staff", "subject": "ref.subjects",
                            "case": "ref.cases", "duty": "ref.duties"}
    assert s.state_changelog == "accesswatch-user-state-changelog"


def test_environment_overrides_with_the_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACCESSWATCH_BOOTSTRAP_SERVERS", "k1:9092, k2:9093")
    monkeypatch.setenv("ACCESSWATCH_METRICS_PORT", "9999")
    monkeypatch.setenv("ACCESSWATCH_TOPIC_ALERTS", "soc.alerts")
    monkeypatch.setenv("ACCESSWATCH_BATCH_WAIT", "0.5")
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    assert s.servers == ["k1:9092", "k2:9093"]
    assert (s.metrics_port, s.topic_alerts, s.batch_wait) == (9999, "soc.alerts", 0.5)


def test_dotenv_file_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ACCESSWATCH_PARTITIONS", raising=False)
    env = tmp_path / ".env"
    env.write_text("ACCESSWATCH_PARTITIONS=12\nACCESSWATCH_FAST_PATH=false\n")
    s = Settings(_env_file=env)  # type: ignore[call-arg]
    assert s.partitions == 12 and s.fast_path is False


def test_exactly_once_is_refused_saying_why() -> None:
    with pytest.raises(ValidationError, match="exactly_once is no longer offered"):
        Settings(processing_guarantee="exactly_once", _env_file=None)  # type: ignore[call-arg]
    assert Settings(_env_file=None).processing_guarantee == "at_least_once"  # type: ignore[call-arg]


def test_bad_values_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACCESSWATCH_PARTITIONS", "0")
    with pytest.raises(ValidationError):
        Settings(_env_file=None)  # type: ignore[call-arg]


def test_sasl_needs_mechanism_user_and_password() -> None:
    with pytest.raises(ValidationError, match="ACCESSWATCH_SASL_MECHANISM"):
        Settings(_env_file=None, security_protocol="SASL_SSL")  # type: ignore[call-arg]
    s = Settings(_env_file=None, security_protocol="SASL_SSL",  # type: ignore[call-arg]
                 sasl_mechanism="SCRAM-SHA-512", sasl_username="aw",
                 sasl_password=SecretStr("pw"))
    assert s.sasl_password is not None and s.sasl_password.get_secret_value() == "pw"


def test_config_command_masks_secrets(monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("ACCESSWATCH_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("ACCESSWATCH_SASL_MECHANISM", "SCRAM-SHA-256")
    monkeypatch.setenv("ACCESSWATCH_SASL_USERNAME", "accesswatch")
    monkeypatch.setenv("ACCESSWATCH_SASL_PASSWORD", "s3cret-Pa55")
    monkeypatch.setenv("ACCESSWATCH_SSL_PASSWORD", "key-Pa55")
    assert main(["config"]) == 0
    text = capsys.readouterr().out
    assert "s3cret-Pa55" not in text and "key-Pa55" not in text
    assert "ACCESSWATCH_SASL_USERNAME" in text and MASK in text
    assert main(["config", "--json"]) == 0
    values = json.loads(capsys.readouterr().out)
    assert values["sasl_password"] == MASK and values["ssl_password"] == MASK
    assert values["sasl_username"] == "accesswatch"


def test_config_command_explains_a_bad_setting(monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("ACCESSWATCH_METRICS_PORT", "not-a-port")
    assert main(["config"]) == 2
    assert "ACCESSWATCH_METRICS_PORT" in capsys.readouterr().err


def test_every_setting_is_in_the_settings_table() -> None:
    # docs/settings.md's table is the one place they are documented: a new setting
    # must land there, with its default, or this fails naming it.
    doc = (Path(__file__).parents[2] / "docs" / "settings.md").read_text()
    section = doc.split("## The pipeline's settings", 1)[1].split("\n## ", 1)[0]
    rows = {line.split("|")[1] for line in section.splitlines() if line.startswith("| `ACCESS")}
    documented = " ".join(rows)
    missing = [f"ACCESSWATCH_{name.upper()}" for name in Settings.model_fields
               if f"`ACCESSWATCH_{name.upper()}`" not in documented]
    assert not missing, f"not in docs/settings.md's settings table: {', '.join(missing)}"
