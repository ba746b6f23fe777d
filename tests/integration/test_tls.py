"""TLS listeners: every stock client over SSL, mTLS principals, the endpoints each listener
advertises, and refusals (bad handshakes, bad settings) answered with one log line."""

from __future__ import annotations

import logging
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kafkacompat.broker.context import RequestContext
from kafkacompat.config import ConfigError
from kafkacompat.testing import BrokerThread, dev_config, running_broker
from tests.integration.security_clients import ROUND_TRIPS, Security, TlsFiles, values

COUNT = 20


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return TlsFiles.make(tmp_path_factory.mktemp("tls"))


def listeners(**extra: str) -> dict[str, str]:
    return {"listeners": "PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0", **extra}


@pytest.fixture(scope="module")
def tls_broker(
    tmp_path_factory: pytest.TempPathFactory, tls_files: TlsFiles
) -> Iterator[BrokerThread]:
    config = dev_config(
        tmp_path_factory.mktemp("data"), **listeners(**tls_files.broker_settings("requested"))
    )
    with running_broker(config) as broker:
        yield broker


def record_principals(broker: BrokerThread) -> list[tuple[str, str, str]]:
    """(listener, security protocol, principal) of every request the broker answers from now."""
    seen: list[tuple[str, str, str]] = []

    def observe(context: RequestContext, request: Any, response: Any, elapsed: float) -> None:
        s = context.session
        seen.append((s.listener_name, s.security_protocol, s.principal))

    broker.running.broker.pipeline.observe_hooks.append(observe)
    return seen


@pytest.mark.parametrize("client", sorted(ROUND_TRIPS))
def test_every_client_produces_and_consumes_over_tls(
    tls_broker: BrokerThread, tls_files: TlsFiles, client: str
) -> None:
    topic = f"tls-{client}"
    got = ROUND_TRIPS[client](
        tls_broker.bootstrap_for("SSL"), topic, Security("SSL", tls_files), COUNT
    )
    assert got == values(COUNT, client)


@pytest.mark.parametrize("client", ["kafka-python", "confluent-kafka"])
def test_mutual_tls_principal_is_the_certificate_subject(
    tmp_path: Path, tls_files: TlsFiles, client: str
) -> None:
    config = dev_config(tmp_path, **listeners(**tls_files.broker_settings("required")))
    with running_broker(config) as broker:
        seen = record_principals(broker)
        security = Security("SSL", tls_files, client_certificate=True)
        got = ROUND_TRIPS[client](broker.bootstrap_for("SSL"), f"mtls-{client}", security, COUNT)
        assert got == values(COUNT, client)
    assert seen
    assert set(seen) == {("SSL", "SSL", "User:CN=alice,OU=Dev,O=Example")}


def test_principal_mapping_rules_shorten_the_subject(tmp_path: Path, tls_files: TlsFiles) -> None:
    settings = listeners(
        **tls_files.broker_settings("required"),
        **{"ssl.principal.mapping.rules": "RULE:^CN=(.*?),OU=.*,O=(.*)$/$1@$2/L,DEFAULT"},
    )
    with running_broker(dev_config(tmp_path, **settings)) as broker:
        seen = record_principals(broker)
        security = Security("SSL", tls_files, client_certificate=True)
        assert ROUND_TRIPS["kafka-python"](broker.bootstrap_for("SSL"), "mapped", security, 3) == (
            values(3, "kafka-python")
        )
    assert {principal for _l, _p, principal in seen} == {"User:alice@example"}


def test_without_a_client_certificate_the_principal_is_anonymous(
    tls_broker: BrokerThread, tls_files: TlsFiles
) -> None:
    seen = record_principals(tls_broker)
    got = ROUND_TRIPS["kafka-python"](
        tls_broker.bootstrap_for("SSL"), "anonymous-tls", Security("SSL", tls_files), 2
    )
    assert got == values(2, "kafka-python")
    assert {p for _l, _s, p in seen} == {"User:ANONYMOUS"}


def test_each_listener_advertises_its_own_endpoint(
    tls_broker: BrokerThread, tls_files: TlsFiles
) -> None:
    from kafka import KafkaAdminClient

    for name, security in (("PLAINTEXT", Security()), ("SSL", Security("SSL", tls_files))):
        admin = KafkaAdminClient(
            bootstrap_servers=tls_broker.bootstrap_for(name), **security.kafka_python()
        )
        try:
            brokers = admin.describe_cluster()["brokers"]
        finally:
            admin.close()
        host, port = tls_broker.bootstrap_for(name).rsplit(":", 1)
        assert [(b["host"], b["port"]) for b in brokers] == [(host, int(port))]


