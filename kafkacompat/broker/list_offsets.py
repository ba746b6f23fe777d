"""ListOffsets: the offset for a timestamp, or for one of the special targets.

Special targets: -1 latest (the last fetchable offset: the high watermark, or the last stable
offset for read_committed), -2 earliest (log start offset), -3 the record with
the largest timestamp, -4 earliest local (log start offset), -5 latest tiered (this broker has no
tiered storage: no offset). Any other target finds the first record whose timestamp is at or
after it. v0 answers the old way: a list of segment base offsets chosen by segment file times.
"""

from __future__ import annotations

from collections import Counter

from kafkacompat.broker.context import PartitionLookup, RequestContext
from kafkacompat.broker.fetch import leader_epoch_error
from kafkacompat.broker.router import handles
from kafkacompat.errors import ErrorCode, KafkaError
from kafkacompat.protocol.messages.list_offsets_request import API_KEY as LIST_OFFSETS
from kafkacompat.protocol.messages.list_offsets_request import (
    ListOffsetsPartition,
    ListOffsetsRequest,
)
from kafkacompat.protocol.messages.list_offsets_response import (
    ListOffsetsPartitionResponse,
    ListOffsetsResponse,
    ListOffsetsTopicResponse,
)
from kafkacompat.security.acls import AclOperation, ResourceType
from kafkacompat.storage.results import (
    EARLIEST_LOCAL_TIMESTAMP,
    EARLIEST_TIMESTAMP,
    LATEST_TIMESTAMP,
    MAX_TIMESTAMP,
    TimestampOffset,
)

LATEST_TIERED_TIMESTAMP = -5
CONSUMER_REPLICA_ID = -1
UNKNOWN = -1


def _answer_v0(
    partitions: PartitionLookup, topic: str, partition: ListOffsetsPartition
) -> ListOffsetsPartitionResponse:
    answer = ListOffsetsPartitionResponse(partition_index=partition.partition_index)
    try:
        hosted = partitions(topic, partition.partition_index)
    except KafkaError as exc:
        answer.error_code = exc.code
        return answer
    answer.old_style_offsets = hosted.legacy_offsets(partition.timestamp, partition.max_num_offsets)
    return answer


READ_COMMITTED = 1


def _answer(
    partitions: PartitionLookup,
    topic: str,
    partition: ListOffsetsPartition,
    version: int,
    read_committed: bool = False,
) -> ListOffsetsPartitionResponse:
    index = partition.partition_index
    answer = ListOffsetsPartitionResponse(partition_index=index)
    try:
        hosted = partitions(topic, index)
    except KafkaError as exc:
        answer.error_code = exc.code
        return answer
    epoch = hosted.leader_epoch
    code = leader_epoch_error(partition.current_leader_epoch, epoch)
    if code != ErrorCode.NONE:
        answer.error_code = code
        return answer
    target = partition.timestamp
    if target == LATEST_TIERED_TIMESTAMP:
        return answer  # no tiered storage: offset and epoch unknown
    fetchable = hosted.high_watermark
    if read_committed:
        fetchable = hosted.last_stable_offset()
    if target == LATEST_TIMESTAMP:
        found = hosted.offset_for_timestamp(target)
        if found is not None:
            found = TimestampOffset(found.timestamp, fetchable)
    elif target in (EARLIEST_TIMESTAMP, EARLIEST_LOCAL_TIMESTAMP):
        found = hosted.offset_for_timestamp(target)
    else:
        # Other negative targets lie below every real timestamp: they find the first record.
        found = hosted.offset_for_timestamp(target if target == MAX_TIMESTAMP else max(target, 0))
        # A record found must be below the last fetchable offset.
        if found is not None and found.offset >= fetchable:
            found = None
    if found is None:
        return answer
    answer.timestamp, answer.offset = found.timestamp, found.offset
    if version >= 4:
        answer.leader_epoch = epoch
    return answer


@handles(LIST_OFFSETS)
async def handle_list_offsets(
    context: RequestContext, request: ListOffsetsRequest
) -> ListOffsetsResponse:
    version = context.api_version
    partitions = context.led_partition
    seen = Counter((t.name, p.partition_index) for t in request.topics for p in t.partitions)
    topics: list[ListOffsetsTopicResponse] = []
    secured = context.services.security.authorizer is not None
    for topic in request.topics:
        answers: list[ListOffsetsPartitionResponse] = []
        if secured and not context.authorize(AclOperation.DESCRIBE, ResourceType.TOPIC, topic.name):
            answers = [
                ListOffsetsPartitionResponse(
                    partition_index=p.partition_index,
                    error_code=ErrorCode.TOPIC_AUTHORIZATION_FAILED,
                )
                for p in topic.partitions
            ]
            topics.append(ListOffsetsTopicResponse(name=topic.name, partitions=answers))
            continue
        for partition in topic.partitions:
            if version == 0:
                answers.append(_answer_v0(partitions, topic.name, partition))
            elif seen[(topic.name, partition.partition_index)] > 1:
                answers.append(
                    ListOffsetsPartitionResponse(
                        partition_index=partition.partition_index,
                        error_code=ErrorCode.INVALID_REQUEST,
                    )
                )
            else:
                committed = version >= 2 and request.isolation_level == READ_COMMITTED
                answers.append(_answer(partitions, topic.name, partition, version, committed))
        topics.append(ListOffsetsTopicResponse(name=topic.name, partitions=answers))
    return ListOffsetsResponse(topics=topics)
