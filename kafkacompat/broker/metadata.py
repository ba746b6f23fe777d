"""Metadata: brokers, cluster id, controller and the topics asked for (or all of them)."""

from __future__ import annotations

import uuid

from kafkacompat.broker.context import RequestContext
from kafkacompat.broker.router import handles
from kafkacompat.cluster.metadata_image import MetadataImage, TopicImage
from kafkacompat.coordinators.internal_topic import InternalTopic
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
from kafkacompat.security.acls import (
    ALL_OPERATIONS_BITS,
    CLUSTER_NAME,
    AclOperation,
    ResourceType,
)
from kafkacompat.storage.topic_names import OFFSETS_TOPIC, is_internal_topic, validate_topic_name

AUTHORIZED_OPERATIONS_OMITTED = -2147483648
TOPIC = ResourceType.TOPIC
# With no authorizer every operation is allowed: bits of Kafka's AclOperation codes.
TOPIC_OPERATIONS = ALL_OPERATIONS_BITS[ResourceType.TOPIC]
CLUSTER_OPERATIONS = ALL_OPERATIONS_BITS[ResourceType.CLUSTER]


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


def _internal_topic(context: RequestContext, name: str) -> InternalTopic:
    services = context.services
    return services.groups.topic if name == OFFSETS_TOPIC else services.transactions.topic


async def _requested_topic(
    context: RequestContext,
    image: MetadataImage,
    name: str | None,
    topic_id: uuid.UUID,
    auto_create: bool,
    operations: int,
) -> MetadataResponseTopic:
    secured = context.services.security.authorizer is not None
    if name is None:
        topic = image.topic_by_id(topic_id)
        if topic is None:
            return _error_topic(ErrorCode.UNKNOWN_TOPIC_ID, None, topic_id)
        if secured and not context.authorize(AclOperation.DESCRIBE, TOPIC, topic.name):
            # Topic ids are not secret: the id is answered with the error.
            return _error_topic(ErrorCode.TOPIC_AUTHORIZATION_FAILED, None, topic_id)
        return topic_metadata(topic, operations)
    if secured and not context.authorize(AclOperation.DESCRIBE, TOPIC, name):
        # Whether it exists is not disclosed.
        return _error_topic(ErrorCode.TOPIC_AUTHORIZATION_FAILED, name)
    try:
        validate_topic_name(name)
    except KafkaError as error:
        return _error_topic(error.code, name)
    topic = image.topic(name)
    if topic is None and auto_create:
        if secured and not (
            context.authorize_cluster(AclOperation.CREATE)
            or context.authorize(AclOperation.CREATE, TOPIC, name)
        ):
            return _error_topic(ErrorCode.TOPIC_AUTHORIZATION_FAILED, name)
        try:
            if is_internal_topic(name):
                # Created as the coordinators use it: their partition count and configs.
                await _internal_topic(context, name).create()
                topic = context.image.topic(name)
            else:
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
    secured = context.services.security.authorizer is not None
    if all_topics:
        listed = image.list_topics()
        if secured:
            # Topics the principal may not describe are left out, not reported.
            listed = [t for t in listed if context.authorize(AclOperation.DESCRIBE, TOPIC, t.name)]
        topics = [topic_metadata(t, topic_ops) for t in listed]
    else:
        auto_create = request.allow_auto_topic_creation and config.get_bool(
            "auto.create.topics.enable"
        )
        topics = [
            await _requested_topic(context, image, t.name, t.topic_id, auto_create, topic_ops)
            for t in request.topics or []
        ]
    if secured:
        if request.include_topic_authorized_operations:
            for answer in topics:
                denied = answer.error_code == ErrorCode.TOPIC_AUTHORIZATION_FAILED
                if not denied and answer.name is not None:
                    answer.topic_authorized_operations = context.authorized_operations(
                        TOPIC, answer.name
                    )
        if request.include_cluster_authorized_operations:
            cluster_ops = (
                context.authorized_operations(ResourceType.CLUSTER, CLUSTER_NAME)
                if context.authorize_cluster(AclOperation.DESCRIBE)
                else 0
            )
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