def test_required_client_certificate_refuses_a_client_without_one(
    tmp_path: Path, tls_files: TlsFiles, caplog: pytest.LogCaptureFixture
) -> None:
    config = dev_config(tmp_path, **listeners(**tls_files.broker_settings("required")))
    with running_broker(config) as broker, caplog.at_level(logging.INFO, "kafkacompat"):
        host, port = broker.bootstrap_for("SSL").rsplit(":", 1)
        context = ssl.create_default_context(cafile=str(tls_files.ca))
        refused = (ssl.SSLError, ConnectionResetError, BrokenPipeError)
        with (
            socket.create_connection((host, int(port)), timeout=5) as raw,
            pytest.raises(refused),
            context.wrap_socket(raw, server_hostname="localhost") as tls,
        ):
            tls.sendall(b"\x00\x00\x00\x01\x00")
            assert tls.recv(1) == b""
            raise ConnectionResetError("closed by the broker")
        # The broker keeps serving: a client with a certificate gets through.
        security = Security("SSL", tls_files, client_certificate=True)
        assert ROUND_TRIPS["kafka-python"](broker.bootstrap_for("SSL"), "after", security, 2) == (
            values(2, "kafka-python")
        )
    refusals = [r for r in caplog.records if "TLS handshake failed" in r.getMessage()]
    assert len(refusals) == 1
    assert refusals[0].exc_info is None


def test_plain_text_on_a_tls_port_is_closed_with_one_line(
    tls_broker: BrokerThread, caplog: pytest.LogCaptureFixture
) -> None:
    host, port = tls_broker.bootstrap_for("SSL").rsplit(":", 1)
    with caplog.at_level(logging.INFO, "kafkacompat"):
        with socket.create_connection((host, int(port)), timeout=5) as raw:
            # An ApiVersions v0 request in plain text where a TLS ClientHello belongs.
            raw.sendall(bytes.fromhex("0000000e00120000000000010004746573740000"))
            raw.settimeout(5)
            answer = raw.recv(1024)
        assert not answer.startswith(b"\x00\x00")  # no Kafka response: at most a TLS alert
        for _ in range(50):
            if any("TLS handshake failed" in r.getMessage() for r in caplog.records):
                break
            time.sleep(0.05)
    lines = [r for r in caplog.records if "TLS handshake failed" in r.getMessage()]
    assert len(lines) == 1 and lines[0].exc_info is None


def test_inline_pem_and_encrypted_key(tmp_path: Path, tls_files: TlsFiles) -> None:
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(tls_files.server_key.read_bytes(), password=None)
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"key-secret"),
    )
    settings = {
        "listeners": "SSL://127.0.0.1:0",
        "ssl.keystore.type": "PEM",
        "ssl.keystore.key": encrypted.decode(),
        "ssl.keystore.certificate.chain": tls_files.server_chain.read_text(),
        "ssl.key.password": "key-secret",
        "ssl.truststore.type": "PEM",
        "ssl.truststore.certificates": tls_files.ca.read_text(),
    }
    with running_broker(dev_config(tmp_path, **settings)) as broker:
        got = ROUND_TRIPS["kafka-python"](broker.bootstrap, "inline", Security("SSL", tls_files), 3)
    assert got == values(3, "kafka-python")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({}, "has no key"),
        ({"ssl.keystore.type": "JKS", "ssl.keystore.location": "/x.jks"}, "PEM key material only"),
        ({"ssl.keystore.type": "PEM", "ssl.keystore.location": "/nonexistent.pem"}, "cannot load"),
        ({"ssl.client.auth": "always"}, "ssl.client.auth must be"),
        ({"ssl.enabled.protocols": "SSLv3"}, "ssl.enabled.protocols"),
    ],
)
def test_bad_tls_settings_fail_at_start(
    tmp_path: Path, tls_files: TlsFiles, settings: dict[str, str], message: str
) -> None:
    base = tls_files.broker_settings() if "ssl.keystore.type" not in settings and settings else {}
    config = dev_config(tmp_path, **{"listeners": "SSL://127.0.0.1:0", **base, **settings})
    with pytest.raises(RuntimeError) as failed:
        BrokerThread(config).start()
    cause = failed.value.__cause__
    while isinstance(cause, BaseExceptionGroup):
        cause = cause.exceptions[0]
    assert isinstance(cause, ConfigError)
    assert message in str(cause)
