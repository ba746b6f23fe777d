"""ACLs for real principals: admin (a super user) grants and revokes, with kafka-python's and
confluent-kafka's admin clients, what alice may do, and alice's own clients see each refusal as
they see it from Kafka. Principals come from client certificates (mTLS, subject mapped to the
CN) and from SASL PLAIN logins."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError as CKafkaError
from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    ResourcePatternType,
)
from confluent_kafka.admin import AdminClient as CAdmin
from confluent_kafka.admin import ResourceType as CResourceType
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka import errors as kerrors
from kafka.admin import (
    ACL,
    ACLFilter,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    NewTopic,
    ResourcePattern,
    ResourcePatternFilter,
    ResourceType,
)

from kafkacompat.config import Config
from kafkacompat.testing import BrokerThread, dev_config, running_broker

STANDARD = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
ALICE = "User:alice"
TIMEOUT = 20.0
PASSWORDS = {"admin": "admin-secret", "alice": "alice-secret"}


@dataclass(frozen=True)
class Secured:
    """A secured broker's config and how each user's clients log in to it."""

    config: Config
    listener: str
    kafka_python: Callable[[str], dict[str, Any]]
    librdkafka: Callable[[str], dict[str, str]]


def mutual_tls(directory: Path) -> Secured:
    """An SSL listener requiring client certificates; CN=<user> is the principal User:<user>."""
    import trustme

    ca = trustme.CA()
    ca_file = directory / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    server = directory / "server.pem"
    ca.issue_cert("localhost", "127.0.0.1").private_key_and_cert_chain_pem.write_to_path(
        str(server)
    )
    for user in PASSWORDS:
        issued = ca.issue_cert(f"{user}.example", common_name=user)
        issued.private_key_and_cert_chain_pem.write_to_path(str(directory / f"{user}.pem"))
        issued.private_key_pem.write_to_path(str(directory / f"{user}.key"))
        (directory / f"{user}.crt").write_bytes(b"".join(p.bytes() for p in issued.cert_chain_pems))
    settings: dict[str, str | bool | int] = {
        "listeners": "SSL://127.0.0.1:0",
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(server),
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(ca_file),
        "ssl.client.auth": "required",
        "ssl.principal.mapping.rules": "RULE:^CN=([^,]+).*$/$1/,DEFAULT",
        "authorizer.class.name": STANDARD,
        "super.users": "User:admin",
    }
    return Secured(
        dev_config(directory / "data", **settings),
        "SSL",
        lambda user: {
            "security_protocol": "SSL",
            "ssl_cafile": str(ca_file),
            "ssl_certfile": str(directory / f"{user}.pem"),
        },
        lambda user: {
            "security.protocol": "SSL",
            "ssl.ca.location": str(ca_file),
            "ssl.certificate.location": str(directory / f"{user}.crt"),
            "ssl.key.location": str(directory / f"{user}.key"),
        },
    )


def sasl_plain(directory: Path) -> Secured:
    """A SASL_PLAINTEXT listener with PLAIN users admin and alice."""
    users = " ".join(f'user_{u}="{p}"' for u, p in PASSWORDS.items())
    settings: dict[str, str | bool | int] = {
        "listeners": "SASL_PLAINTEXT://127.0.0.1:0",
        "sasl.enabled.mechanisms": "PLAIN",
        "listener.name.sasl_plaintext.plain.sasl.jaas.config": (
            "org.apache.kafka.common.security.plain.PlainLoginModule required "
            f'username="admin" password="admin-secret" {users};'
        ),
        "authorizer.class.name": STANDARD,
        "super.users": "User:admin",
    }
    return Secured(
        dev_config(directory / "data", **settings),
        "SASL_PLAINTEXT",
        lambda user: {
            "security_protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": "PLAIN",
            "sasl_plain_username": user,
            "sasl_plain_password": PASSWORDS[user],
        },
        lambda user: {
            "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanisms": "PLAIN",
            "sasl.username": user,
            "sasl.password": PASSWORDS[user],
        },
    )


@pytest.fixture(params=["mtls", "sasl-plain"])
def secured(request: pytest.FixtureRequest, tmp_path: Path) -> Secured:
    return mutual_tls(tmp_path) if request.param == "mtls" else sasl_plain(tmp_path)


class Session:
    """One running broker and the clients of its users."""

    def __init__(self, secured: Secured, broker: BrokerThread) -> None:
        self.secured = secured
        self.bootstrap = broker.bootstrap_for(secured.listener)

    def kp(self, user: str) -> dict[str, Any]:
        return {"bootstrap_servers": self.bootstrap, **self.secured.kafka_python(user)}

    def rd(self, user: str) -> dict[str, str]:
        return {"bootstrap.servers": self.bootstrap, **self.secured.librdkafka(user)}

    def admin(self, user: str) -> Any:
        return KafkaAdminClient(request_timeout_ms=10_000, **self.kp(user))

    def produce(self, user: str, topic: str, **extra: Any) -> None:
        producer = KafkaProducer(max_block_ms=5_000, **self.kp(user), **extra)
        try:
            producer.send(topic, b"v").get(timeout=TIMEOUT)
        finally:
            producer.close(timeout=5)

    def consume(self, user: str, topic: str, group: str) -> list[bytes]:
        consumer = KafkaConsumer(
            topic,
            group_id=group,
            auto_offset_reset="earliest",
            consumer_timeout_ms=5_000,
            **self.kp(user),
        )
        try:
            return [m.value for m in consumer][:1]
        finally:
            consumer.close(autocommit=False)


def started(secured: Secured) -> Any:
    """Start the broker and check that alice can log in."""
    context = running_broker(secured.config)
    broker = context.__enter__()
    session = Session(secured, broker)
    try:
        session.admin("alice").close()
    except BaseException:
        context.__exit__(None, None, None)
        raise
    return context, session


@pytest.fixture
def session(secured: Secured) -> Iterator[Session]:
    context, running = started(secured)
    try:
        yield running
    finally:
        context.__exit__(None, None, None)


def alice_acl(resource: ResourceType, name: str, operation: ACLOperation) -> ACL:
    pattern = ResourcePattern(resource, name, ACLResourcePatternType.LITERAL)
    return ACL(ALICE, "*", operation, ACLPermissionType.ALLOW, pattern)


def alice_binding(resource: CResourceType, name: str, operation: AclOperation) -> AclBinding:
    return AclBinding(
        resource, name, ResourcePatternType.LITERAL, ALICE, "*", operation, AclPermissionType.ALLOW
    )


def test_admin_grants_and_revokes_what_alice_may_do(session: Session) -> None:
    admin = session.admin("admin")
    confluent = CAdmin(session.rd("admin"))
    alice = session.admin("alice")
    try:
        admin.create_topics([NewTopic("orders", 1, 1), NewTopic("secret", 1, 1)])
        with pytest.raises(kerrors.TopicAuthorizationFailedError):
            session.produce("alice", "orders")
        assert alice.list_topics() == []
        # kafka-python grants WRITE: alice produces, and Metadata shows her that topic only.
        granted = admin.create_acls([alice_acl(ResourceType.TOPIC, "orders", ACLOperation.WRITE)])
        assert (len(granted["succeeded"]), granted["failed"]) == (1, [])
        session.produce("alice", "orders")
        assert alice.list_topics() == ["orders"]
        assert sorted(admin.list_topics()) == ["orders", "secret"]
        # Without ALTER on the cluster alice may not administer ACLs.
        refused = alice.create_acls([alice_acl(ResourceType.TOPIC, "x", ACLOperation.READ)])
        assert refused["failed"] == [kerrors.ClusterAuthorizationFailedError]
        # confluent-kafka grants READ on the topic: reading in a group needs the group too.
        read = alice_binding(CResourceType.TOPIC, "orders", AclOperation.READ)
        next(iter(confluent.create_acls([read]).values())).result(timeout=TIMEOUT)
        with pytest.raises(kerrors.GroupAuthorizationFailedError):
            session.consume("alice", "orders", "alice-group")
        group = alice_binding(CResourceType.GROUP, "alice-group", AclOperation.READ)
        next(iter(confluent.create_acls([group]).values())).result(timeout=TIMEOUT)
        assert session.consume("alice", "orders", "alice-group") == [b"v"]
        # confluent-kafka revokes WRITE: alice is refused again.
        revoke = AclBindingFilter(
            CResourceType.TOPIC,
            "orders",
            ResourcePatternType.ANY,
            ALICE,
            None,
            AclOperation.WRITE,
            AclPermissionType.ANY,
        )
        deleted = next(iter(confluent.delete_acls([revoke]).values())).result(timeout=TIMEOUT)
        assert [(b.name, b.operation) for b in deleted] == [("orders", AclOperation.WRITE)]
        with pytest.raises(kerrors.TopicAuthorizationFailedError):
            session.produce("alice", "orders", enable_idempotence=False)
        # With WRITE on no topic at all, an idempotent producer may not even get a producer id.
        with pytest.raises(kerrors.KafkaError, match="ClusterAuthorizationFailedError"):
            session.produce("alice", "orders", enable_idempotence=True)
        # confluent-kafka's admin client, as alice, sees the cluster refusal too (librdkafka
        # drops DescribeAcls' top-level error, so creating shows it).
        alice_confluent = CAdmin(session.rd("alice"))
        futures = alice_confluent.create_acls([read])
        with pytest.raises(KafkaException) as raised:
            next(iter(futures.values())).result(timeout=TIMEOUT)
        assert raised.value.args[0].code() == CKafkaError.CLUSTER_AUTHORIZATION_FAILED
    finally:
        alice.close()
        admin.close()


def test_alice_needs_write_on_her_transactional_id(session: Session) -> None:
    producer = KafkaProducer(transactional_id="alice-tx", max_block_ms=5_000, **session.kp("alice"))
    try:
        with pytest.raises(kerrors.TransactionalIdAuthorizationFailedError):
            producer.init_transactions()
    finally:
        producer.close(timeout=1)
    admin = session.admin("admin")
    try:
        admin.create_acls(
            [alice_acl(ResourceType.TRANSACTIONAL_ID, "alice-tx", ACLOperation.WRITE)]
        )
    finally:
        admin.close()
    Producer({**session.rd("alice"), "transactional.id": "alice-tx"}).init_transactions(10)
    denied = Producer({**session.rd("alice"), "transactional.id": "other-tx"})
    with pytest.raises(KafkaException) as raised:
        denied.init_transactions(10)
    assert raised.value.args[0].code() == CKafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED


def test_acls_survive_a_restart(secured: Secured) -> None:
    context, first = started(secured)
    try:
        admin = first.admin("admin")
        try:
            admin.create_topics([NewTopic("kept", 1, 1)])
            admin.create_acls([alice_acl(ResourceType.TOPIC, "kept", ACLOperation.WRITE)])
        finally:
            admin.close()
        first.produce("alice", "kept")
    finally:
        context.__exit__(None, None, None)
    context, second = started(secured)
    try:
        second.produce("alice", "kept")
        admin = second.admin("admin")
        try:
            everything = ACLFilter(
                None,
                None,
                ACLOperation.ANY,
                ACLPermissionType.ANY,
                ResourcePatternFilter(ResourceType.ANY, None, ACLResourcePatternType.ANY),
            )
            acls, error = admin.describe_acls(everything)
        finally:
            admin.close()
        assert error is kerrors.NoError
        assert [(a.principal, a.resource_pattern.resource_name, a.operation) for a in acls] == [
            (ALICE, "kept", ACLOperation.WRITE)
        ]
    finally:
        context.__exit__(None, None, None)
