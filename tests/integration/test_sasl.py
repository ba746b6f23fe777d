"""SASL as real clients meet it on a SASL_PLAINTEXT listener: every refusal (wrong password,
unknown user, unsupported mechanism, a request before login, a login out of order) with the code
and message Kafka gives; SCRAM users made and removed by kafka-python's and confluent-kafka's
admin clients and by ``--add-scram``; KIP-368 re-authentication; the cluster-level refusals of
the SCRAM and client-quota admin APIs for a user who is not allowed."""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError as CKafkaError
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient as CAdmin
from confluent_kafka.admin import (
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.errors import KafkaTimeoutError

from kafkacompat.errors import ErrorCode
from kafkacompat.protocol.messages.alter_client_quotas_request import (
    AlterClientQuotasRequest,
    EntityData,
    EntryData,
    OpData,
)
from kafkacompat.protocol.messages.describe_client_quotas_request import (
    DescribeClientQuotasRequest,
)
from kafkacompat.protocol.messages.describe_user_scram_credentials_request import (
    DescribeUserScramCredentialsRequest,
    UserName,
)
from kafkacompat.protocol.messages.metadata_request import MetadataRequest
from kafkacompat.protocol.messages.sasl_authenticate_request import SaslAuthenticateRequest
from kafkacompat.protocol.messages.sasl_handshake_request import SaslHandshakeRequest
from kafkacompat.testing import (
    BrokerProcess,
    BrokerSecurity,
    create_scram_users,
    dev_config,
    running_broker,
)
from tests.integration.raw import RawClient

API_METADATA = 3
API_SASL_HANDSHAKE = 17
API_SASL_AUTHENTICATE = 36
API_DESCRIBE_CLIENT_QUOTAS = 48
API_ALTER_CLIENT_QUOTAS = 49
API_DESCRIBE_USER_SCRAM_CREDENTIALS = 50
LISTENER = "SASL_PLAINTEXT"
TIMEOUT = 20.0


def security(directory: Path, **options: Any) -> BrokerSecurity:
    return BrokerSecurity(
        directory / "tls",
        protocol=LISTENER,
        mechanisms=("PLAIN", "SCRAM-SHA-256"),
        **options,
    )


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[BrokerSecurity, str]]:
    """A broker with PLAIN and SCRAM-SHA-256 (not SCRAM-SHA-512), ACLs on, admin a super user;
    sessions live 1.5 s before they must re-authenticate."""
    base = tmp_path_factory.mktemp("sasl")
    secure = security(base)
    create_scram_users(base / "data", secure.users, ["SCRAM-SHA-256"])
    settings = secure.broker_settings() | {"connections.max.reauth.ms": 1500}
    with running_broker(dev_config(base / "data", **settings)) as broker:
        yield secure, broker.bootstrap_for(LISTENER)


def port_of(bootstrap: str) -> int:
    return int(bootstrap.rsplit(":", 1)[1])


def plain_token(user: str, password: str) -> bytes:
    return f"\0{user}\0{password}".encode()


def logged_in(bootstrap: str, user: str, password: str) -> tuple[RawClient, Any]:
    """A raw client that logged in with PLAIN (SaslHandshake v1, SaslAuthenticate v2)."""
    client = RawClient(port_of(bootstrap))
    handshake = client.call(API_SASL_HANDSHAKE, 1, SaslHandshakeRequest("PLAIN"))
    assert handshake.error_code == 0
    answer = client.call(
        API_SASL_AUTHENTICATE, 2, SaslAuthenticateRequest(plain_token(user, password))
    )
    return client, answer


def closed(client: RawClient) -> bool:
    try:
        return client.sock.recv(1) == b""
    except ConnectionResetError:
        return True


def kafka_python_errors(caplog: pytest.LogCaptureFixture, settings: dict[str, Any]) -> set[str]:
    """The connection errors kafka-python logs while it fails to bootstrap with ``settings``."""
    caplog.clear()
    producer = KafkaProducer(max_block_ms=1500, api_version=(2, 8), **settings)
    try:
        with caplog.at_level(logging.ERROR, logger="kafka"), pytest.raises(KafkaTimeoutError):
            producer.partitions_for("t")
    finally:
        producer.close(timeout=5)
    return {r.getMessage() for r in caplog.records if r.name.startswith("kafka")}


