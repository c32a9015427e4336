"""Item 8: access.  TLS and SASL/SCRAM settings reach every Kafka client; HTTP serves
nothing beyond ``/metrics`` and ``/healthz`` (so nothing there needs a login).

The settings are mapped in streams/connect.py for the three client libraries:
kafka-python (topics, load-ref, replay), aiokafka (reference feed, output
read-back, offsets) and Faust (the worker's consumer and producer, whose
options Faust derives itself from ``broker_credentials``).  Each mapping is
checked here against real certificate files, down to the options the client
is finally built with.
"""

from __future__ import annotations

import ssl
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from accesswatch.rules import load_rules
from streams.connect import aiokafka_options, faust_credentials, kafka_python_options
from streams.metrics import Metrics
from streams.settings import Settings
from tests.reliability.harness import Force, pipeline_env, prepare
from tests.streams.live import WorkerProcess


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A CA, and a client certificate it signed whose key is locked by a password."""
    d = tmp_path_factory.mktemp("tls")

    def openssl(*args: str) -> None:
        done = subprocess.run(["openssl", *args], cwd=d, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out",
            "ca.pem", "-days", "2", "-subj", "/CN=accesswatch test CA")
    openssl("req", "-newkey", "rsa:2048", "-passout", "pass:key-Pa55", "-keyout",
            "client.key", "-out", "client.csr", "-subj", "/CN=accesswatch-worker")
    openssl("x509", "-req", "-in", "client.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "client.pem", "-days", "2")
    return {"ca": d / "ca.pem", "cert": d / "client.pem", "key": d / "client.key"}


def scram_tls(certs: dict[str, Path], **extra: object) -> Settings:
    return Settings(_env_file=None, bootstrap_servers="kafka1:9093,kafka2:9093",  # type: ignore[call-arg]
                    security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512",
                    sasl_username="accesswatch", sasl_password=SecretStr("s3cret-Pa55"),
                    ssl_cafile=certs["ca"], ssl_certfile=certs["cert"], ssl_keyfile=certs["key"],
                    ssl_password=SecretStr("key-Pa55"), **extra)


def test_kafka_python_clients_get_tls_and_scram(certs: dict[str, Path]) -> None:
    opts = kafka_python_options(scram_tls(certs))
    assert opts["bootstrap_servers"] == ["kafka1:9093", "kafka2:9093"]
    assert opts["security_protocol"] == "SASL_SSL"
    assert opts["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (opts["sasl_plain_username"], opts["sasl_plain_password"]) == (
        "accesswatch", "s3cret-Pa55")
    assert (opts["ssl_cafile"], opts["ssl_certfile"], opts["ssl_keyfile"]) == (
        str(certs["ca"]), str(certs["cert"]), str(certs["key"]))
    assert opts["ssl_password"] == "key-Pa55"
    from kafka import KafkaAdminClient

    # kafka-python accepts every option by that name (a typo would raise here).
    unknown = set(opts) - set(KafkaAdminClient.DEFAULT_CONFIG)
    assert not unknown, unknown


def check_context(ctx: ssl.SSLContext) -> None:
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    assert ctx.get_ca_certs()[0]["subject"] == ((("commonName", "accesswatch test CA"),),)


def test_aiokafka_clients_get_a_verifying_context_with_the_client_certificate(
        certs: dict[str, Path]) -> None:
    opts = aiokafka_options(scram_tls(certs))
    assert opts["security_protocol"] == "SASL_SSL"
    assert opts["sasl_mechanism"] == "SCRAM-SHA-512"
    assert opts["sasl_plain_password"] == "s3cret-Pa55"
    check_context(opts["ssl_context"])
    with pytest.raises(ssl.SSLError):  # the key's password was needed and was used
        ssl.create_default_context().load_cert_chain(str(certs["cert"]), str(certs["key"]),
                                                     "wrong")


def test_the_worker_app_gets_them_through_faust(certs: dict[str, Path]) -> None:
    from streams.app import Pipeline

    s = scram_tls(certs, instance_id="worker-7", session_timeout=12.0, commit_interval=1.5)
    p = Pipeline(s, load_rules(), Metrics(CollectorRegistry()), {})
    conf = p.app.conf
    auth = credentials_to_aiokafka_auth(conf.broker_credentials, conf.ssl_context)
    assert auth["security_protocol"] == "SASL_SSL"
    assert auth["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (auth["sasl_plain_username"], auth["sasl_plain_password"]) == (
        "accesswatch", "s3cret-Pa55")
    check_context(auth["ssl_context"])
    assert [str(u) for u in conf.broker] == ["kafka://kafka1:9093", "kafka://kafka2:9093"]
    assert conf.consumer_group_instance_id == "worker-7"
    assert (conf.broker_session_timeout, conf.broker_commit_interval) == (12.0, 1.5)


def test_tls_alone_and_plaintext_map_too(certs: dict[str, Path]) -> None:
    tls = Settings(_env_file=None, security_protocol="SSL",  # type: ignore[call-arg]
                   ssl_cafile=certs["ca"])
    assert kafka_python_options(tls)["security_protocol"] == "SSL"
    from streams.app import Pipeline

    conf = Pipeline(tls, load_rules(), Metrics(CollectorRegistry()), {}).app.conf
    auth = credentials_to_aiokafka_auth(conf.broker_credentials, conf.ssl_context)
    assert auth["security_protocol"] == "SSL"
    check_context(auth["ssl_context"])
    plain = Settings(_env_file=None)  # type: ignore[call-arg]
    assert faust_credentials(plain) is None
    assert "ssl_context" not in aiokafka_options(plain)


def get(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


@pytest.mark.broker
def test_nothing_is_served_over_http_but_metrics_and_health(broker: str, force: Force,
                                                            tmp_path: Path) -> None:
    env = pipeline_env(broker, tmp_path)
    prepare(env, force, tmp_path)
    w = WorkerProcess(env, tmp_path, "http-worker")
    try:
        w.wait_ready()
        assert get(w.metrics_port, "/metrics") == 200
        assert get(w.metrics_port, "/healthz") == 200
        for path in ("/", "/metrics/../admin", "/debug", "/state", "/tables"):
            assert get(w.metrics_port, path) == 404, path
        # Faust's own web server (tables with per-user state, router, stats, graph) is not
        # started at all: nothing listens on its port.
        with pytest.raises(urllib.error.URLError):
            get(w.web_port, "/")
        with pytest.raises(urllib.error.URLError):
            get(w.web_port, "/table/user-state/")
    finally:
        w.stop()
