"""DeleteRecords (move a partition's log start offset up) and DescribeLogDirs (the data directory)."""

from __future__ import annotations

import shutil

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
from kafkacompat.protocol.messages.describe_log_dirs_request import API_KEY as DESCRIBE_LOG_DIRS
from kafkacompat.protocol.messages.describe_log_dirs_request import DescribeLogDirsRequest
from kafkacompat.protocol.messages.describe_log_dirs_response import (
    DescribeLogDirsPartition,
    DescribeLogDirsResponse,
    DescribeLogDirsResult,
    DescribeLogDirsTopic,
)


async def delete_records(context: RequestContext, topic: str, partition: int, offset: int) -> int:
    """Move the log start offset to ``offset`` (-1: the high watermark); the new low watermark."""
    hosted = context.services.partitions.partition(topic, partition)
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
        for p in topic.partitions:
            try:
                low = await delete_records(context, topic.name, p.partition_index, p.offset)
            except KafkaError as error:
                partitions.append(DeleteRecordsPartitionResult(p.partition_index, -1, error.code))
            else:
                partitions.append(DeleteRecordsPartitionResult(p.partition_index, low, 0))
        topics.append(DeleteRecordsTopicResult(topic.name, partitions))
    return DeleteRecordsResponse(topics=topics)


@handles(DESCRIBE_LOG_DIRS)
async def handle_describe_log_dirs(
    context: RequestContext, request: DescribeLogDirsRequest
) -> DescribeLogDirsResponse:
    hosted = context.services.partitions
    image = context.image
    wanted: dict[str, set[int] | None]
    if request.topics is None:
        wanted = {t.name: None for t in image.list_topics()}
    else:
        wanted = {}
        for item in request.topics:
            known = wanted.get(item.topic) or set()
            wanted[item.topic] = known | set(item.partitions)
    topics = []
    for name, partitions in wanted.items():
        info = image.topic(name)
        if info is None:
            continue
        indexes = range(info.partitions) if partitions is None else sorted(partitions)
        described = [
            DescribeLogDirsPartition(
                index,
                hosted.partition(name, index).size_in_bytes,
                offset_lag=0,
                is_future_key=False,
            )
            for index in indexes
            if 0 <= index < info.partitions
        ]
        if described:
            topics.append(DescribeLogDirsTopic(name, described))
    directory = hosted.data_dir.resolve()
    usage = shutil.disk_usage(directory)
    result = DescribeLogDirsResult(
        error_code=ErrorCode.NONE,
        log_dir=str(directory),
        topics=topics,
        total_bytes=usage.total,
        usable_bytes=usage.free,
    )
    return DescribeLogDirsResponse(error_code=ErrorCode.NONE, results=[result])
