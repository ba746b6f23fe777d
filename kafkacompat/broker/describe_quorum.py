"""DescribeQuorum (KIP-595, KIP-836, KIP-853): the controller quorum, as Kafka's KRaft tools
(``kafka-metadata-quorum.sh``, ``Admin.describeMetadataQuorum``) ask about it.

There is no Raft metadata log here: the cluster metadata lives in etcd (on a single broker, in
the broker alone), and one broker at a time is the controller. The answer about
``__cluster_metadata``-0 maps that onto Kafka's quorum, from the answering broker's image:

- ``leader_id``: the controller (a single broker is its own); ``leader_epoch``: the controller
  epoch, how many controllers the cluster has had (1 on a single broker, for good);
- ``high_watermark``: the metadata revision the image reflects: in a cluster the etcd revision
  (it only grows), on a single broker 0, as it keeps no metadata log;
- ``current_voters``: every registered broker, since each one campaigns for the controller;
  no observers. The leader's log end offset is the high watermark and its timestamps are now
  (as Kafka reports its leader); the other voters' are unknown here, -1;
- ``nodes`` (v2): each voter's endpoint on the listener the request came in on, as Metadata
  and DescribeCluster name brokers; no voter has a directory id (Kafka's zero UUID).

As Kafka: DESCRIBE on the cluster is required (CLUSTER_AUTHORIZATION_FAILED at the top level);
a request for anything but ``__cluster_metadata``-0 alone gets UNKNOWN_TOPIC_OR_PARTITION on
each partition it names; while no controller is known, NOT_LEADER_OR_FOLLOWER on the partition
(retriable: Kafka's admin client asks again). Unlike Kafka, which leaves v2's error messages
empty, an error comes with a message and no error with null (as the schema describes them).
"""

from __future__ import annotations

from kafkacompat.broker.context import RequestContext
from kafkacompat.broker.router import handles
from kafkacompat.clock import now_ms
from kafkacompat.cluster.metadata_image import MetadataImage
from kafkacompat.errors import ErrorCode
from kafkacompat.protocol.messages.describe_quorum_request import API_KEY as DESCRIBE_QUORUM
from kafkacompat.protocol.messages.describe_quorum_request import DescribeQuorumRequest
from kafkacompat.protocol.messages.describe_quorum_response import (
    DescribeQuorumResponse,
    Listener,
    Node,
    PartitionData,
    ReplicaState,
    TopicData,
)
from kafkacompat.security.acls import AclOperation

__all__ = ["METADATA_TOPIC", "describe_quorum"]

#: The topic of Kafka's metadata log, the one partition a quorum is asked about.
METADATA_TOPIC = "__cluster_metadata"
METADATA_PARTITION = 0
#: A log end offset or timestamp the leader does not know.
UNKNOWN = -1


def _asks_for_the_metadata_log(request: DescribeQuorumRequest) -> bool:
    """Whether the request names ``__cluster_metadata``-0 and nothing else (Kafka's check)."""
    if len(request.topics) != 1:
        return False
    [topic] = request.topics
    return (
        topic.topic_name == METADATA_TOPIC
        and len(topic.partitions) == 1
        and topic.partitions[0].partition_index == METADATA_PARTITION
    )


def _partition_errors(
    request: DescribeQuorumRequest, code: ErrorCode, message: str
) -> DescribeQuorumResponse:
    """Every partition the request names, with ``code``; no error at the top level."""
    return DescribeQuorumResponse(
        error_code=ErrorCode.NONE,
        error_message=None,
        topics=[
            TopicData(
                t.topic_name,
                [
                    PartitionData(p.partition_index, code, message, leader_id=UNKNOWN)
                    for p in t.partitions
                ],
            )
            for t in request.topics
        ],
    )


def _replica(node_id: int, leader_id: int, high_watermark: int, now: int) -> ReplicaState:
    if node_id == leader_id:
        return ReplicaState(
            node_id,
            log_end_offset=high_watermark,
            last_fetch_timestamp=now,
            last_caught_up_timestamp=now,
        )
    return ReplicaState(node_id, log_end_offset=UNKNOWN)


def _node(image: MetadataImage, node_id: int, listener: str) -> Node:
    broker = image.broker(node_id)
    endpoint = broker.endpoint(listener) if broker is not None else None
    if endpoint is None:
        return Node(node_id, [])
    return Node(node_id, [Listener(endpoint.listener, endpoint.host, endpoint.port)])


def describe_quorum(
    image: MetadataImage, request: DescribeQuorumRequest, listener: str, now: int
) -> DescribeQuorumResponse:
    """The quorum of ``image`` as DescribeQuorum tells it (the caller has authorized it);
    ``listener`` is the one the request came in on, ``now`` the time in milliseconds."""
    if not _asks_for_the_metadata_log(request):
        return _partition_errors(
            request,
            ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
            f"Only {METADATA_TOPIC}-{METADATA_PARTITION} has a quorum.",
        )
    leader = image.controller_id
    if leader < 0:
        return _partition_errors(
            request, ErrorCode.NOT_LEADER_OR_FOLLOWER, "There is no controller at the moment."
        )
    high_watermark = image.metadata_revision
    voters = sorted({b.node_id for b in image.brokers} | {leader})
    partition = PartitionData(
        partition_index=METADATA_PARTITION,
        error_code=ErrorCode.NONE,
        error_message=None,
        leader_id=leader,
        leader_epoch=image.controller_epoch,
        high_watermark=high_watermark,
        current_voters=[_replica(v, leader, high_watermark, now) for v in voters],
        observers=[],
    )
    return DescribeQuorumResponse(
        error_code=ErrorCode.NONE,
        error_message=None,
        topics=[TopicData(METADATA_TOPIC, [partition])],
        nodes=[_node(image, v, listener) for v in voters],
    )


@handles(DESCRIBE_QUORUM)
async def handle_describe_quorum(
    context: RequestContext, request: DescribeQuorumRequest
) -> DescribeQuorumResponse:
    if not context.authorize_cluster(AclOperation.DESCRIBE):
        return DescribeQuorumResponse(
            error_code=ErrorCode.CLUSTER_AUTHORIZATION_FAILED,
            error_message="Cluster authorization failed.",
        )
    return describe_quorum(context.image, request, context.session.listener_name, now_ms())
