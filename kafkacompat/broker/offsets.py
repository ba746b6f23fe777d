"""OffsetCommit, OffsetFetch (single and multi-group) and OffsetDelete."""

from __future__ import annotations

from collections.abc import Iterable

from kafkacompat.broker.context import RequestContext
from kafkacompat.broker.groups import coordinator, may_read_group
from kafkacompat.broker.router import handles
from kafkacompat.coordinators.group_offsets import OffsetAndMetadata, TopicPartition
from kafkacompat.errors import ErrorCode
from kafkacompat.protocol.messages.offset_commit_request import API_KEY as OFFSET_COMMIT
from kafkacompat.protocol.messages.offset_commit_request import OffsetCommitRequest
from kafkacompat.protocol.messages.offset_commit_response import (
    OffsetCommitResponse,
    OffsetCommitResponsePartition,
    OffsetCommitResponseTopic,
)
from kafkacompat.protocol.messages.offset_delete_request import API_KEY as OFFSET_DELETE
from kafkacompat.protocol.messages.offset_delete_request import OffsetDeleteRequest
from kafkacompat.protocol.messages.offset_delete_response import (
    OffsetDeleteResponse,
    OffsetDeleteResponsePartition,
    OffsetDeleteResponseTopic,
)
from kafkacompat.protocol.messages.offset_fetch_request import API_KEY as OFFSET_FETCH
from kafkacompat.protocol.messages.offset_fetch_request import OffsetFetchRequest
from kafkacompat.protocol.messages.offset_fetch_response import (
    OffsetFetchResponse,
    OffsetFetchResponseGroup,
    OffsetFetchResponsePartition,
    OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic,
    OffsetFetchResponseTopics,
)
from kafkacompat.security.acls import AclOperation, ResourceType

NO_OFFSET = OffsetAndMetadata(-1, -1, "")
#: Stands for the offsets of a topic the principal may not describe.
DENIED_OFFSET = OffsetAndMetadata(-1, -1, "")
TOPIC = ResourceType.TOPIC


def may_describe_group(context: RequestContext, group_id: str) -> bool:
    return context.authorize(AclOperation.DESCRIBE, ResourceType.GROUP, group_id)


def partition_exists(context: RequestContext, topic: str, partition: int) -> bool:
    info = context.image.topic(topic)
    return info is not None and 0 <= partition < info.partitions


def by_topic(partitions: Iterable[TopicPartition]) -> dict[str, list[int]]:
    topics: dict[str, list[int]] = {}
    for topic, partition in partitions:
        topics.setdefault(topic, []).append(partition)
    return topics


@handles(OFFSET_COMMIT)
async def offset_commit(
    context: RequestContext, request: OffsetCommitRequest
) -> OffsetCommitResponse:
    version = context.api_version
    groups = coordinator(context)
    expire = -1
    if 2 <= version <= 4 and request.retention_time_ms >= 0:
        expire = groups.clock() + request.retention_time_ms
    errors: dict[TopicPartition, ErrorCode] = {}
    offsets: dict[TopicPartition, OffsetAndMetadata] = {}
    secured = context.services.security.authorizer is not None
    if secured and not may_read_group(context, request.group_id):
        return _commit_response(request, ErrorCode.GROUP_AUTHORIZATION_FAILED, errors)
    not_here = context.services.groups.coordinator_error(request.group_id)
    if not_here:
        return _commit_response(request, not_here, errors)
    for topic in request.topics:
        denied = secured and not context.authorize(AclOperation.READ, TOPIC, topic.name)
        for p in topic.partitions:
            tp = (topic.name, p.partition_index)
            if denied:
                errors[tp] = ErrorCode.TOPIC_AUTHORIZATION_FAILED
                continue
            if not partition_exists(context, *tp):
                errors[tp] = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
                continue
            commit_ts = p.commit_timestamp if version == 1 else -1
            offsets[tp] = OffsetAndMetadata(
                p.committed_offset,
                p.committed_leader_epoch,
                p.committed_metadata,
                commit_ts,
                expire,
            )
    if offsets:
        errors.update(
            groups.commit_offsets(
                request.group_id,
                request.member_id,
                request.group_instance_id,
                request.generation_id_or_member_epoch,
                offsets,
                version,
            )
        )
        await context.services.groups.settled()
    return _commit_response(request, ErrorCode.NONE, errors)


