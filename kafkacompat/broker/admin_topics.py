"""CreateTopics, DeleteTopics and CreatePartitions, with Kafka's checks and error codes.

Changes go through the controller. A replication factor above the number of live brokers cannot
be met, and a manual assignment may name only live brokers.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from kafkacompat.broker.config_catalog import topic_config_entries
from kafkacompat.broker.context import RequestContext
from kafkacompat.broker.router import handles
from kafkacompat.errors import ErrorCode, KafkaError
from kafkacompat.protocol.messages.create_partitions_request import API_KEY as CREATE_PARTITIONS
from kafkacompat.protocol.messages.create_partitions_request import (
    CreatePartitionsRequest,
    CreatePartitionsTopic,
)
from kafkacompat.protocol.messages.create_partitions_response import (
    CreatePartitionsResponse,
    CreatePartitionsTopicResult,
)
from kafkacompat.protocol.messages.create_topics_request import API_KEY as CREATE_TOPICS
from kafkacompat.protocol.messages.create_topics_request import CreatableTopic, CreateTopicsRequest
from kafkacompat.protocol.messages.create_topics_response import (
    CreatableTopicConfigs,
    CreatableTopicResult,
    CreateTopicsResponse,
)
from kafkacompat.protocol.messages.delete_topics_request import API_KEY as DELETE_TOPICS
from kafkacompat.protocol.messages.delete_topics_request import (
    DeleteTopicsRequest,
    DeleteTopicState,
)
from kafkacompat.protocol.messages.delete_topics_response import (
    DeletableTopicResult,
    DeleteTopicsResponse,
)
from kafkacompat.protocol.primitives import ZERO_UUID
from kafkacompat.security.acls import AclOperation, ResourceType
from kafkacompat.storage.log_config import LogConfig, validate_topic_configs
from kafkacompat.storage.topic_names import validate_topic_name

TOPIC = ResourceType.TOPIC

DUPLICATE_TOPIC = "Duplicate topic name."
#: KRaft's bound on what one admin request may create (its records-per-operation limit).
MAX_PARTITIONS_PER_REQUEST = 10_000
EXCESSIVE_PARTITIONS = "Excessively large number of partitions per request."


def _fail(code: ErrorCode, message: str) -> KafkaError:
    return KafkaError(code, message)


def _live_brokers(context: RequestContext) -> list[int]:
    return context.services.controller.live_brokers()


def check_replicas(context: RequestContext, replicas: Sequence[int], expected: int | None) -> int:
    """Validate one partition's manual replica list; return its replication factor."""
    if not replicas:
        raise _fail(
            ErrorCode.INVALID_REPLICA_ASSIGNMENT,
            "The manual partition assignment includes an empty replica list.",
        )
    for broker_id, count in Counter(replicas).items():
        if count > 1:
            raise _fail(
                ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                f"The manual partition assignment includes the broker {broker_id} more than once.",
            )
        if broker_id not in _live_brokers(context):
            raise _fail(
                ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                f"The manual partition assignment includes broker {broker_id}, but no such "
                "broker is registered.",
            )
    if expected is not None and len(replicas) != expected:
        raise _fail(
            ErrorCode.INVALID_REPLICA_ASSIGNMENT,
            f"The manual partition assignment includes a partition with {len(replicas)} "
            f"replica(s), but this is not consistent with previous partitions, which have "
            f"{expected} replica(s).",
        )
    return len(replicas)


def _partitions_and_replication(context: RequestContext, topic: CreatableTopic) -> tuple[int, int]:
    config = context.services.config
    if topic.assignments:
        if topic.num_partitions != -1 or topic.replication_factor != -1:
            raise _fail(
                ErrorCode.INVALID_REQUEST,
                "Both numPartitions or replicationFactor and replicasAssignments were set. "
                "Both cannot be used at the same time.",
            )
        indexes = sorted(a.partition_index for a in topic.assignments)
        if indexes != list(range(len(indexes))):
            raise _fail(
                ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                "partitions should be a consecutive 0-based integer sequence",
            )
        factor: int | None = None
        for assignment in topic.assignments:
            factor = check_replicas(context, assignment.broker_ids, factor)
        assert factor is not None
        return len(indexes), factor
    partitions = topic.num_partitions
    if partitions == -1:
        partitions = config.get_int("num.partitions")
    if partitions <= 0:
        raise _fail(
            ErrorCode.INVALID_PARTITIONS,
            "Number of partitions was set to an invalid non-positive value.",
        )
    factor = topic.replication_factor
    if factor == -1:
        factor = config.get_int("default.replication.factor")
    if factor <= 0:
        raise _fail(
            ErrorCode.INVALID_REPLICATION_FACTOR,
            "Replication factor must be larger than 0, or -1 to use the default value.",
        )
    brokers = len(_live_brokers(context))
    if factor > brokers:
        raise _fail(
            ErrorCode.INVALID_REPLICATION_FACTOR,
            f"Unable to replicate the partition {factor} time(s): The target replication factor "
            f"of {factor} cannot be reached because only {brokers} broker(s) are registered.",
        )
    return partitions, factor


