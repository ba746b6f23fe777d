"""SASL over TLS as users deploy it: every stock client logs in with SCRAM-SHA-512 and with
PLAIN over SASL_SSL and reads back exactly what it wrote; the pytest plugin's secured broker;
and no secret in the broker's log, however a login goes."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from kafkacompat.testing import (
    BrokerProcess,
    BrokerSecurity,
    KafkaBroker,
    prepare_secured_data_dir,
)
from tests.integration.security_clients import ROUND_TRIPS, Security, TlsFiles, values

COUNT = 20
PASSWORDS = ("admin-secret", "alice-secret", "bob-secret")


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    base = tmp_path_factory.mktemp("sasl-ssl")
    security = BrokerSecurity(base / "tls", acls=False)
    with KafkaBroker(base / "data", security=security) as broker:
        yield broker


def client_security(broker: KafkaBroker, mechanism: str, user: str = "alice") -> Security:
    assert broker.security is not None
    return sasl_ssl(broker.security, mechanism, user)


def sasl_ssl(security: BrokerSecurity, mechanism: str, user: str = "alice") -> Security:
    """A client of the broker's SASL_SSL listener that trusts the broker's test CA."""
    return Security(
        "SASL_SSL",
        _trust_only(security.ca_file),
        mechanism=mechanism,
        username=user,
        password=security.users[user],
    )


def _trust_only(ca_file: Path) -> TlsFiles:
    """Client-side TLS files that name only the CA (no client certificate)."""
    return TlsFiles(ca_file, ca_file, ca_file, ca_file, ca_file, ca_file, ca_file)


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-512", "PLAIN"])
@pytest.mark.parametrize("client", sorted(ROUND_TRIPS))
def test_every_client_over_sasl_ssl(secured: KafkaBroker, client: str, mechanism: str) -> None:
    topic = f"sasl-ssl-{client}-{mechanism.lower()}"
    got = ROUND_TRIPS[client](secured.bootstrap, topic, client_security(secured, mechanism), COUNT)
    assert got == values(COUNT, client)


def test_scram_sha_256_over_sasl_ssl(secured: KafkaBroker) -> None:
    security = client_security(secured, "SCRAM-SHA-256", "bob")
    assert ROUND_TRIPS["confluent-kafka"](secured.bootstrap, "sha256", security, 5) == values(
        5, "confluent-kafka"
    )


def test_the_plugin_secured_broker_hands_out_working_settings(tmp_path: Path) -> None:
    from kafka import KafkaConsumer, KafkaProducer

    security = BrokerSecurity(tmp_path / "tls")
    with KafkaBroker(tmp_path / "data", security=security) as broker:
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap, **security.kafka_python())
        producer.send("plugin", b"as admin").get(timeout=20)
        producer.close()
        consumer = KafkaConsumer(
            "plugin",
            bootstrap_servers=broker.bootstrap,
            auto_offset_reset="earliest",
            consumer_timeout_ms=5000,
            **security.kafka_python(mechanism="PLAIN"),
        )
        assert [m.value for m in consumer] == [b"as admin"]
        consumer.close()


def test_no_secret_reaches_the_log(tmp_path: Path) -> None:
    """A subprocess broker at DEBUG: good and bad logins with every mechanism, then the log is
    scanned for every password."""
    security = BrokerSecurity(tmp_path / "tls", acls=False)
    data_dir = tmp_path / "data"
    prepare_secured_data_dir(data_dir, security)
    with BrokerProcess(data_dir, security.broker_settings(), log_level="DEBUG") as broker:
        for mechanism in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"):
            good = sasl_ssl(security, mechanism)
            assert ROUND_TRIPS["kafka-python"](broker.bootstrap, "scan", good, 1) == values(
                1, "kafka-python"
            )
            bad = replace(good, password="wrong-password-xyz")
            options = [a for k, v in bad.librdkafka().items() for a in ("-X", f"{k}={v}")]
            kcat = subprocess.run(
                ["kcat", "-b", broker.bootstrap, "-L", "-m", "5", *options],
                capture_output=True,
                timeout=30,
                check=False,
            )
            assert kcat.returncode != 0
        log = broker.log_path.read_text(errors="replace")
    for secret in (*PASSWORDS, "wrong-password-xyz"):
        assert secret not in log
    assert log.count("authentication failed") >= 3  # one line per failed login


def test_the_kafka_secure_broker_fixture(kafka_secure_broker: KafkaBroker) -> None:
    """The README's example: alice, with no ACLs yet, may not write; admin may."""
    from kafka import KafkaProducer
    from kafka.errors import TopicAuthorizationFailedError

    security = kafka_secure_broker.security
    assert security is not None
    assert security.ca_file.read_text().startswith("-----BEGIN CERTIFICATE-----")
    settings = security.kafka_python("alice", mechanism="SCRAM-SHA-512")
    producer = KafkaProducer(bootstrap_servers=kafka_secure_broker.bootstrap, **settings)
    with pytest.raises(TopicAuthorizationFailedError):
        producer.send("orders", b"x").get(timeout=10)
    producer.close()
    admin = KafkaProducer(
        bootstrap_servers=kafka_secure_broker.bootstrap, **security.kafka_python()
    )
    assert admin.send("orders", b"x").get(timeout=10).offset == 0
    admin.close()