def _commit_response(
    request: OffsetCommitRequest, every: ErrorCode, errors: dict[TopicPartition, ErrorCode]
) -> OffsetCommitResponse:
    """Each partition's error (``every`` for all, when it is not NONE)."""
    return OffsetCommitResponse(
        topics=[
            OffsetCommitResponseTopic(
                topic.name,
                [
                    OffsetCommitResponsePartition(
                        p.partition_index, every or errors[(topic.name, p.partition_index)]
                    )
                    for p in topic.partitions
                ],
            )
            for topic in request.topics
        ]
    )


def fetch_group(
    context: RequestContext, group_id: str, topics: list[tuple[str, list[int]]] | None
) -> dict[str, list[tuple[int, OffsetAndMetadata]]]:
    """A group's committed offsets by topic (all of them when ``topics`` is None). Topics the
    principal may not describe are left out when all are asked for; asked for by name, they are
    answered TOPIC_AUTHORIZATION_FAILED (offset -1)."""
    denied: list[tuple[str, list[int]]] = []
    if context.services.security.authorizer is not None:
        if topics is None:
            return {
                name: offsets
                for name, offsets in fetch_group_offsets(context, group_id, None).items()
                if context.authorize(AclOperation.DESCRIBE, TOPIC, name)
            }
        allowed = [t for t in topics if context.authorize(AclOperation.DESCRIBE, TOPIC, t[0])]
        denied = [t for t in topics if t not in allowed]
        topics = allowed
    result = fetch_group_offsets(context, group_id, topics)
    for name, parts in denied:
        result[name] = [(p, DENIED_OFFSET) for p in parts]
    return result


def fetch_group_offsets(
    context: RequestContext, group_id: str, topics: list[tuple[str, list[int]]] | None
) -> dict[str, list[tuple[int, OffsetAndMetadata]]]:
    """A group's committed offsets by topic (all of them when ``topics`` is None)."""
    wanted = None if topics is None else [(t, p) for t, parts in topics for p in parts]
    found = coordinator(context).fetch_offsets(group_id, wanted)
    result: dict[str, list[tuple[int, OffsetAndMetadata]]] = {}
    if topics is not None:
        for name, _ in topics:
            result.setdefault(name, [])
    for (topic, partition), value in found.items():
        result.setdefault(topic, []).append((partition, value or NO_OFFSET))
    return result


def checked(
    context: RequestContext,
    group_id: str,
    topic: str,
    partition: int,
    value: OffsetAndMetadata,
    require_stable: bool,
) -> tuple[int, int, str | None, ErrorCode]:
    """Offset, leader epoch, metadata and error of one partition: with ``require_stable``,
    offsets pending in an open transaction are UNSTABLE_OFFSET_COMMIT."""
    if value is DENIED_OFFSET:
        return -1, -1, "", ErrorCode.TOPIC_AUTHORIZATION_FAILED
    if require_stable and context.services.transactions.offsets.is_pending(
        group_id, (topic, partition)
    ):
        return -1, -1, "", ErrorCode.UNSTABLE_OFFSET_COMMIT
    return value.offset, value.leader_epoch, value.metadata, ErrorCode.NONE


def fetch_refusal(context: RequestContext, group_id: str) -> ErrorCode:
    """GROUP_AUTHORIZATION_FAILED without DESCRIBE on the group; NOT_COORDINATOR or
    COORDINATOR_LOAD_IN_PROGRESS when it is not coordinated here (yet); else NONE."""
    if not may_describe_group(context, group_id):
        return ErrorCode.GROUP_AUTHORIZATION_FAILED
    return context.services.groups.coordinator_error(group_id)