def _check_collision(context: RequestContext, name: str) -> None:
    """Kafka refuses names that differ from an existing one only by '.' versus '_'."""
    if "." not in name and "_" not in name:
        return
    folded = name.replace(".", "_")
    for existing in context.image.list_topics():
        if existing.name.replace(".", "_") == folded:
            raise _fail(
                ErrorCode.INVALID_TOPIC_EXCEPTION,
                f"Topic '{name}' collides with existing topic: {existing.name}",
            )


async def _create(
    context: RequestContext, topic: CreatableTopic, validate_only: bool
) -> CreatableTopicResult:
    name = topic.name
    validate_topic_name(name)
    if context.image.topic(name) is not None:
        raise _fail(ErrorCode.TOPIC_ALREADY_EXISTS, f"Topic '{name}' already exists.")
    _check_collision(context, name)
    partitions, factor = _partitions_and_replication(context, topic)
    nulls = [c.name for c in topic.configs if c.value is None]
    if nulls:
        raise _fail(
            ErrorCode.INVALID_CONFIG,
            f"Null value not supported for topic configs: {','.join(nulls)}",
        )
    names = [c.name for c in topic.configs]
    if len(set(names)) != len(names):
        raise _fail(ErrorCode.INVALID_REQUEST, "Duplicate config name in the request.")
    overrides = validate_topic_configs({c.name: c.value for c in topic.configs})
    info = await context.services.controller.create_topic(
        name, partitions, overrides, validate_only=validate_only, replication_factor=factor
    )
    effective = LogConfig.from_overrides(overrides, context.services.partitions.defaults)
    configs = [
        CreatableTopicConfigs(e.name, e.value, e.read_only, e.source, e.sensitive)
        for e in topic_config_entries(context.services.config, overrides, effective)
    ]
    return CreatableTopicResult(
        name=name,
        topic_id=ZERO_UUID if validate_only else info.topic_id,
        error_code=ErrorCode.NONE,
        error_message=None,
        num_partitions=partitions,
        replication_factor=factor,
        configs=configs,
    )


@handles(CREATE_TOPICS)
async def handle_create_topics(
    context: RequestContext, request: CreateTopicsRequest
) -> CreateTopicsResponse:
    counts = Counter(t.name for t in request.topics)
    requested = sum(
        len(t.assignments) if t.assignments else max(t.num_partitions, 0) for t in request.topics
    )
    if requested > MAX_PARTITIONS_PER_REQUEST:
        return CreateTopicsResponse(
            topics=[
                CreatableTopicResult(
                    name=name,
                    error_code=ErrorCode.POLICY_VIOLATION,
                    error_message=EXCESSIVE_PARTITIONS,
                    configs=[],
                )
                for name in counts
            ]
        )
    results: list[CreatableTopicResult] = []
    reported: set[str] = set()
    secured = context.services.security.authorizer is not None
    may_create_any = context.authorize_cluster(AclOperation.CREATE)
    for topic in request.topics:
        if topic.name in reported:
            continue
        try:
            if counts[topic.name] > 1:
                reported.add(topic.name)
                raise _fail(ErrorCode.INVALID_REQUEST, DUPLICATE_TOPIC)
            if secured and not (
                may_create_any or context.authorize(AclOperation.CREATE, TOPIC, topic.name)
            ):
                raise _fail(ErrorCode.TOPIC_AUTHORIZATION_FAILED, "Authorization failed.")
            result = await _create(context, topic, request.validate_only)
        except KafkaError as error:
            result = CreatableTopicResult(
                name=topic.name, error_code=error.code, error_message=error.message, configs=[]
            )
        if (
            secured
            and result.error_code == ErrorCode.NONE
            and not context.authorize(AclOperation.DESCRIBE_CONFIGS, TOPIC, topic.name)
        ):
            # A created topic's configs are only shown to a principal that may describe them.
            result.topic_config_error_code = ErrorCode.TOPIC_AUTHORIZATION_FAILED
            result.configs = []
        results.append(result)
    return CreateTopicsResponse(topics=results)


# -- DeleteTopics -------------------------------------------------------------------------------


def _may(context: RequestContext, operation: AclOperation, name: str) -> bool:
    """DELETE on the cluster allows describing and deleting every topic (as Kafka)."""
    return context.authorize(operation, TOPIC, name) or context.authorize_cluster(
        AclOperation.DELETE
    )