def confluent_errors(settings: dict[str, str]) -> list[Any]:
    errors: list[Any] = []
    producer = Producer({**settings, "error_cb": errors.append, "log_level": 0})
    deadline = time.monotonic() + 10
    while not any(e.code() == CKafkaError._AUTHENTICATION for e in errors):
        assert time.monotonic() < deadline, f"no authentication error: {errors}"
        producer.poll(0.1)
    return [e for e in errors if e.code() == CKafkaError._AUTHENTICATION]


def test_wrong_password_and_unknown_user(
    secured: tuple[BrokerSecurity, str], caplog: pytest.LogCaptureFixture
) -> None:
    secure, bootstrap = secured
    for mechanism, message in (
        ("PLAIN", "Authentication failed: Invalid username or password"),
        (
            "SCRAM-SHA-256",
            "Authentication failed during authentication due to invalid credentials with SASL "
            "mechanism SCRAM-SHA-256",
        ),
    ):
        for user in ("alice", "nobody"):
            rd = {
                "bootstrap.servers": bootstrap,
                **secure.librdkafka("alice", mechanism),
                "sasl.username": user,
                "sasl.password": "wrong",
            }
            (error,) = confluent_errors(rd)[:1]
            assert f"SASL authentication error: {message} " in error.str()
            kp = {
                "bootstrap_servers": bootstrap,
                **secure.kafka_python("alice", mechanism),
                "sasl_plain_username": user,
                "sasl_plain_password": "wrong",
            }
            logged = kafka_python_errors(caplog, kp)
            assert any(
                "[Error 58] SaslAuthenticationFailedError" in line and message in line
                for line in logged
            ), logged


def test_unsupported_mechanism_names_what_is_enabled(
    secured: tuple[BrokerSecurity, str], caplog: pytest.LogCaptureFixture
) -> None:
    secure, bootstrap = secured
    rd = {"bootstrap.servers": bootstrap, **secure.librdkafka("alice", "SCRAM-SHA-512")}
    (error,) = confluent_errors(rd)[:1]
    assert (
        "Unsupported SASL mechanism: broker's supported mechanisms: PLAIN,SCRAM-SHA-256"
        in error.str()
    )
    kp = {"bootstrap_servers": bootstrap, **secure.kafka_python("alice", "SCRAM-SHA-512")}
    logged = kafka_python_errors(caplog, kp)
    assert any("SaslHandshake failed: UnsupportedSaslMechanismError" in m for m in logged)
    with RawClient(port_of(bootstrap)) as client:
        handshake = client.call(API_SASL_HANDSHAKE, 1, SaslHandshakeRequest("GSSAPI"))
        assert handshake.error_code == ErrorCode.UNSUPPORTED_SASL_MECHANISM
        assert handshake.mechanisms == ["PLAIN", "SCRAM-SHA-256"]


def test_requests_out_of_order_close_the_connection(secured: tuple[BrokerSecurity, str]) -> None:
    _secure, bootstrap = secured
    port = port_of(bootstrap)
    with RawClient(port) as client:  # Metadata before any login
        client.request(API_METADATA, 1, b"\xff\xff\xff\xff")
        assert closed(client)
    with RawClient(port) as client:  # SaslAuthenticate before SaslHandshake
        client.request(API_SASL_AUTHENTICATE, 1, b"\x00\x00\x00\x00")
        assert closed(client)
    with RawClient(port) as client:  # a second SaslHandshake
        assert client.call(API_SASL_HANDSHAKE, 1, SaslHandshakeRequest("PLAIN")).error_code == 0
        again = client.call(API_SASL_HANDSHAKE, 1, SaslHandshakeRequest("PLAIN"))
        assert again.error_code == ErrorCode.ILLEGAL_SASL_STATE
        assert closed(client)


def test_a_failed_login_is_answered_then_the_connection_closes(
    secured: tuple[BrokerSecurity, str],
) -> None:
    secure, bootstrap = secured
    client, answer = logged_in(bootstrap, "alice", "wrong")
    with client:
        assert answer.error_code == ErrorCode.SASL_AUTHENTICATION_FAILED
        assert answer.error_message == "Authentication failed: Invalid username or password"
        assert closed(client)
    client, answer = logged_in(bootstrap, "alice", secure.users["alice"])
    with client:
        assert answer.error_code == 0
        assert answer.session_lifetime_ms == 1500


