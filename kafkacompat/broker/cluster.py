"""DescribeCluster (brokers, controller, cluster id) and DescribeTopicPartitions (paged by cursor)."""

from __future__ import annotations

from kafkacompat.broker.context import RequestContext
from kafkacompat.broker.metadata import TOPIC_OPERATIONS
from kafkacompat.broker.router import handles
from kafkacompat.cluster.metadata_image import TopicImage
from kafkacompat.errors import ErrorCode, KafkaError
from kafkacompat.protocol.messages.describe_cluster_request import API_KEY as DESCRIBE_CLUSTER
from kafkacompat.protocol.messages.describe_cluster_request import DescribeClusterRequest
from kafkacompat.protocol.messages.describe_cluster_response import (
    DescribeClusterBroker,
    DescribeClusterResponse,
)
from kafkacompat.protocol.messages.describe_topic_partitions_request import (
    API_KEY as DESCRIBE_TOPIC_PARTITIONS,
)
from kafkacompat.protocol.messages.describe_topic_partitions_request import (
    DescribeTopicPartitionsRequest,
)
from kafkacompat.protocol.messages.describe_topic_partitions_response import (
    Cursor,
    DescribeTopicPartitionsResponse,
    DescribeTopicPartitionsResponsePartition,
    DescribeTopicPartitionsResponseTopic,
)
from kafkacompat.security.acls import CLUSTER_NAME, AclOperation, ResourceType
from kafkacompat.storage.topic_names import validate_topic_name

ENDPOINT_TYPE_BROKER = 1
TOPIC = ResourceType.TOPIC
AUTHORIZED_OPERATIONS_OMITTED = -2147483648
#: Kafka's max.request.partition.size.limit: the most partitions one response describes.
MAX_RESPONSE_PARTITIONS = 2000


@handles(DESCRIBE_CLUSTER)
async def handle_describe_cluster(
    context: RequestContext, request: DescribeClusterRequest
) -> DescribeClusterResponse:
    image = context.image
    if request.endpoint_type != ENDPOINT_TYPE_BROKER:
        return DescribeClusterResponse(
            error_code=ErrorCode.UNSUPPORTED_ENDPOINT_TYPE,
            error_message=f"The request was sent to an endpoint of type BROKER, but we wanted "
            f"an endpoint of type {request.endpoint_type}",
            endpoint_type=ENDPOINT_TYPE_BROKER,
        )
    operations = AUTHORIZED_OPERATIONS_OMITTED
    if request.include_cluster_authorized_operations:
        operations = (
            context.authorized_operations(ResourceType.CLUSTER, CLUSTER_NAME)
            if context.authorize_cluster(AclOperation.DESCRIBE)
            else 0
        )
    return DescribeClusterResponse(
        error_code=ErrorCode.NONE,
        error_message=None,
        endpoint_type=ENDPOINT_TYPE_BROKER,
        cluster_id=image.cluster_id,
        # Brokers name a live broker as the controller; clients send controller requests there.
        controller_id=image.controller_id,
        brokers=[
            DescribeClusterBroker(b.node_id, e.host, e.port, b.rack)
            for b, e in context.reachable_brokers(image)
        ],
        cluster_authorized_operations=operations,
    )


def _error_topic(name: str, code: ErrorCode) -> DescribeTopicPartitionsResponseTopic:
    return DescribeTopicPartitionsResponseTopic(error_code=code, name=name, partitions=[])


def _described(topic: TopicImage, start: int, limit: int) -> DescribeTopicPartitionsResponseTopic:
    partitions = [
        DescribeTopicPartitionsResponsePartition(
            error_code=ErrorCode.NONE,
            partition_index=p.index,
            leader_id=p.leader,
            leader_epoch=p.leader_epoch,
            replica_nodes=list(p.replicas),
            isr_nodes=list(p.isr),
            eligible_leader_replicas=[],
            last_known_elr=[],
            offline_replicas=list(p.offline_replicas),
        )
        for p in topic.assignment[start : start + limit]
    ]
    return DescribeTopicPartitionsResponseTopic(
        error_code=ErrorCode.NONE,
        name=topic.name,
        topic_id=topic.topic_id,
        is_internal=topic.internal,
        partitions=partitions,
        topic_authorized_operations=TOPIC_OPERATIONS,
    )


def describe_topic_partitions(
    context: RequestContext, request: DescribeTopicPartitionsRequest
) -> DescribeTopicPartitionsResponse:
    image = context.image
    cursor = request.cursor
    if request.topics:
        names = sorted({t.name for t in request.topics})
        if cursor is not None and cursor.topic_name not in names:
            raise KafkaError(
                ErrorCode.INVALID_REQUEST, "The cursor topic must be one of the requested topics."
            )
    else:
        names = [t.name for t in image.list_topics()]
    if cursor is not None:
        if cursor.partition_index < 0:
            raise KafkaError(
                ErrorCode.INVALID_REQUEST, "The cursor partition must not be negative."
            )
        names = [n for n in names if n >= cursor.topic_name]
    remaining = max(1, min(request.response_partition_limit, MAX_RESPONSE_PARTITIONS))
    topics: list[DescribeTopicPartitionsResponseTopic] = []
    next_cursor: Cursor | None = None
    secured = context.services.security.authorizer is not None
    denied: list[DescribeTopicPartitionsResponseTopic] = []
    if secured:
        # Topics the principal may not describe: left out of a listing of all, else reported
        # (after the others) without disclosing whether they exist.
        allowed = {n for n in names if context.authorize(AclOperation.DESCRIBE, TOPIC, n)}
        if request.topics:
            denied = [
                _error_topic(n, ErrorCode.TOPIC_AUTHORIZATION_FAILED)
                for n in names
                if n not in allowed
            ]
        names = [n for n in names if n in allowed]
    for position, name in enumerate(names):
        try:
            validate_topic_name(name)
        except KafkaError as error:
            topics.append(_error_topic(name, error.code))
            continue
        topic = image.topic(name)
        if topic is None:
            topics.append(_error_topic(name, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION))
            continue
        start = cursor.partition_index if cursor is not None and name == cursor.topic_name else 0
        described = _described(topic, start, remaining)
        topics.append(described)
        remaining -= len(described.partitions)
        end = start + len(described.partitions)
        if end < topic.partitions:
            next_cursor = Cursor(name, end)
            break
        if remaining <= 0 and position + 1 < len(names):
            next_cursor = Cursor(names[position + 1], 0)
            break
    if secured:
        for described in topics:
            if described.error_code == ErrorCode.NONE and described.name is not None:
                described.topic_authorized_operations = context.authorized_operations(
                    TOPIC, described.name
                )
        topics.extend(denied)
    return DescribeTopicPartitionsResponse(topics=topics, next_cursor=next_cursor)


@handles(DESCRIBE_TOPIC_PARTITIONS)
async def handle_describe_topic_partitions(
    context: RequestContext, request: DescribeTopicPartitionsRequest
) -> DescribeTopicPartitionsResponse:
    try:
        return describe_topic_partitions(context, request)
    except KafkaError as error:
        return DescribeTopicPartitionsResponse(
            topics=[_error_topic(t.name, error.code) for t in request.topics]
        )