async def _delete(context: RequestContext, state: DeleteTopicState) -> DeletableTopicResult:
    image = context.image
    if state.name is not None:
        if state.topic_id != ZERO_UUID:
            raise _fail(
                ErrorCode.INVALID_REQUEST, "You may not specify both topic name and topic id."
            )
        denied = _fail(ErrorCode.TOPIC_AUTHORIZATION_FAILED, "Topic authorization failed.")
        if not _may(context, AclOperation.DESCRIBE, state.name):
            # Whether the topic exists is not disclosed.
            raise denied
        topic = image.topic(state.name)
        if topic is None:
            raise _fail(
                ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                "This server does not host this topic-partition.",
            )
        if not _may(context, AclOperation.DELETE, state.name):
            raise denied
    else:
        topic = image.topic_by_id(state.topic_id)
        if topic is None:
            raise _fail(ErrorCode.UNKNOWN_TOPIC_ID, "This server does not host this topic ID.")
        if not _may(context, AclOperation.DELETE, topic.name):
            # The name is told only to a principal that may describe the topic.
            describable = _may(context, AclOperation.DESCRIBE, topic.name)
            return DeletableTopicResult(
                topic.name if describable else None,
                topic.topic_id,
                ErrorCode.TOPIC_AUTHORIZATION_FAILED,
                "Topic authorization failed.",
            )
    await context.services.controller.delete_topic(topic.name)
    return DeletableTopicResult(topic.name, topic.topic_id, ErrorCode.NONE, None)


@handles(DELETE_TOPICS)
async def handle_delete_topics(
    context: RequestContext, request: DeleteTopicsRequest
) -> DeleteTopicsResponse:
    version = context.api_version
    states = (
        request.topics
        if version >= 6
        else [DeleteTopicState(name=name) for name in request.topic_names]
    )
    disabled = not context.services.config.get_bool("delete.topic.enable")
    names = Counter(s.name for s in states if s.name is not None)
    ids = Counter(s.topic_id for s in states if s.name is None)
    results = []
    for state in states:
        try:
            if disabled:
                if version < 3:
                    raise _fail(ErrorCode.INVALID_REQUEST, "Topic deletion is disabled.")
                raise _fail(ErrorCode.TOPIC_DELETION_DISABLED, "Topic deletion is disabled.")
            if state.name is not None and names[state.name] > 1:
                raise _fail(ErrorCode.INVALID_REQUEST, DUPLICATE_TOPIC)
            if state.name is None and ids[state.topic_id] > 1:
                raise _fail(ErrorCode.INVALID_REQUEST, "Duplicate topic id.")
            result = await _delete(context, state)
        except KafkaError as error:
            result = DeletableTopicResult(state.name, state.topic_id, error.code, error.message)
        results.append(result)
    return DeleteTopicsResponse(responses=results)


# -- CreatePartitions ---------------------------------------------------------------------------


async def _add_partitions(
    context: RequestContext, topic: CreatePartitionsTopic, validate_only: bool
) -> None:
    meta = context.image.topic(topic.name)
    if meta is None:
        raise _fail(
            ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"The topic '{topic.name}' does not exist."
        )
    current = meta.partitions
    if topic.count < current:
        raise _fail(
            ErrorCode.INVALID_PARTITIONS,
            f"The topic {topic.name} currently has {current} partition(s); {topic.count} would "
            "not be an increase.",
        )
    if topic.count == current:
        raise _fail(ErrorCode.INVALID_PARTITIONS, f"Topic already has {current} partition(s).")
    if topic.assignments is not None:
        added = topic.count - current
        if len(topic.assignments) != added:
            raise _fail(
                ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                f"Attempted to add {added} additional partition(s), but only "
                f"{len(topic.assignments)} assignment(s) were specified.",
            )
        for assignment in topic.assignments:
            check_replicas(context, assignment.broker_ids, 1)
    await context.services.controller.create_partitions(
        topic.name, topic.count, validate_only=validate_only
    )


@handles(CREATE_PARTITIONS)
async def handle_create_partitions(
    context: RequestContext, request: CreatePartitionsRequest
) -> CreatePartitionsResponse:
    counts = Counter(t.name for t in request.topics)
    image = context.image
    added = 0
    for topic in request.topics:
        existing = image.topic(topic.name)
        added += max(0, topic.count - (existing.partitions if existing else 0))
    if added > MAX_PARTITIONS_PER_REQUEST:
        return CreatePartitionsResponse(
            results=[
                CreatePartitionsTopicResult(name, ErrorCode.POLICY_VIOLATION, EXCESSIVE_PARTITIONS)
                for name in counts
            ]
        )
    results = []
    reported: set[str] = set()
    for topic in request.topics:
        if topic.name in reported:
            continue
        try:
            if counts[topic.name] > 1:
                reported.add(topic.name)
                raise _fail(ErrorCode.INVALID_REQUEST, DUPLICATE_TOPIC)
            if not context.authorize(AclOperation.ALTER, TOPIC, topic.name):
                raise _fail(
                    ErrorCode.TOPIC_AUTHORIZATION_FAILED, "The topic authorization is failed."
                )
            await _add_partitions(context, topic, request.validate_only)
        except KafkaError as error:
            results.append(CreatePartitionsTopicResult(topic.name, error.code, error.message))
        else:
            results.append(CreatePartitionsTopicResult(topic.name, ErrorCode.NONE, None))
    return CreatePartitionsResponse(results=results)