def test_raw_v0_tokens_after_handshake_v0(secured: tuple[BrokerSecurity, str]) -> None:
    secure, bootstrap = secured
    with RawClient(port_of(bootstrap)) as client:
        assert client.call(API_SASL_HANDSHAKE, 0, SaslHandshakeRequest("PLAIN")).error_code == 0
        client.send_frame(plain_token("alice", secure.users["alice"]))
        assert client.read_frame() == b""  # PLAIN's empty final token
        metadata = client.call(API_METADATA, 1, MetadataRequest(topics=[]))
        assert [b.node_id for b in metadata.brokers] == [1]


def test_a_session_past_its_lifetime_is_closed_unless_it_reauthenticates(
    secured: tuple[BrokerSecurity, str],
) -> None:
    secure, bootstrap = secured
    stale, answer = logged_in(bootstrap, "alice", secure.users["alice"])
    fresh, _ = logged_in(bootstrap, "alice", secure.users["alice"])
    with stale, fresh:
        assert answer.session_lifetime_ms == 1500
        for _ in range(2):
            time.sleep(1.0)
            assert fresh.call(API_SASL_HANDSHAKE, 1, SaslHandshakeRequest("PLAIN")).error_code == 0
            again = fresh.call(
                API_SASL_AUTHENTICATE,
                2,
                SaslAuthenticateRequest(plain_token("alice", secure.users["alice"])),
            )
            assert again.error_code == 0
        # 2 s after its login, the stale session's next request closes its connection.
        stale.request(API_METADATA, 1, b"\x00\x00\x00\x00")
        assert closed(stale)
        metadata = fresh.call(API_METADATA, 1, MetadataRequest(topics=[]))
        assert [b.node_id for b in metadata.brokers] == [1]


def test_librdkafka_reauthenticates_and_keeps_producing(
    secured: tuple[BrokerSecurity, str],
) -> None:
    """Sessions live 1.5 s: a producer sending for 4 s must re-authenticate (KIP-368) on its
    connection to keep it, and every message is delivered."""
    secure, bootstrap = secured
    settings = {"bootstrap.servers": bootstrap, **secure.librdkafka("admin", "SCRAM-SHA-256")}
    producer = Producer({**settings, "linger.ms": 0})
    delivered: list[Any] = []
    for index in range(40):
        producer.produce(
            "reauth", f"m{index}".encode(), on_delivery=lambda e, m: delivered.append(e)
        )
        producer.poll(0.1)
    assert producer.flush(TIMEOUT) == 0
    assert delivered == [None] * 40
    consumer = KafkaConsumer(
        "reauth",
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        consumer_timeout_ms=3000,
        **secure.kafka_python("admin", "PLAIN"),
    )
    assert [m.value for m in consumer] == [f"m{i}".encode() for i in range(40)]
    consumer.close()