@handles(OFFSET_FETCH)
async def offset_fetch(context: RequestContext, request: OffsetFetchRequest) -> OffsetFetchResponse:
    if context.api_version >= 8:
        groups = []
        for group in request.groups:
            wanted = (
                None
                if group.topics is None
                else [(t.name, list(t.partition_indexes)) for t in group.topics]
            )
            refused = fetch_refusal(context, group.group_id)
            if refused:
                groups.append(OffsetFetchResponseGroup(group.group_id, [], refused))
                continue
            if context.api_version >= 9:
                # A consumer-protocol member fetches at its current member epoch.
                error = coordinator(context).validate_offset_fetch(
                    group.group_id, group.member_id, group.member_epoch
                )
                if error != ErrorCode.NONE:
                    groups.append(OffsetFetchResponseGroup(group.group_id, [], error))
                    continue
            found = fetch_group(context, group.group_id, wanted)
            groups.append(
                OffsetFetchResponseGroup(
                    group.group_id,
                    [
                        OffsetFetchResponseTopics(
                            name,
                            [
                                OffsetFetchResponsePartitions(
                                    p,
                                    *checked(
                                        context, group.group_id, name, p, v, request.require_stable
                                    ),
                                )
                                for p, v in partitions
                            ],
                        )
                        for name, partitions in found.items()
                    ],
                    ErrorCode.NONE,
                )
            )
        return OffsetFetchResponse(groups=groups)
    wanted = (
        None
        if request.topics is None
        else [(t.name, list(t.partition_indexes)) for t in request.topics]
    )
    error = fetch_refusal(context, request.group_id)
    if error:
        if context.api_version >= 2:
            return OffsetFetchResponse(topics=[], error_code=error)
        # v0-1 have no top-level error: every partition asked for carries it.
        return OffsetFetchResponse(
            topics=[
                OffsetFetchResponseTopic(
                    t.name,
                    [
                        OffsetFetchResponsePartition(p, -1, -1, "", error)
                        for p in t.partition_indexes
                    ],
                )
                for t in request.topics or []
            ]
        )
    found = fetch_group(context, request.group_id, wanted)
    return OffsetFetchResponse(
        topics=[
            OffsetFetchResponseTopic(
                name,
                [
                    OffsetFetchResponsePartition(
                        p,
                        *checked(
                            context,
                            request.group_id,
                            name,
                            p,
                            v,
                            context.api_version >= 7 and request.require_stable,
                        ),
                    )
                    for p, v in partitions
                ],
            )
            for name, partitions in found.items()
        ],
        error_code=ErrorCode.NONE,
    )


@handles(OFFSET_DELETE)
async def offset_delete(
    context: RequestContext, request: OffsetDeleteRequest
) -> OffsetDeleteResponse:
    unknown: dict[TopicPartition, ErrorCode] = {}
    wanted: list[TopicPartition] = []
    secured = context.services.security.authorizer is not None
    if secured and not context.authorize(AclOperation.DELETE, ResourceType.GROUP, request.group_id):
        return OffsetDeleteResponse(error_code=ErrorCode.GROUP_AUTHORIZATION_FAILED)
    not_here = context.services.groups.coordinator_error(request.group_id)
    if not_here:
        return OffsetDeleteResponse(error_code=not_here)
    for topic in request.topics:
        denied = secured and not context.authorize(AclOperation.READ, TOPIC, topic.name)
        for p in topic.partitions:
            tp = (topic.name, p.partition_index)
            if denied:
                unknown[tp] = ErrorCode.TOPIC_AUTHORIZATION_FAILED
            elif partition_exists(context, *tp):
                wanted.append(tp)
            else:
                unknown[tp] = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    error, results = coordinator(context).delete_offsets(request.group_id, wanted)
    await context.services.groups.settled()
    if error != ErrorCode.NONE:
        return OffsetDeleteResponse(error_code=error)
    results.update(unknown)
    return OffsetDeleteResponse(
        error_code=ErrorCode.NONE,
        topics=[
            OffsetDeleteResponseTopic(
                name,
                [OffsetDeleteResponsePartition(p, results[(name, p)]) for p in partitions],
            )
            for name, partitions in by_topic(results).items()
        ],
    )
