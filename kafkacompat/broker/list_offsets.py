"""ListOffsets: the offset for a timestamp, or for one of the special targets.

Special targets: -1 latest (the last fetchable offset: the high watermark, or the last stable
offset for read_committed), -2 earliest (log start offset), -3 the record with
the largest timestamp, -4 earliest local (log start offset), -5 latest tiered (this broker has no
tiered storage: no offset). Any other target finds the first record whose timestamp is at or
after it. v0 answers the old way: a list of segment base offsets chosen by segment file times.
"""

from __future__ import annotations

import os
import time
from collections import Counter

from kafkacompat.broker.context import RequestContext
from kafkacompat.broker.fetch import leader_epoch_error
from kafkacompat.broker.replica_manager import ReplicaManager
from kafkacompat.broker.router import handles
from kafkacompat.errors import ErrorCode, KafkaError
from kafkacompat.protocol.messages.list_offsets_request import (
    ListOffsetsPartition,
    ListOffsetsRequest,
)
from kafkacompat.protocol.messages.list_offsets_response import (
    ListOffsetsPartitionResponse,
    ListOffsetsResponse,
    ListOffsetsTopicResponse,
)
from kafkacompat.storage.partition_log import PartitionLog
from kafkacompat.storage.results import (
    EARLIEST_LOCAL_TIMESTAMP,
    EARLIEST_TIMESTAMP,
    LATEST_TIMESTAMP,
    MAX_TIMESTAMP,
    TimestampOffset,
)

LIST_OFFSETS = 2
LATEST_TIERED_TIMESTAMP = -5
CONSUMER_REPLICA_ID = -1
UNKNOWN = -1


def _segment_times(log: PartitionLog) -> list[tuple[int, int]]:
    """v0's view of a log: (first offset, file modification time) per segment, plus
    (log end offset, now) when the active segment holds data."""
    entries: list[tuple[int, int]] = []
    bases = log.segment_base_offsets
    for base in bases:
        try:
            mtime = int(os.stat(log.directory / f"{base:020d}.log").st_mtime * 1000)
        except FileNotFoundError:
            mtime = 0
        entries.append((max(base, log.log_start_offset), mtime))
    if log.log_end_offset > bases[-1]:
        entries.append((log.log_end_offset, int(time.time() * 1000)))
    return entries


def legacy_offsets(log: PartitionLog, timestamp: int, max_num_offsets: int) -> list[int]:
    """ListOffsets v0: up to ``max_num_offsets`` offsets, newest first."""
    entries = _segment_times(log)
    if timestamp == LATEST_TIMESTAMP:
        start = len(entries) - 1
    elif timestamp == EARLIEST_TIMESTAMP:
        start = 0
    else:
        start = len(entries) - 1
        while start >= 0 and entries[start][1] > timestamp:
            start -= 1
    count = max(0, min(max_num_offsets, start + 1))
    offsets = sorted((entries[start - j][0] for j in range(count)), reverse=True)
    high_watermark = log.high_watermark
    if any(o > high_watermark for o in offsets):
        offsets = [high_watermark] + [o for o in offsets if o <= high_watermark]
    return offsets


def _answer_v0(
    replicas: ReplicaManager, topic: str, partition: ListOffsetsPartition
) -> ListOffsetsPartitionResponse:
    answer = ListOffsetsPartitionResponse(partition_index=partition.partition_index)
    try:
        log = replicas.log(topic, partition.partition_index)
    except KafkaError as exc:
        answer.error_code = exc.code
        return answer
    answer.old_style_offsets = legacy_offsets(log, partition.timestamp, partition.max_num_offsets)
    return answer


READ_COMMITTED = 1


def _answer(
    replicas: ReplicaManager,
    topic: str,
    partition: ListOffsetsPartition,
    version: int,
    read_committed: bool = False,
) -> ListOffsetsPartitionResponse:
    index = partition.partition_index
    answer = ListOffsetsPartitionResponse(partition_index=index)
    try:
        log = replicas.log(topic, index)
    except KafkaError as exc:
        answer.error_code = exc.code
        return answer
    epoch = replicas.leader_epoch(topic, index)
    code = leader_epoch_error(partition.current_leader_epoch, epoch)
    if code != ErrorCode.NONE:
        answer.error_code = code
        return answer
    target = partition.timestamp
    if target == LATEST_TIERED_TIMESTAMP:
        return answer  # no tiered storage: offset and epoch unknown
    fetchable = log.high_watermark
    if read_committed:
        fetchable = replicas.last_stable_offset(topic, index)
    if target == LATEST_TIMESTAMP:
        found = log.offset_for_timestamp(target)
        if found is not None:
            found = TimestampOffset(found.timestamp, fetchable)
    elif target in (EARLIEST_TIMESTAMP, EARLIEST_LOCAL_TIMESTAMP):
        found = log.offset_for_timestamp(target)
    else:
        # Other negative targets lie below every real timestamp: they find the first record.
        found = log.offset_for_timestamp(target if target == MAX_TIMESTAMP else max(target, 0))
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
    replicas = context.broker.replicas
    seen = Counter((t.name, p.partition_index) for t in request.topics for p in t.partitions)
    topics: list[ListOffsetsTopicResponse] = []
    for topic in request.topics:
        answers: list[ListOffsetsPartitionResponse] = []
        for partition in topic.partitions:
            if version == 0:
                answers.append(_answer_v0(replicas, topic.name, partition))
            elif seen[(topic.name, partition.partition_index)] > 1:
                answers.append(
                    ListOffsetsPartitionResponse(
                        partition_index=partition.partition_index,
                        error_code=ErrorCode.INVALID_REQUEST,
                    )
                )
            else:
                committed = version >= 2 and request.isolation_level == READ_COMMITTED
                answers.append(_answer(replicas, topic.name, partition, version, committed))
        topics.append(ListOffsetsTopicResponse(name=topic.name, partitions=answers))
    return ListOffsetsResponse(topics=topics)
