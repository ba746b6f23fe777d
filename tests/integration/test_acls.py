"""ACLs administered by stock admin clients (kafka-python, confluent-kafka) change what a
principal may do, as stock clients see it: the *_AUTHORIZATION_FAILED errors, Metadata hiding
topics, SECURITY_DISABLED without an authorizer, and ACLs surviving a restart.

On PLAINTEXT every client is User:ANONYMOUS: those tests run with
``allow.everyone.if.no.acl.found`` and guard resources with ACLs for another user. The SASL
tests log in as the super user admin and as alice (skipped while SASL PLAIN cannot log in).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError as CKafkaError
from confluent_kafka import KafkaException
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

from kafkacompat.testing import BrokerThread, dev_config, running_broker

STANDARD = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
ANONYMOUS = "User:ANONYMOUS"
OPEN = {"authorizer.class.name": STANDARD, "allow.everyone.if.no.acl.found": True}
TIMEOUT = 20.0


def kp_acl(
    resource: ResourceType,
    name: str,
    operation: ACLOperation,
    principal: str = "User:bob",
    permission: ACLPermissionType = ACLPermissionType.ALLOW,
    pattern: ACLResourcePatternType = ACLResourcePatternType.LITERAL,
) -> ACL:
    return ACL(principal, "*", operation, permission, ResourcePattern(resource, name, pattern))


def everything() -> ACLFilter:
    return ACLFilter(
        None,
        None,
        ACLOperation.ANY,
        ACLPermissionType.ANY,
        ResourcePatternFilter(ResourceType.ANY, None, ACLResourcePatternType.ANY),
    )


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[BrokerThread]:
    with running_broker(dev_config(tmp_path, **OPEN)) as running:
        yield running


@pytest.fixture
def kadmin(broker: BrokerThread) -> Iterator[Any]:
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=10_000)
    try:
        yield admin
    finally:
        admin.close()


def cadmin(bootstrap: str, **extra: str) -> CAdmin:
    return CAdmin({"bootstrap.servers": bootstrap, **extra})


def produce_one(bootstrap: str, topic: str, **extra: Any) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, max_block_ms=5_000, **extra)
    try:
        producer.send(topic, b"v").get(timeout=TIMEOUT)
    finally:
        producer.close(timeout=5)


def test_without_authorizer_acl_requests_are_security_disabled(tmp_path: Path) -> None:
    with running_broker(dev_config(tmp_path)) as broker:
        admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
        try:
            with pytest.raises(kerrors.SecurityDisabledError):
                admin.describe_acls(everything())
            result = admin.create_acls([kp_acl(ResourceType.TOPIC, "t", ACLOperation.READ)])
            assert result["failed"] == [kerrors.SecurityDisabledError]
        finally:
            admin.close()
        confluent = cadmin(broker.bootstrap)
        futures = confluent.delete_acls(
            [
                AclBindingFilter(
                    CResourceType.ANY,
                    None,
                    ResourcePatternType.ANY,
                    None,
                    None,
                    AclOperation.ANY,
                    AclPermissionType.ANY,
                )
            ]
        )
        with pytest.raises(KafkaException) as raised:
            next(iter(futures.values())).result(timeout=TIMEOUT)
        assert raised.value.args[0].code() == CKafkaError.SECURITY_DISABLED


def test_two_admin_clients_guard_a_topic(broker: BrokerThread, kadmin: Any) -> None:
    kadmin.create_topics([NewTopic("guarded", 1, 1), NewTopic("open", 1, 1)])
    produce_one(broker.bootstrap, "open")
    # An ACL for bob on the topic: ANONYMOUS may no longer do anything with it.
    created = kadmin.create_acls([kp_acl(ResourceType.TOPIC, "guarded", ACLOperation.ALL)])
    assert not created["failed"], created
    with pytest.raises(kerrors.TopicAuthorizationFailedError):
        produce_one(broker.bootstrap, "guarded")
    # Metadata of every topic leaves it out; asked for by name it is refused.
    assert "guarded" not in kadmin.list_topics()
    assert "open" in kadmin.list_topics()
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap)
    try:
        assert "guarded" not in consumer.topics()
    finally:
        consumer.close()
    # confluent-kafka sees and deletes what kafka-python created.
    admin = cadmin(broker.bootstrap)
    described = admin.describe_acls(
        AclBindingFilter(
            CResourceType.TOPIC,
            "guarded",
            ResourcePatternType.MATCH,
            None,
            None,
            AclOperation.ANY,
            AclPermissionType.ANY,
        )
    ).result(timeout=TIMEOUT)
    assert [(b.principal, b.operation) for b in described] == [("User:bob", AclOperation.ALL)]
    deleted = admin.delete_acls(
        [
            AclBindingFilter(
                CResourceType.TOPIC,
                "guarded",
                ResourcePatternType.LITERAL,
                None,
                None,
                AclOperation.ANY,
                AclPermissionType.ANY,
            )
        ]
    )
    assert len(next(iter(deleted.values())).result(timeout=TIMEOUT)) == 1
    produce_one(broker.bootstrap, "guarded")
    assert "guarded" in kadmin.list_topics()


def test_confluent_creates_kafka_python_deletes(broker: BrokerThread, kadmin: Any) -> None:
    admin = cadmin(broker.bootstrap)
    binding = AclBinding(
        CResourceType.TOPIC,
        "pay",
        ResourcePatternType.PREFIXED,
        ANONYMOUS,
        "*",
        AclOperation.WRITE,
        AclPermissionType.DENY,
    )
    next(iter(admin.create_acls([binding]).values())).result(timeout=TIMEOUT)
    kadmin.create_topics([NewTopic("payments", 1, 1)])
    with pytest.raises(kerrors.TopicAuthorizationFailedError):
        produce_one(broker.bootstrap, "payments")
    acls, error = kadmin.describe_acls(everything())
    assert error is kerrors.NoError
    assert [(a.principal, a.resource_pattern.resource_name) for a in acls] == [(ANONYMOUS, "pay")]
    results = kadmin.delete_acls([everything()])
    assert len(results[0][1]) == 1 and results[0][2] is kerrors.NoError
    produce_one(broker.bootstrap, "payments")


def test_invalid_bindings_are_invalid_request(broker: BrokerThread, kadmin: Any) -> None:
    admin = cadmin(broker.bootstrap)
    bad = AclBinding(
        CResourceType.BROKER,
        "not-the-cluster",
        ResourcePatternType.LITERAL,
        ANONYMOUS,
        "*",
        AclOperation.ALTER,
        AclPermissionType.ALLOW,
    )
    with pytest.raises(KafkaException) as raised:
        next(iter(admin.create_acls([bad]).values())).result(timeout=TIMEOUT)
    assert raised.value.args[0].code() == CKafkaError.INVALID_REQUEST
    result = kadmin.create_acls([kp_acl(ResourceType.TOPIC, "", ACLOperation.READ)])
    assert result["failed"] == [kerrors.InvalidRequestError]


def test_group_authorization_failed(broker: BrokerThread, kadmin: Any) -> None:
    kadmin.create_topics([NewTopic("events", 1, 1)])
    produce_one(broker.bootstrap, "events")
    kadmin.create_acls([kp_acl(ResourceType.GROUP, "guarded-group", ACLOperation.READ)])
    with pytest.raises(kerrors.GroupAuthorizationFailedError):
        kadmin.list_group_offsets("guarded-group")
    consumer = KafkaConsumer(
        "events",
        bootstrap_servers=broker.bootstrap,
        group_id="guarded-group",
        auto_offset_reset="earliest",
        consumer_timeout_ms=3_000,
    )
    try:
        with pytest.raises(kerrors.GroupAuthorizationFailedError):
            list(consumer)
    finally:
        consumer.close(autocommit=False)
    # Another group is not guarded: its consumer reads.
    consumer = KafkaConsumer(
        "events",
        bootstrap_servers=broker.bootstrap,
        group_id="free-group",
        auto_offset_reset="earliest",
        consumer_timeout_ms=5_000,
    )
    try:
        assert [m.value for m in consumer][:1] == [b"v"]
    finally:
        consumer.close()


def test_transactional_id_authorization_failed(broker: BrokerThread, kadmin: Any) -> None:
    kadmin.create_acls([kp_acl(ResourceType.TRANSACTIONAL_ID, "tx-guarded", ACLOperation.WRITE)])
    producer = KafkaProducer(
        bootstrap_servers=broker.bootstrap, transactional_id="tx-guarded", max_block_ms=5_000
    )
    try:
        with pytest.raises(kerrors.TransactionalIdAuthorizationFailedError):
            producer.init_transactions()
    finally:
        producer.close(timeout=1)
    from confluent_kafka import Producer

    confluent = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": "tx-guarded"})
    with pytest.raises(KafkaException) as raised:
        confluent.init_transactions(10)
    assert raised.value.args[0].code() == CKafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED


def test_cluster_authorization_failed(broker: BrokerThread, kadmin: Any) -> None:
    deny = kp_acl(
        ResourceType.CLUSTER, "kafka-cluster", ACLOperation.ALTER, ANONYMOUS, ACLPermissionType.DENY
    )
    assert not kadmin.create_acls([deny])["failed"]
    # Without ALTER on the cluster no more ACLs can be created or deleted.
    result = kadmin.create_acls([kp_acl(ResourceType.TOPIC, "t", ACLOperation.READ)])
    assert result["failed"] == [kerrors.ClusterAuthorizationFailedError]
    admin = cadmin(broker.bootstrap)
    futures = admin.delete_acls(
        [
            AclBindingFilter(
                CResourceType.ANY,
                None,
                ResourcePatternType.ANY,
                None,
                None,
                AclOperation.ANY,
                AclPermissionType.ANY,
            )
        ]
    )
    with pytest.raises(KafkaException) as raised:
        next(iter(futures.values())).result(timeout=TIMEOUT)
    assert raised.value.args[0].code() == CKafkaError.CLUSTER_AUTHORIZATION_FAILED


def test_idempotent_producer_needs_idempotent_write_or_topic_write(
    broker: BrokerThread, kadmin: Any
) -> None:
    kadmin.create_topics([NewTopic("idem", 1, 1)])
    # (ALL on the cluster keeps ACL administration allowed: DENY wins for IDEMPOTENT_WRITE.)
    created = kadmin.create_acls(
        [
            kp_acl(ResourceType.CLUSTER, "kafka-cluster", ACLOperation.ALL, ANONYMOUS),
            kp_acl(
                ResourceType.CLUSTER,
                "kafka-cluster",
                ACLOperation.IDEMPOTENT_WRITE,
                ANONYMOUS,
                ACLPermissionType.DENY,
            ),
            kp_acl(ResourceType.TOPIC, "*", ACLOperation.WRITE, ANONYMOUS, ACLPermissionType.DENY),
            kp_acl(ResourceType.TOPIC, "*", ACLOperation.DESCRIBE, ANONYMOUS),
        ]
    )
    assert not created["failed"]
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": broker.bootstrap, "enable.idempotence": True})
    producer.produce("idem", b"v")
    # librdkafka fails fatally with the broker's answer to InitProducerId.
    with pytest.raises(KafkaException) as raised:
        producer.flush(10)
    assert raised.value.args[0].code() == CKafkaError.CLUSTER_AUTHORIZATION_FAILED
    # kafka-python wraps the answer in a fatal error naming it.
    with pytest.raises(kerrors.KafkaError, match="ClusterAuthorizationFailedError"):
        produce_one(broker.bootstrap, "idem", enable_idempotence=True)
    # WRITE on one topic is enough (KIP-679).
    assert kadmin.delete_acls([everything()])[0][2] is kerrors.NoError
    kadmin.create_acls(
        [
            kp_acl(
                ResourceType.CLUSTER,
                "kafka-cluster",
                ACLOperation.IDEMPOTENT_WRITE,
                ANONYMOUS,
                ACLPermissionType.DENY,
            ),
            kp_acl(ResourceType.TOPIC, "idem", ACLOperation.WRITE, ANONYMOUS),
        ]
    )
    produce_one(broker.bootstrap, "idem", enable_idempotence=True)


def test_acls_survive_a_restart(tmp_path: Path) -> None:
    config = dev_config(tmp_path, **OPEN)
    with running_broker(config) as broker:
        admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
        try:
            admin.create_acls(
                [
                    kp_acl(ResourceType.TOPIC, "kept", ACLOperation.READ),
                    kp_acl(
                        ResourceType.GROUP,
                        "g",
                        ACLOperation.ALL,
                        pattern=ACLResourcePatternType.PREFIXED,
                    ),
                ]
            )
        finally:
            admin.close()
    with running_broker(config) as broker:
        admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
        try:
            acls, _error = admin.describe_acls(everything())
        finally:
            admin.close()
        assert sorted((a.resource_pattern.resource_name, a.operation) for a in acls) == [
            ("g", ACLOperation.ALL),
            ("kept", ACLOperation.READ),
        ]
        with pytest.raises(kerrors.TopicAuthorizationFailedError):
            produce_one(broker.bootstrap, "kept")
