"""ElectLeaders: preferred or unclean leader elections asked for by an administrator.

As Kafka: ALTER on the cluster is required (else CLUSTER_AUTHORIZATION_FAILED, for the request
and each partition named); version 0 has no election type and means PREFERRED; no list of
partitions means every partition, and then the partitions that needed no election are left out
of the answer. The controller carries the elections out (cluster/leader_election.py) and each
partition is answered once the metadata shows its election, or REQUEST_TIMED_OUT.
"""

from __future__ import annotations

from collections.abc import Sequence

from kafkacompat.broker.context import RequestContext
from kafkacompat.broker.router import handles
from kafkacompat.cluster.leader_election import ElectionResult, ElectionType
from kafkacompat.errors import ErrorCode
from kafkacompat.protocol.messages.elect_leaders_request import API_KEY as ELECT_LEADERS
from kafkacompat.protocol.messages.elect_leaders_request import ElectLeadersRequest
from kafkacompat.protocol.messages.elect_leaders_response import (
    ElectLeadersResponse,
    PartitionResult,
    ReplicaElectionResult,
)
from kafkacompat.security.acls import AclOperation


def _requested(request: ElectLeadersRequest) -> list[tuple[str, int]] | None:
    if request.topic_partitions is None:
        return None
    return [(t.topic, p) for t in request.topic_partitions for p in t.partitions]


def _all_failed(
    requested: Sequence[tuple[str, int]] | None, error: ErrorCode, message: str | None
) -> list[ElectionResult]:
    return [ElectionResult(topic, p, error, message) for topic, p in dict.fromkeys(requested or ())]


def _response(error: ErrorCode, results: Sequence[ElectionResult]) -> ElectLeadersResponse:
    by_topic: dict[str, list[PartitionResult]] = {}
    for result in results:
        by_topic.setdefault(result.topic, []).append(
            PartitionResult(result.partition, result.error, result.message)
        )
    return ElectLeadersResponse(
        error_code=error,
        replica_election_results=[
            ReplicaElectionResult(topic, partitions) for topic, partitions in by_topic.items()
        ],
    )


@handles(ELECT_LEADERS)
async def handle_elect_leaders(
    context: RequestContext, request: ElectLeadersRequest
) -> ElectLeadersResponse:
    requested = _requested(request)
    if not context.authorize_cluster(AclOperation.ALTER):
        denied = ErrorCode.CLUSTER_AUTHORIZATION_FAILED
        return _response(denied, _all_failed(requested, denied, None))
    if request.election_type not in (ElectionType.PREFERRED, ElectionType.UNCLEAN):
        message = f"Unknown election type {request.election_type}: expected 0 or 1."
        invalid = ErrorCode.INVALID_REQUEST
        return _response(invalid, _all_failed(requested, invalid, message))
    results = await context.services.controller.elect_leaders(
        ElectionType(request.election_type), requested, max(request.timeout_ms, 0) / 1000
    )
    if requested is None:
        results = [r for r in results if r.error != ErrorCode.ELECTION_NOT_NEEDED]
    return _response(ErrorCode.NONE, results)
