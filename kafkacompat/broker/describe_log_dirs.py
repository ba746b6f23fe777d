"""DescribeLogDirs: the data directory, its space, and the size of each partition in it."""

from __future__ import annotations

import shutil

from kafkacompat.broker.context import RequestContext
from kafkacompat.broker.router import handles
from kafkacompat.errors import ErrorCode
from kafkacompat.protocol.messages.describe_log_dirs_request import API_KEY as DESCRIBE_LOG_DIRS
from kafkacompat.protocol.messages.describe_log_dirs_request import DescribeLogDirsRequest
from kafkacompat.protocol.messages.describe_log_dirs_response import (
    DescribeLogDirsPartition,
    DescribeLogDirsResponse,
    DescribeLogDirsResult,
    DescribeLogDirsTopic,
)
from kafkacompat.security.acls import AclOperation


@handles(DESCRIBE_LOG_DIRS)
async def handle_describe_log_dirs(
    context: RequestContext, request: DescribeLogDirsRequest
) -> DescribeLogDirsResponse:
    if not context.authorize_cluster(AclOperation.DESCRIBE):
        return DescribeLogDirsResponse(
            error_code=ErrorCode.CLUSTER_AUTHORIZATION_FAILED, results=[]
        )
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
        # Only the replicas kept here, as Kafka: a cluster member holds some partitions only.
        replicas = [
            replica
            for index in indexes
            if 0 <= index < info.partitions
            and (replica := hosted.partition_or_none(name, index)) is not None
        ]
        described = [
            DescribeLogDirsPartition(
                replica.index, replica.size_in_bytes, offset_lag=0, is_future_key=False
            )
            for replica in replicas
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
