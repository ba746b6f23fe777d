"""Transaction markers for partitions that other brokers of the cluster lead, sent as Kafka's
coordinator sends them: WriteTxnMarkers to each leader (`RemoteMarkers` of the transaction
service). A partition of ``__consumer_offsets`` in a marker settles the transaction's pending
offsets of the groups that partition holds, on the broker that coordinates them."""

from __future__ import annotations

from itertools import groupby

from kafkacompat.cluster.broker_client import BrokerClients, BrokerUnreachable
from kafkacompat.cluster.metadata_image import MetadataView
from kafkacompat.coordinators.transaction_coordinator import Completion
from kafkacompat.errors import ErrorCode, KafkaError
from kafkacompat.protocol.messages.write_txn_markers_request import API_KEY as WRITE_TXN_MARKERS
from kafkacompat.protocol.messages.write_txn_markers_request import (
    WritableTxnMarker,
    WritableTxnMarkerTopic,
    WriteTxnMarkersRequest,
)

__all__ = ["ClusterMarkers"]


class ClusterMarkers:
    """Sends markers to the leaders named by the current metadata image."""

    def __init__(self, node_id: int, view: MetadataView, clients: BrokerClients) -> None:
        self.node_id = node_id
        self._view = view
        self._clients = clients

    def leader_of(self, topic: str, partition: int) -> int | None:
        found = self._view.image.topic(topic)
        placed = None if found is None else found.partition(partition)
        if placed is None or placed.leader in (-1, self.node_id):
            return None
        return placed.leader

    async def write_markers(
        self, node_id: int, completion: Completion, partitions: list[tuple[str, int]]
    ) -> None:
        topics = [
            WritableTxnMarkerTopic(topic, [p for _, p in group])
            for topic, group in groupby(sorted(partitions), key=lambda tp: tp[0])
        ]
        marker = WritableTxnMarker(
            completion.producer_id, completion.producer_epoch, completion.commit, topics, 0
        )
        try:
            response = await self._clients.request(
                node_id, WRITE_TXN_MARKERS, WriteTxnMarkersRequest([marker])
            )
        except BrokerUnreachable as exc:
            raise KafkaError(ErrorCode.COORDINATOR_NOT_AVAILABLE, str(exc)) from None
        for result in response.markers:
            for topic in result.topics:
                for p in topic.partitions:
                    if p.error_code not in (ErrorCode.NONE, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION):
                        raise KafkaError(
                            ErrorCode(p.error_code),
                            f"broker {node_id} did not write the marker to "
                            f"{topic.name}-{p.partition_index}",
                        )
