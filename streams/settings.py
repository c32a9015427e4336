"""Live-pipeline settings: environment variables prefixed ``ACCESSWATCH_`` or ``.env``.

>>> Settings(bootstrap_servers="kafka1:9092,kafka2:9092").servers
['kafka1:9092', 'kafka2:9092']
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
Guarantee = Literal["at_least_once", "exactly_once"]
LogLevel = Literal["debug", "info", "warning", "error", "critical"]
MASK = "********"
ONE_SHOT_BROKER_WAIT = 30.0  # seconds: one-shot commands give up; the worker waits for ever


class Settings(BaseSettings):
    """Every knob of the live pipeline; the defaults run against a local broker."""

    model_config = SettingsConfigDict(env_prefix="ACCESSWATCH_", env_file=".env",
                                      env_file_encoding="utf-8", extra="ignore")

    # --- broker connection -------------------------------------------------
    bootstrap_servers: str = "127.0.0.1:9092"
    security_protocol: SecurityProtocol = "PLAINTEXT"
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    ssl_password: SecretStr | None = None
    sasl_mechanism: SaslMechanism | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    client_id: str = "accesswatch"
    broker_wait: float | None = Field(None, ge=0, description="seconds to keep retrying an "
                                      "unreachable broker at start; 0 retries for ever; "
                                      "unset: the worker and console wait for ever, one-shot "
                                      "commands give up after 30 s")

    # --- topics --------------------------------------------------------------
    app_id: str = Field("accesswatch", description="consumer group, and prefix of the "
                                                   "state changelog topic")
    topic_events: str = "access.events"
    topic_alerts: str = "access.alerts"
    topic_dlq: str = "access.events.dlq"
    topic_ref_staff: str = "ref.staff"
    topic_ref_subjects: str = "ref.subjects"
    topic_ref_cases: str = "ref.cases"
    topic_ref_duties: str = "ref.duties"
    partitions: int = Field(4, ge=1, description="partitions of events, alerts and state")
    ref_partitions: int = Field(1, ge=1)
    dlq_partitions: int | None = Field(None, ge=1, description="default: as many as events, "
                                       "so a dead letter keeps its source partition")
    replication_factor: int = Field(1, ge=1)
    # The DLQ holds the original bytes of rejected events: personal data.
    dlq_retention_hours: float = Field(168.0, gt=0)
    # A dead letter larger than this keeps only its head (header accesswatch-original-bytes
    # says how big it was): a hostile multi-megabyte message cannot hit the broker's limit.
    dlq_max_bytes: int = Field(512 * 1024, ge=1024, le=900_000)

    # --- processing ------------------------------------------------------------
    batch_size: int = Field(10_000, ge=1)
    batch_wait: float = Field(0.1, gt=0, description="seconds to wait to fill a batch "
                              "(FAST_PATH=false only; the Kafka source never waits)")
    fast_path: bool = Field(True, description="read events with a plain aiokafka consumer "
                            "(getmany); false: through a Faust agent, about 60-95 µs an "
                            "event slower (streams/source.py)")
    processing_guarantee: Guarantee = "at_least_once"
    commit_interval: float = Field(2.8, gt=0, description="seconds between checkpoints: "
                                   "changed state stored, then offsets committed")
    # A worker killed without a goodbye keeps its partitions until the group coordinator
    # gives up on it: this long.  Faust's own default (60 s) stalls a restart for a minute.
    session_timeout: float = Field(10.0, gt=0, description="seconds without a heartbeat "
                                   "before the group hands a worker's partitions on")
    instance_id: str | None = Field(None, description="static group membership: a worker "
                                    "restarted with the same id (say, its pod name) takes its "
                                    "partitions back at once, without a rebalance")
    rules_path: Path | None = None
    model_path: Path | None = None
    alert_update_interval: float = Field(10.0, ge=0, description="seconds an alert waits "
                                         "at least between two published versions; the "
                                         "newest version always goes out after it")
    reload_interval: float = Field(5.0, gt=0, description="seconds between checks of the "
                                   "rules and model files for a new version")
    # Some brokers answer an empty fetch at once, so an idle consumer spins.
    empty_fetch_backoff_ms: int = Field(10, ge=0)
    data_dir: Path | None = Field(None, description="the worker's data dir: Faust's, and "
                                  "the reference snapshot (default: a temp dir)")
    reference_snapshot_interval: float = Field(3600.0, ge=0, description="seconds between "
                                               "reference snapshots once caught up (one is "
                                               "also written at catch-up and at a clean "
                                               "stop); 0: none written or read")
    reference_split_records: int = Field(500_000, ge=0, description="a cold read of at "
                                         "least this many subject records reads them in "
                                         "a second process, on another core, while this "
                                         "one reads the rest; 0: never")
    # A test hook: while this file exists the worker handles no batch (its timers,
    # lag and /metrics carry on), as a stuck worker would.  Unset in production.
    stall_file: Path | None = None

    # --- serving ---------------------------------------------------------------
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(9464, ge=0, le=65535)
    # Faust's own web server is not started (streams/app.py): these are accepted, unused.
    web_host: str = "127.0.0.1"
    web_port: int = Field(6066, ge=0, le=65535)
    log_level: LogLevel = "info"

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower_level(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("bootstrap_servers")
    @classmethod
    def _check_servers(cls, value: str) -> str:
        servers = [s.strip() for s in value.split(",") if s.strip()]
        if not servers:
            raise ValueError("no server given: expected host:port[,host:port...]")
        for server in servers:
            host, _, port = server.rpartition(":")
            if not host.strip("[]") or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"{server!r} is not host:port (e.g. 127.0.0.1:9092)")
        return value

    @model_validator(mode="after")
    def _check_guarantee(self) -> Settings:
        if self.processing_guarantee != "at_least_once":
            raise ValueError("ACCESSWATCH_PROCESSING_GUARANTEE=exactly_once is no longer "
                             "offered: Faust's transactions never covered alerts, dead "
                             "letters or state; at_least_once (the default) is made "
                             "duplicate-free by the worker")
        return self

    @model_validator(mode="after")
    def _check_security(self) -> Settings:
        if self.security_protocol.startswith("SASL") and not (
            self.sasl_mechanism and self.sasl_username and self.sasl_password
        ):
            raise ValueError(f"ACCESSWATCH_SECURITY_PROTOCOL={self.security_protocol} needs "
                             "ACCESSWATCH_SASL_MECHANISM, ACCESSWATCH_SASL_USERNAME and "
                             "ACCESSWATCH_SASL_PASSWORD set too")
        return self

    @property
    def servers(self) -> list[str]:
        return [s.strip() for s in self.bootstrap_servers.split(",") if s.strip()]

    def broker_wait_for(self, one_shot: bool) -> float | None:
        """Seconds to wait for the broker (None: for ever); one-shot commands give up."""
        if self.broker_wait is None:
            return ONE_SHOT_BROKER_WAIT if one_shot else None
        return self.broker_wait or None

    @property
    def ref_topics(self) -> dict[str, str]:
        """Reference kind (as ``decode_reference`` names it) → compacted topic."""
        return {"staff": self.topic_ref_staff, "subject": self.topic_ref_subjects,
                "case": self.topic_ref_cases, "duty": self.topic_ref_duties}

    @property
    def data_path(self) -> Path:
        """The worker's data dir: ``data_dir``, or one in the temp dir named by app id."""
        return self.data_dir or Path(tempfile.gettempdir()) / f"accesswatch-{self.app_id}"

    @property
    def dlq_partition_count(self) -> int:
        return self.dlq_partitions or self.partitions

    @property
    def state_table(self) -> str:
        return "user-state"

    @property
    def state_changelog(self) -> str:
        """The compacted topic of per-user state (named as Faust named its table's)."""
        return f"{self.app_id}-{self.state_table}-changelog"

    @property
    def leader_topic(self) -> str:
        return f"{self.app_id}-__assignor-__leader"

    def plain(self) -> dict[str, Any]:
        """The effective settings as JSON values, secrets included, for a child process
        to validate back (``Settings.model_validate``) and read exactly the same."""
        return self._values(SecretStr.get_secret_value)

    def masked(self) -> dict[str, Any]:
        """The effective settings as plain values, secrets replaced by a mask."""
        return self._values(lambda secret: MASK if secret.get_secret_value() else "")

    def _values(self, secret: Callable[[SecretStr], str]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, value in self.model_dump().items():
            if isinstance(value, SecretStr):
                out[name] = secret(value)
            elif isinstance(value, Path):
                out[name] = str(value)
            else:
                out[name] = value
        return out
