"""AlterPartitionReassignments: move partitions to other replicas, or cancel such a move (KIP-455).

As Kafka: ALTER on the cluster is required (else CLUSTER_AUTHORIZATION_FAILED for the request);
each partition is answered once its reassignment is started (or cancelled), with
INVALID_REPLICA_ASSIGNMENT, UNKNOWN_TOPIC_OR_PARTITION or NO_REASSIGNMENT_IN_PROGRESS when it
cannot be. The controller completes a started reassignment once its target replicas are in sync
(cluster/reassignment.py).
"""

from __future__ import annotations

from collections.abc import Sequence

from kafkacompat.broker.context import RequestContext
from kafkacompat.broker.router import handles
from kafkacompat.cluster.reassignment import ReassignmentResult, RequestedReassignment
from kafkacompat.errors import ErrorCode
from kafkacompat.protocol.messages.alter_partition_reassignments_request import (
    API_KEY as ALTER_PARTITION_REASSIGNMENTS,
)
from kafkacompat.protocol.messages.alter_partition_reassignments_request import (
    AlterPartitionReassignmentsRequest,
)
from kafkacompat.protocol.messages.alter_partition_reassignments_response import (
    AlterPartitionReassignmentsResponse,
    ReassignablePartitionResponse,
    ReassignableTopicResponse,
)
from kafkacompat.security.acls import AclOperation


def _response(
    error: ErrorCode, message: str | None, results: Sequence[ReassignmentResult]
) -> AlterPartitionReassignmentsResponse:
    by_topic: dict[str, list[ReassignablePartitionResponse]] = {}
    for result in results:
        by_topic.setdefault(result.topic, []).append(
            ReassignablePartitionResponse(result.partition, result.error, result.message)
        )
    return AlterPartitionReassignmentsResponse(
        error_code=error,
        error_message=message,
        responses=[ReassignableTopicResponse(name, parts) for name, parts in by_topic.items()],
    )


@handles(ALTER_PARTITION_REASSIGNMENTS)
async def handle_alter_partition_reassignments(
    context: RequestContext, request: AlterPartitionReassignmentsRequest
) -> AlterPartitionReassignmentsResponse:
    if not context.authorize_cluster(AclOperation.ALTER):
        return _response(ErrorCode.CLUSTER_AUTHORIZATION_FAILED, None, [])
    requested: list[RequestedReassignment] = [
        (topic.name, p.partition_index, p.replicas)
        for topic in request.topics
        for p in topic.partitions
    ]
    results = await context.services.controller.alter_partition_reassignments(
        requested, max(request.timeout_ms, 0) / 1000
    )
    return _response(ErrorCode.NONE, None, results)
