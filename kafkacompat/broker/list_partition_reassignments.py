"""ListPartitionReassignments: the partition reassignments in progress (KIP-455).

As Kafka: DESCRIBE on the cluster is required (else CLUSTER_AUTHORIZATION_FAILED); no topics
means every partition; each ongoing reassignment shows the partition's replicas (target and
original together) and the replicas being added and removed.
"""

from __future__ import annotations

from kafkacompat.broker.context import RequestContext
from kafkacompat.broker.router import handles
from kafkacompat.errors import ErrorCode
from kafkacompat.protocol.messages.list_partition_reassignments_request import (
    API_KEY as LIST_PARTITION_REASSIGNMENTS,
)
from kafkacompat.protocol.messages.list_partition_reassignments_request import (
    ListPartitionReassignmentsRequest,
)
from kafkacompat.protocol.messages.list_partition_reassignments_response import (
    ListPartitionReassignmentsResponse,
    OngoingPartitionReassignment,
    OngoingTopicReassignment,
)
from kafkacompat.security.acls import AclOperation


@handles(LIST_PARTITION_REASSIGNMENTS)
async def handle_list_partition_reassignments(
    context: RequestContext, request: ListPartitionReassignmentsRequest
) -> ListPartitionReassignmentsResponse:
    if not context.authorize_cluster(AclOperation.DESCRIBE):
        return ListPartitionReassignmentsResponse(
            error_code=ErrorCode.CLUSTER_AUTHORIZATION_FAILED, error_message=None
        )
    asked: dict[str, list[int]] | None = None
    if request.topics is not None:
        asked = {}
        for topic in request.topics:
            asked.setdefault(topic.name, []).extend(topic.partition_indexes)
    ongoing = await context.services.controller.list_partition_reassignments(asked)
    by_topic: dict[str, list[OngoingPartitionReassignment]] = {}
    for found in ongoing:
        by_topic.setdefault(found.topic, []).append(
            OngoingPartitionReassignment(
                found.partition, list(found.replicas), list(found.adding), list(found.removing)
            )
        )
    return ListPartitionReassignmentsResponse(
        error_message=None,
        topics=[OngoingTopicReassignment(name, parts) for name, parts in by_topic.items()],
    )
