"""DeleteRecords: move a partition's log start offset up (records below it are gone)."""

from __future__ import annotations

from kafkacompat.broker.context import RequestContext
from kafkacompat.broker.router import handles
from kafkacompat.errors import ErrorCode, KafkaError
from kafkacompat.protocol.messages.delete_records_request import API_KEY as DELETE_RECORDS
from kafkacompat.protocol.messages.delete_records_request import DeleteRecordsRequest
from kafkacompat.protocol.messages.delete_records_response import (
    DeleteRecordsPartitionResult,
    DeleteRecordsResponse,
    DeleteRecordsTopicResult,
)
from kafkacompat.security.acls import AclOperation, ResourceType


async def delete_records(context: RequestContext, topic: str, partition: int, offset: int) -> int:
    """Move the log start offset to ``offset`` (-1: the high watermark); the new low watermark."""
    hosted = context.led_partition(topic, partition)
    if not hosted.config.delete_enabled:
        raise KafkaError(
            ErrorCode.POLICY_VIOLATION,
            f"Records of partition {topic}-{partition} can not be deleted due to the configured "
            "policy",
        )
    return await hosted.delete_records(offset)


@handles(DELETE_RECORDS)
async def handle_delete_records(
    context: RequestContext, request: DeleteRecordsRequest
) -> DeleteRecordsResponse:
    topics = []
    for topic in request.topics:
        partitions = []
        if not context.authorize(AclOperation.DELETE, ResourceType.TOPIC, topic.name):
            denied = ErrorCode.TOPIC_AUTHORIZATION_FAILED
            partitions = [
                DeleteRecordsPartitionResult(p.partition_index, -1, denied)
                for p in topic.partitions
            ]
            topics.append(DeleteRecordsTopicResult(topic.name, partitions))
            continue
        for p in topic.partitions:
            try:
                low = await delete_records(context, topic.name, p.partition_index, p.offset)
            except KafkaError as error:
                partitions.append(DeleteRecordsPartitionResult(p.partition_index, -1, error.code))
            else:
                partitions.append(DeleteRecordsPartitionResult(p.partition_index, low, 0))
        topics.append(DeleteRecordsTopicResult(topic.name, partitions))
    return DeleteRecordsResponse(topics=topics)
