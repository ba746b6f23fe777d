"""AlterReplicaLogDirs: move replicas hosted here to another of this broker's log directories.

Each move is checked and queued, and answered then, as Kafka answers once the future replica
is started; it is copied while appends go on and swapped in while they wait (see
`PartitionManager.move_replica`). DescribeLogDirs shows the copy as a future replica meanwhile.
"""

from __future__ import annotations

from kafkacompat.broker.context import RequestContext
from kafkacompat.broker.router import handles
from kafkacompat.errors import ErrorCode, KafkaError
from kafkacompat.protocol.messages.alter_replica_log_dirs_request import (
    API_KEY as ALTER_REPLICA_LOG_DIRS,
)
from kafkacompat.protocol.messages.alter_replica_log_dirs_request import (
    AlterReplicaLogDirsRequest,
)
from kafkacompat.protocol.messages.alter_replica_log_dirs_response import (
    AlterReplicaLogDirPartitionResult,
    AlterReplicaLogDirsResponse,
    AlterReplicaLogDirTopicResult,
)
from kafkacompat.security.acls import AclOperation


@handles(ALTER_REPLICA_LOG_DIRS)
async def handle_alter_replica_log_dirs(
    context: RequestContext, request: AlterReplicaLogDirsRequest
) -> AlterReplicaLogDirsResponse:
    # Partition -> wanted directory; a partition named twice goes where it is named last.
    wanted: dict[str, dict[int, str]] = {}
    for directory in request.dirs:
        for topic in directory.topics:
            for index in topic.partitions:
                wanted.setdefault(topic.name, {})[index] = directory.path
    allowed = context.authorize_cluster(AclOperation.ALTER)
    results = []
    for name, partitions in wanted.items():
        answers = []
        for index, path in partitions.items():
            code = ErrorCode.CLUSTER_AUTHORIZATION_FAILED
            if allowed:
                code = _move(context, name, index, path)
            answers.append(AlterReplicaLogDirPartitionResult(index, code))
        results.append(AlterReplicaLogDirTopicResult(name, answers))
    return AlterReplicaLogDirsResponse(results=results)


def _move(context: RequestContext, topic: str, index: int, path: str) -> ErrorCode:
    try:
        context.services.partitions.request_move(topic, index, path)
    except KafkaError as error:
        return ErrorCode(error.code)
    return ErrorCode.NONE
