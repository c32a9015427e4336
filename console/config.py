"""The console's settings: the pipeline's ``ACCESSWATCH_*`` and its own ``_CONSOLE_*``."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr

from streams.settings import Settings
from streams.topics import COMPACT, TopicSpec


class ConsoleSettings(Settings):
    console_users: Path | None = Field(None, description="users file (YAML, hashed passwords)")
    console_secret: SecretStr | None = Field(None, description="signs session cookies; "
                                             "unset: a random one, sessions end on restart")
    console_signing_key: SecretStr | None = Field(None, description="signs triage decisions "
                                                  "and case records (every console the same); "
                                                  "unset: derived from the secret")
    # Single sign-on (console/oidc.py): OpenID Connect, code flow with PKCE.
    console_oidc_issuer: str | None = Field(None, description="the identity provider's "
                                            "issuer URL; unset: no single sign-on")
    console_oidc_client_id: str | None = None
    console_oidc_client_secret: SecretStr | None = Field(None, description="unset: a "
                                                         "public client (PKCE only)")
    console_oidc_redirect_url: str | None = Field(None, description="the console's "
                                                  "/oidc/callback as the browser sees it")
    console_oidc_role_claim: str = Field("accesswatch_role", description="the claim whose "
                                         "value is the role: viewer, analyst or lead")
    console_oidc_scopes: str = "openid profile"
    console_host: str = "127.0.0.1"
    console_port: int = Field(8080, ge=0, le=65535)
    console_tls_certfile: Path | None = None
    console_tls_keyfile: Path | None = None
    console_secure_cookies: bool | None = Field(None, description="cookies Secure and HSTS "
                                                "sent; unset: when served over TLS (set true "
                                                "for TLS ended at a proxy)")
    console_trusted_proxies: str = Field("", description="addresses/CIDRs of reverse proxies "
                                         "whose client-address header is believed")
    console_client_ip_header: str = Field("X-Forwarded-For", description="the header a "
                                          "trusted proxy puts the client's address in")
    console_max_alerts: int = Field(100_000, ge=1, description="alerts held in memory")
    console_data_dir: Path = Field(Path(".accesswatch-console"), description="the console's "
                                   "own files: the access history (history.sqlite3), signed-out "
                                   "sessions and failed sign-ins (revocations.sqlite3)")
    console_history_days: float = Field(35.0, ge=0, description="days of accesses kept for "
                                        "timelines and subject pages, by event time; 0: all")
    console_case_gap_hours: float = Field(168.0, gt=0, description="a member's alerts this "
                                          "close in event time form one case")
    console_closed_case_grace_hours: float = Field(48.0, ge=0, description="a closed case "
                                                   "still justifies opens this long "
                                                   "after (as the pack's closed_case_grace)")
    console_webhook_url: str | None = None
    console_webhook_secret: SecretStr | None = None
    # Default: the alert topic's name plus .triage, so a renamed alert topic brings its own.
    topic_triage: str | None = None
    topic_triage_audit: str | None = None
    topic_cases: str | None = None
    topic_cases_audit: str | None = None
    topic_watchlist: str | None = None
    topic_consultations: str = Field("console.consultations", description="the console's "
                                     "consultation log: every read of personal data, kept")
    console_consultations_held: int = Field(100_000, ge=1, description="consultations "
                                            "held in memory for a lead's view")
    console_audit_as_events: bool = Field(True, description="also produce each opening of "
                                          "a timeline or subject page as an access event")
    triage_partitions: int = Field(1, ge=1)

    @property
    def triage_topic(self) -> str:
        return self.topic_triage or f"{self.topic_alerts}.triage"

    @property
    def triage_audit_topic(self) -> str:
        return self.topic_triage_audit or f"{self.triage_topic}.audit"

    @property
    def cases_topic(self) -> str:
        return self.topic_cases or f"{self.topic_alerts}.cases"

    @property
    def cases_audit_topic(self) -> str:
        return self.topic_cases_audit or f"{self.cases_topic}.audit"

    @property
    def consultations_topic(self) -> str:
        return self.topic_consultations

    @property
    def watchlist_topic(self) -> str:
        return self.topic_watchlist or f"{self.topic_alerts}.watchlist"

    @property
    def webhook_group(self) -> str:
        return f"{self.app_id}-console-webhook"


def console_topic_specs(s: ConsoleSettings) -> list[TopicSpec]:
    """The console's own topics: decisions and cases (compacted), every step of them
    (kept), and the watch-list (compacted)."""
    return [
        TopicSpec(s.triage_topic, s.triage_partitions, dict(COMPACT),
                  role="triage decisions, keyed by alert_id"),
        TopicSpec(s.triage_audit_topic, s.triage_partitions, {"retention.ms": "-1"},
                  role="every triage step, kept (audit)"),
        TopicSpec(s.cases_topic, s.triage_partitions, dict(COMPACT),
                  role="cases: owner, status, outcome, approval; keyed by case_id"),
        TopicSpec(s.cases_audit_topic, s.triage_partitions, {"retention.ms": "-1"},
                  role="every case step, kept (audit)"),
        TopicSpec(s.watchlist_topic, 1, dict(COMPACT),
                  role="subjects the console watches, keyed by subject_id"),
        TopicSpec(s.consultations_topic, 1, {"retention.ms": "-1",
                                             "max.message.bytes": str(4 * 1024 * 1024)},
                  role="every read of personal data through the console, kept (audit)"),
    ]