def test_scram_users_made_and_removed_by_admin_clients(
    secured: tuple[BrokerSecurity, str], caplog: pytest.LogCaptureFixture
) -> None:
    """confluent-kafka upserts carol, kafka-python describes her, carol logs in with SCRAM and is
    refused after her credential is deleted; alice (no ACLs) may neither describe nor alter."""
    secure, bootstrap = secured
    admin = CAdmin({"bootstrap.servers": bootstrap, **secure.librdkafka("admin", "PLAIN")})
    upsert = UserScramCredentialUpsertion(
        "carol", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 8192), b"carol-pw"
    )
    for future in admin.alter_user_scram_credentials([upsert]).values():
        assert future.result(TIMEOUT) is None
    kadmin = KafkaAdminClient(bootstrap_servers=bootstrap, **secure.kafka_python("admin", "PLAIN"))
    described = kadmin.describe_user_scram_credentials(["carol"])
    infos = described["carol"]["credential_infos"]
    assert described["carol"]["error"] is None
    assert [(info["mechanism"].name, info["iterations"]) for info in infos] == [
        ("SCRAM_SHA_256", 8192)
    ]
    carol = {
        "bootstrap_servers": bootstrap,
        "security_protocol": LISTENER,
        "sasl_mechanism": "SCRAM-SHA-256",
        "sasl_plain_username": "carol",
        "sasl_plain_password": "carol-pw",
    }
    KafkaAdminClient(**carol).close()
    unknown = admin.describe_user_scram_credentials(["dave"])["dave"]
    with pytest.raises(Exception) as refused:
        unknown.result(TIMEOUT)
    assert refused.value.args[0].code() == CKafkaError.RESOURCE_NOT_FOUND
    deletion = UserScramCredentialDeletion("carol", ScramMechanism.SCRAM_SHA_256)
    for future in admin.alter_user_scram_credentials([deletion]).values():
        assert future.result(TIMEOUT) is None
    logged = kafka_python_errors(caplog, carol)
    assert any("[Error 58] SaslAuthenticationFailedError" in line for line in logged), logged
    alice = CAdmin({"bootstrap.servers": bootstrap, **secure.librdkafka("alice", "PLAIN")})
    for future in alice.alter_user_scram_credentials([upsert]).values():
        with pytest.raises(Exception) as denied:
            future.result(TIMEOUT)
        assert denied.value.args[0].code() == CKafkaError.CLUSTER_AUTHORIZATION_FAILED
    kadmin.close()


def test_cluster_level_admin_apis_refuse_a_user_without_acls(
    secured: tuple[BrokerSecurity, str],
) -> None:
    secure, bootstrap = secured
    client, answer = logged_in(bootstrap, "alice", secure.users["alice"])
    with client:
        assert answer.error_code == 0
        quotas = client.call(API_DESCRIBE_CLIENT_QUOTAS, 1, DescribeClientQuotasRequest([]))
        assert quotas.error_code == ErrorCode.CLUSTER_AUTHORIZATION_FAILED
        assert quotas.entries is None
        entry = EntryData([EntityData("user", "alice")], [OpData("producer_byte_rate", 1.0)])
        altered = client.call(API_ALTER_CLIENT_QUOTAS, 1, AlterClientQuotasRequest([entry]))
        assert [e.error_code for e in altered.entries] == [ErrorCode.CLUSTER_AUTHORIZATION_FAILED]
        described = client.call(
            API_DESCRIBE_USER_SCRAM_CREDENTIALS,
            0,
            DescribeUserScramCredentialsRequest([UserName("alice")]),
        )
        assert described.error_code == ErrorCode.CLUSTER_AUTHORIZATION_FAILED
    admin, _ = logged_in(bootstrap, "admin", secure.users["admin"])
    with admin:
        quotas = admin.call(API_DESCRIBE_CLIENT_QUOTAS, 1, DescribeClientQuotasRequest([]))
        assert quotas.error_code == 0
        assert quotas.entries == []


def test_add_scram_on_the_command_line(tmp_path: Path) -> None:
    secure = security(tmp_path, acls=False)
    data_dir = tmp_path / "data"
    process = BrokerProcess(data_dir, secure.broker_settings())
    process.command = _with_add_scram(process.command)  # type: ignore[method-assign]
    with process as broker:
        settings = {
            "bootstrap_servers": broker.bootstrap,
            "security_protocol": LISTENER,
            "sasl_mechanism": "SCRAM-SHA-256",
            "sasl_plain_username": "erin",
            "sasl_plain_password": "erin-pw",
        }
        KafkaAdminClient(**settings).close()
        log = broker.log_path.read_text()
    assert "erin-pw" not in log


def _with_add_scram(command: Any) -> Any:
    def with_user(port: int) -> list[str]:
        return [*command(port), "--add-scram", "SCRAM-SHA-256=[name=erin,password=erin-pw]"]

    return with_user


def test_a_sasl_listener_without_a_usable_mechanism_does_not_start(tmp_path: Path) -> None:
    """Kafka's default sasl.enabled.mechanisms is GSSAPI, which this broker does not serve."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "kafkacompat",
            "serve",
            "--data-dir",
            str(tmp_path / "data"),
            "-o",
            "listeners=SASL_PLAINTEXT://127.0.0.1:0",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode != 0
    assert (
        "SASL mechanism GSSAPI enabled on listener SASL_PLAINTEXT is not supported" in result.stderr
    )
    assert "Traceback" not in result.stderr
