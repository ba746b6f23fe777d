"""DescribeLogDirs: each log directory, its space, and the size of each partition in it."""

from __future__ import annotations

from collections.abc import Callable

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
from kafkacompat.storage.log_dirs import LogDirReport


@handles(DESCRIBE_LOG_DIRS)
async def handle_describe_log_dirs(
    context: RequestContext, request: DescribeLogDirsRequest
) -> DescribeLogDirsResponse:
    if not context.authorize_cluster(AclOperation.DESCRIBE):
        return DescribeLogDirsResponse(
            error_code=ErrorCode.CLUSTER_AUTHORIZATION_FAILED, results=[]
        )
    image = context.image
    wanted: dict[str, set[int] | None]
    if request.topics is None:
        wanted = {t.name: None for t in image.list_topics()}
    else:
        wanted = {}
        for item in request.topics:
            known = wanted.get(item.topic) or set()
            wanted[item.topic] = known | set(item.partitions)
    partition_counts: dict[str, int] = {}
    for name in wanted:
        info = image.topic(name)
        if info is not None:
            partition_counts[name] = info.partitions

    def included(topic: str, index: int) -> bool:
        if topic not in partition_counts or not 0 <= index < partition_counts[topic]:
            return False
        partitions = wanted[topic]
        return partitions is None or index in partitions

    results = [
        _result(report, included) for report in context.services.partitions.log_dir_reports()
    ]
    return DescribeLogDirsResponse(error_code=ErrorCode.NONE, results=results)


def _result(report: LogDirReport, included: Callable[[str, int], bool]) -> DescribeLogDirsResult:
    directory = str(report.path.resolve())
    if report.usage is None:
        return DescribeLogDirsResult(
            error_code=ErrorCode.KAFKA_STORAGE_ERROR, log_dir=directory, topics=[]
        )
    # Only the replicas kept here, as Kafka: a cluster member holds some partitions only.
    by_topic: dict[str, list[DescribeLogDirsPartition]] = {}
    for replica in sorted(report.replicas, key=lambda r: (r.topic, r.partition, r.is_future)):
        if included(replica.topic, replica.partition):
            by_topic.setdefault(replica.topic, []).append(
                DescribeLogDirsPartition(
                    replica.partition, replica.size, offset_lag=0, is_future_key=replica.is_future
                )
            )
    total, usable = report.usage
    return DescribeLogDirsResult(
        error_code=ErrorCode.NONE,
        log_dir=directory,
        topics=[DescribeLogDirsTopic(name, parts) for name, parts in by_topic.items()],
        total_bytes=total,
        usable_bytes=usable,
    )
