"""Metadata: brokers, cluster id, controller and the topics asked for (or all of them)."""

from __future__ import annotations

import uuid

from kafkacompat.broker.context import RequestContext
from kafkacompat.broker.router import handles
from kafkacompat.cluster.metadata_image import MetadataImage, TopicImage
from kafkacompat.errors import ErrorCode, KafkaError
from kafkacompat.protocol.messages.metadata_request import API_KEY as METADATA
from kafkacompat.protocol.messages.metadata_request import MetadataRequest
from kafkacompat.protocol.messages.metadata_response import (
    MetadataResponse,
    MetadataResponseBroker,
    MetadataResponsePartition,
    MetadataResponseTopic,
)
from kafkacompat.protocol.primitives import ZERO_UUID
from kafkacompat.storage.topic_names import validate_topic_name

AUTHORIZED_OPERATIONS_OMITTED = -2147483648
# With no authorizer every operation is allowed: bits of Kafka's AclOperation codes.
TOPIC_OPERATIONS = sum(1 << op for op in (3, 4, 5, 6, 7, 8, 10, 11))
CLUSTER_OPERATIONS = sum(1 << op for op in (4, 5, 7, 8, 9, 10, 11, 12))


def topic_metadata(topic: TopicImage, operations: int) -> MetadataResponseTopic:
    partitions = [
        MetadataResponsePartition(
            error_code=ErrorCode.NONE,
            partition_index=p.index,
            leader_id=p.leader,
            leader_epoch=p.leader_epoch,
            replica_nodes=list(p.replicas),
            isr_nodes=list(p.isr),
            offline_replicas=list(p.offline_replicas),
        )
        for p in topic.assignment
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
    image: MetadataImage,
    name: str | None,
    topic_id: uuid.UUID,
    auto_create: bool,
    operations: int,
) -> MetadataResponseTopic:
    if name is None:
        topic = image.topic_by_id(topic_id)
        if topic is None:
            return _error_topic(ErrorCode.UNKNOWN_TOPIC_ID, None, topic_id)
        return topic_metadata(topic, operations)
    try:
        validate_topic_name(name)
    except KafkaError as error:
        return _error_topic(error.code, name)
    topic = image.topic(name)
    if topic is None and auto_create:
        try:
            topic = await context.services.controller.create_topic(
                name, context.services.config.get_int("num.partitions")
            )
        except KafkaError as error:
            if error.code != ErrorCode.TOPIC_ALREADY_EXISTS:
                return _error_topic(error.code, name)
            topic = context.image.topic(name)
    if topic is None:
        return _error_topic(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, name)
    return topic_metadata(topic, operations)


@handles(METADATA)
async def handle_metadata(context: RequestContext, request: MetadataRequest) -> MetadataResponse:
    config = context.services.config
    image = context.image
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
        topics = [topic_metadata(t, topic_ops) for t in image.list_topics()]
    else:
        auto_create = request.allow_auto_topic_creation and config.get_bool(
            "auto.create.topics.enable"
        )
        topics = [
            await _requested_topic(context, image, t.name, t.topic_id, auto_create, topic_ops)
            for t in request.topics or []
        ]
    return MetadataResponse(
        brokers=[
            MetadataResponseBroker(b.node_id, e.host, e.port, b.rack)
            for b, e in context.reachable_brokers(image)
        ],
        cluster_id=image.cluster_id,
        controller_id=image.controller_id,
        topics=topics,
        cluster_authorized_operations=cluster_ops,
    )
