"""OffsetForLeaderEpoch: where a leader epoch ended, for log truncation checks (KIP-101/320).

Every partition here has one epoch, 0, starting at the log start offset and still current, so
its end is the log end offset. As in Kafka's leader epoch cache: an epoch above the latest (and
-1) is unknown (epoch and offset -1, no error); an epoch below the first one answers that epoch
with the start offset of the first known epoch.
"""

from __future__ import annotations

from kafkacompat.broker.context import RequestContext
from kafkacompat.broker.fetch import leader_epoch_error
from kafkacompat.broker.replica_manager import ReplicaManager
from kafkacompat.broker.router import handles
from kafkacompat.errors import ErrorCode, KafkaError
from kafkacompat.protocol.messages.offset_for_leader_epoch_request import (
    OffsetForLeaderEpochRequest,
    OffsetForLeaderPartition,
)
from kafkacompat.protocol.messages.offset_for_leader_epoch_response import (
    EpochEndOffset,
    OffsetForLeaderEpochResponse,
    OffsetForLeaderTopicResult,
)

OFFSET_FOR_LEADER_EPOCH = 23
UNDEFINED_EPOCH = -1
UNDEFINED_EPOCH_OFFSET = -1


def end_offset_for_epoch(
    requested: int, latest_epoch: int, log_start_offset: int, log_end_offset: int
) -> tuple[int, int]:
    """``(epoch, end offset)`` for a log whose only epoch is ``latest_epoch``."""
    if requested == UNDEFINED_EPOCH or requested > latest_epoch:
        return UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET
    if requested == latest_epoch:
        return requested, log_end_offset
    return requested, log_start_offset


def _answer(
    replicas: ReplicaManager, topic: str, partition: OffsetForLeaderPartition
) -> EpochEndOffset:
    answer = EpochEndOffset(partition=partition.partition)
    try:
        log = replicas.log(topic, partition.partition)
    except KafkaError as exc:
        answer.error_code = exc.code
        return answer
    current = replicas.leader_epoch(topic, partition.partition)
    code = leader_epoch_error(partition.current_leader_epoch, current)
    if code != ErrorCode.NONE:
        answer.error_code = code
        return answer
    answer.leader_epoch, answer.end_offset = end_offset_for_epoch(
        partition.leader_epoch, current, log.log_start_offset, log.log_end_offset
    )
    return answer


@handles(OFFSET_FOR_LEADER_EPOCH)
async def handle_offset_for_leader_epoch(
    context: RequestContext, request: OffsetForLeaderEpochRequest
) -> OffsetForLeaderEpochResponse:
    replicas = context.broker.replicas
    return OffsetForLeaderEpochResponse(
        topics=[
            OffsetForLeaderTopicResult(
                topic=topic.topic,
                partitions=[_answer(replicas, topic.topic, p) for p in topic.partitions],
            )
            for topic in request.topics
        ]
    )
