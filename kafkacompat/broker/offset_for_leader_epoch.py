"""OffsetForLeaderEpoch: where a leader epoch ended, for log truncation checks (KIP-101/320).

The partition's leader epoch cache answers (see `LeaderEpochCache.end_offset_for`); the request's
current leader epoch is checked first, as for fetches (KIP-320).
"""

from __future__ import annotations

from kafkacompat.broker.context import PartitionLookup, RequestContext
from kafkacompat.broker.fetch import leader_epoch_error
from kafkacompat.broker.router import handles
from kafkacompat.errors import ErrorCode, KafkaError
from kafkacompat.protocol.messages.offset_for_leader_epoch_request import (
    API_KEY as OFFSET_FOR_LEADER_EPOCH,
)
from kafkacompat.protocol.messages.offset_for_leader_epoch_request import (
    OffsetForLeaderEpochRequest,
    OffsetForLeaderPartition,
)
from kafkacompat.protocol.messages.offset_for_leader_epoch_response import (
    EpochEndOffset,
    OffsetForLeaderEpochResponse,
    OffsetForLeaderTopicResult,
)
from kafkacompat.security.acls import AclOperation, ResourceType


def _answer(
    partitions: PartitionLookup, topic: str, partition: OffsetForLeaderPartition
) -> EpochEndOffset:
    answer = EpochEndOffset(partition=partition.partition)
    try:
        hosted = partitions(topic, partition.partition)
    except KafkaError as exc:
        answer.error_code = exc.code
        return answer
    code = leader_epoch_error(partition.current_leader_epoch, hosted.leader_epoch)
    if code != ErrorCode.NONE:
        answer.error_code = code
        return answer
    answer.leader_epoch, answer.end_offset = hosted.end_offset_for_epoch(partition.leader_epoch)
    return answer


@handles(OFFSET_FOR_LEADER_EPOCH)
async def handle_offset_for_leader_epoch(
    context: RequestContext, request: OffsetForLeaderEpochRequest
) -> OffsetForLeaderEpochResponse:
    partitions = context.led_partition
    denied: set[str] = set()
    if context.services.security.authorizer is not None and not context.authorize_cluster(
        AclOperation.CLUSTER_ACTION
    ):
        denied = {
            t.topic
            for t in request.topics
            if not context.authorize(AclOperation.DESCRIBE, ResourceType.TOPIC, t.topic)
        }
    return OffsetForLeaderEpochResponse(
        topics=[
            OffsetForLeaderTopicResult(
                topic=topic.topic,
                partitions=[
                    EpochEndOffset(
                        error_code=ErrorCode.TOPIC_AUTHORIZATION_FAILED, partition=p.partition
                    )
                    if topic.topic in denied
                    else _answer(partitions, topic.topic, p)
                    for p in topic.partitions
                ],
            )
            for topic in request.topics
        ]
    )
