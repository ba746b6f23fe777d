"""Metadata: brokers, cluster id, controller and the topics asked for (or all of them)."""

from __future__ import annotations

import uuid

from kafkacompat.broker.context import RequestContext
from kafkacompat.broker.router import handles
from kafkacompat.broker.topics import TopicInfo, validate_topic_name
from kafkacompat.errors import ErrorCode, KafkaError
from kafkacompat.protocol.messages.metadata_request import MetadataRequest
from kafkacompat.protocol.messages.metadata_response import (
    MetadataResponse,
    MetadataResponseBroker,
    MetadataResponsePartition,
    MetadataResponseTopic,
)
from kafkacompat.protocol.primitives import ZERO_UUID

METADATA = 3
AUTHORIZED_OPERATIONS_OMITTED = -2147483648
# With no authorizer every operation is allowed: bits of Kafka's AclOperation codes.
TOPIC_OPERATIONS = sum(1 << op for op in (3, 4, 5, 6, 7, 8, 10, 11))
CLUSTER_OPERATIONS = sum(1 << op for op in (4, 5, 7, 8, 9, 10, 11, 12))


def topic_metadata(
    context: RequestContext, topic: TopicInfo, operations: int
) -> MetadataResponseTopic:
    node = context.broker.node_id
    partitions = [
        MetadataResponsePartition(
            error_code=ErrorCode.NONE,
            partition_index=index,
            leader_id=node,
            leader_epoch=context.broker.replicas.leader_epoch(topic.name, index),
            replica_nodes=[node],
            isr_nodes=[node],
            offline_replicas=[],
        )
        for index in range(topic.partitions)
    ]
    return MetadataResponseTopic(
        error_code=ErrorCode.NONE,
        name=topic.name,
        topic_id=topic.topic_id,
        is_internal=topic.internal,
        partitions=partitions,
        topic_authorized_operations=operations,
    )


def _error_topic(
    code: ErrorCode, name: str | None, topic_id: uuid.UUID = ZERO_UUID
) -> MetadataResponseTopic:
    return MetadataResponseTopic(error_code=code, name=name, topic_id=topic_id)


async def _requested_topic(
    context: RequestContext,
    name: str | None,
    topic_id: uuid.UUID,
    auto_create: bool,
    operations: int,
) -> MetadataResponseTopic:
    replicas = context.broker.replicas
    if name is None:
        topic = replicas.find_topic_by_id(topic_id)
        if topic is None:
            return _error_topic(ErrorCode.UNKNOWN_TOPIC_ID, None, topic_id)
        return topic_metadata(context, topic, operations)
    try:
        validate_topic_name(name)
    except KafkaError as error:
        return _error_topic(error.code, name)
    topic = replicas.find_topic(name)
    if topic is None and auto_create:
        try:
            topic = await replicas.auto_create_topic(name)
        except KafkaError as error:
            return _error_topic(error.code, name)
    if topic is None:
        return _error_topic(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, name)
    return topic_metadata(context, topic, operations)


@handles(METADATA)
async def handle_metadata(context: RequestContext, request: MetadataRequest) -> MetadataResponse:
    broker = context.broker
    version = context.api_version
    topic_ops = (
        TOPIC_OPERATIONS
        if request.include_topic_authorized_operations
        else AUTHORIZED_OPERATIONS_OMITTED
    )
    cluster_ops = (
        CLUSTER_OPERATIONS
        if request.include_cluster_authorized_operations
        else AUTHORIZED_OPERATIONS_OMITTED
    )
    # Version 0 asks for every topic with an empty list; later versions use null for that.
    all_topics = request.topics is None or (version == 0 and not request.topics)
    if all_topics:
        topics = [topic_metadata(context, t, topic_ops) for t in broker.replicas.list_topics()]
    else:
        auto_create = request.allow_auto_topic_creation and broker.config.get_bool(
            "auto.create.topics.enable"
        )
        topics = [
            await _requested_topic(context, t.name, t.topic_id, auto_create, topic_ops)
            for t in request.topics or []
        ]
    endpoint = broker.endpoint
    return MetadataResponse(
        brokers=[MetadataResponseBroker(broker.node_id, endpoint.host, endpoint.port, None)],
        cluster_id=broker.cluster_id,
        controller_id=broker.node_id,
        topics=topics,
        cluster_authorized_operations=cluster_ops,
    )
