"""WriteTxnMarkers: markers written on request, as an administrator's tool aborts a hanging
transaction with (``kafka-transactions.sh abort``, KIP-664). This broker's own coordinator
writes its markers directly, never through this API."""

from __future__ import annotations

import logging

from kafkacompat.broker.context import RequestContext
from kafkacompat.broker.router import handles
from kafkacompat.clock import now_ms
from kafkacompat.errors import ErrorCode, KafkaError, is_resource_exhausted
from kafkacompat.partitions.manager import PartitionManager
from kafkacompat.protocol.control_records import control_batch
from kafkacompat.protocol.messages.write_txn_markers_request import API_KEY as WRITE_TXN_MARKERS
from kafkacompat.protocol.messages.write_txn_markers_request import (
    WritableTxnMarker,
    WriteTxnMarkersRequest,
)
from kafkacompat.protocol.messages.write_txn_markers_response import (
    WritableTxnMarkerPartitionResult,
    WritableTxnMarkerResult,
    WritableTxnMarkerTopicResult,
    WriteTxnMarkersResponse,
)
from kafkacompat.security.acls import AclOperation
from kafkacompat.storage.topic_names import OFFSETS_TOPIC

log = logging.getLogger("kafkacompat.transactions")


async def _write(
    partitions: PartitionManager,
    topic: str,
    partition: int,
    marker: WritableTxnMarker,
    batch: bytes,
) -> ErrorCode:
    hosted = partitions.partition_or_none(topic, partition)
    if hosted is None:
        return ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    try:
        await hosted.write_marker(batch, commit=marker.transaction_result, check_epoch=True)
    except KafkaError as exc:
        return exc.code
    except OSError as exc:
        if is_resource_exhausted(exc):
            log.error("writing a marker to %s-%d failed: %s", topic, partition, exc)
        else:
            log.exception("writing a marker to %s-%d failed", topic, partition)
        return ErrorCode.KAFKA_STORAGE_ERROR
    return ErrorCode.NONE


def _settle_offsets(
    context: RequestContext, marker: WritableTxnMarker, partitions: list[int]
) -> WritableTxnMarkerTopicResult:
    """A marker for partitions of ``__consumer_offsets``: the transaction's pending offsets of
    the groups they hold are committed or dropped here (NOT_COORDINATOR where they are not)."""
    txns = context.services.transactions
    results = []
    for p in partitions:
        error = ErrorCode.NONE
        if p not in txns.groups_topic.owned:
            error = ErrorCode.NOT_COORDINATOR
        else:
            txns.settle_offsets_partition(p, marker.producer_id, marker.transaction_result)
        results.append(WritableTxnMarkerPartitionResult(p, error))
    return WritableTxnMarkerTopicResult(OFFSETS_TOPIC, results)


@handles(WRITE_TXN_MARKERS)
async def handle_write_txn_markers(
    context: RequestContext, request: WriteTxnMarkersRequest
) -> WriteTxnMarkersResponse:
    hosted = context.services.partitions
    results = []
    # Brokers write markers: ALTER or CLUSTER_ACTION on the cluster.
    if not (
        context.authorize_cluster(AclOperation.ALTER)
        or context.authorize_cluster(AclOperation.CLUSTER_ACTION)
    ):
        denied = ErrorCode.CLUSTER_AUTHORIZATION_FAILED
        for marker in request.markers:
            topics = [
                WritableTxnMarkerTopicResult(
                    t.name,
                    [WritableTxnMarkerPartitionResult(p, denied) for p in t.partition_indexes],
                )
                for t in marker.topics
            ]
            results.append(WritableTxnMarkerResult(marker.producer_id, topics))
        return WriteTxnMarkersResponse(markers=results)
    for marker in request.markers:
        batch = control_batch(
            marker.producer_id,
            marker.producer_epoch,
            commit=marker.transaction_result,
            timestamp=now_ms(),
        )
        topics = []
        for topic in marker.topics:
            if topic.name == OFFSETS_TOPIC:
                topics.append(_settle_offsets(context, marker, topic.partition_indexes))
                continue
            partitions = [
                WritableTxnMarkerPartitionResult(
                    p, await _write(hosted, topic.name, p, marker, batch)
                )
                for p in topic.partition_indexes
            ]
            topics.append(WritableTxnMarkerTopicResult(topic.name, partitions))
        results.append(WritableTxnMarkerResult(marker.producer_id, topics))
    await context.services.groups.settled()
    return WriteTxnMarkersResponse(markers=results)
