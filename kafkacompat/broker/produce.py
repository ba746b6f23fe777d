"""Produce: validate each partition's record set and append it, answering per partition.

acks=1 answers once the leader has appended (and fsynced, when the topic's ``flush.messages``
asks for it). acks=-1 checks ``min.insync.replicas`` against the ISR before appending
(NOT_ENOUGH_REPLICAS) and answers once the high watermark has passed the records, every
in-sync replica holding them (at once where this broker is the only replica), or with
REQUEST_TIMED_OUT after the request's ``timeout_ms`` (NOT_LEADER_OR_FOLLOWER when leadership
moved meanwhile); NOT_ENOUGH_REPLICAS_AFTER_APPEND when the ISR shrank below the minimum.
acks=0 gets no response; as in Kafka, an error then closes the connection so the client learns
that something failed.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import trio

from kafkacompat.broker.context import RequestContext
from kafkacompat.broker.router import handles
from kafkacompat.errors import (
    ErrorCode,
    KafkaError,
    ProtocolError,
    RecordValidationError,
    is_resource_exhausted,
)
from kafkacompat.partitions.partition import Partition
from kafkacompat.protocol.compression import Codec
from kafkacompat.protocol.messages.produce_request import API_KEY as PRODUCE
from kafkacompat.protocol.messages.produce_request import PartitionProduceData, ProduceRequest
from kafkacompat.protocol.messages.produce_response import (
    BatchIndexAndErrorMessage,
    PartitionProduceResponse,
    ProduceResponse,
    TopicProduceResponse,
)
from kafkacompat.protocol.records import (
    ATTRIBUTES_OFFSET,
    COMPRESSION_MASK,
    HEADER_SIZE,
    LOG_OVERHEAD,
    MAGIC_OFFSET,
    TRANSACTIONAL_BIT,
    read_header,
)
from kafkacompat.security.acls import AclOperation, ResourceType
from kafkacompat.storage.topic_names import INTERNAL_TOPICS

log = logging.getLogger("kafkacompat.produce")
_I32 = struct.Struct(">i")
_I16 = struct.Struct(">h")

VALID_ACKS = (0, 1, -1)
#: From this version a partition's records must be exactly one magic-2 batch.
FIRST_V2_ONLY_VERSION = 3
#: zstd needs Produce v7 (KIP-110).
FIRST_ZSTD_VERSION = 7
#: record_errors and error_message exist from v8.
FIRST_ERROR_MESSAGE_VERSION = 8


def validate_records(version: int, records: memoryview | bytes | None) -> None:
    """The request-level checks Kafka makes before the log sees the records."""
    if version < FIRST_V2_ONLY_VERSION:
        if not records:
            raise KafkaError(ErrorCode.INVALID_RECORD, "no records")
        return
    if not records or len(records) <= MAGIC_OFFSET:
        raise KafkaError(
            ErrorCode.INVALID_RECORD,
            f"Produce v{version} must have at least one record batch per partition",
        )
    if records[MAGIC_OFFSET] != 2:
        raise KafkaError(
            ErrorCode.INVALID_RECORD,
            f"Produce v{version} may only carry record batches with magic 2",
        )
    if len(records) < HEADER_SIZE:
        return  # storage answers CORRUPT_MESSAGE for the truncated header
    (batch_length,) = _I32.unpack_from(records, 8)
    if version < FIRST_ZSTD_VERSION:
        (attributes,) = _I16.unpack_from(records, ATTRIBUTES_OFFSET)
        if attributes & COMPRESSION_MASK == Codec.ZSTD:
            raise KafkaError(
                ErrorCode.UNSUPPORTED_COMPRESSION_TYPE,
                f"zstd needs Produce v{FIRST_ZSTD_VERSION} or later, not v{version}",
            )
    if batch_length >= 0 and len(records) > batch_length + LOG_OVERHEAD:
        raise KafkaError(
            ErrorCode.INVALID_RECORD,
            f"Produce v{version} may only carry exactly one record batch per partition",
        )


def _error(index: int, error: KafkaError, version: int) -> PartitionProduceResponse:
    """A refused partition; from v8 with the message and, for record-level faults, which records
    of the batch were at fault (``record_errors``)."""
    message = error.message or error.code.name
    record_errors = []
    if isinstance(error, RecordValidationError):
        record_errors = [BatchIndexAndErrorMessage(i, text) for i, text in error.record_errors]
    return PartitionProduceResponse(
        index=index,
        error_code=error.code,
        base_offset=-1,
        log_append_time_ms=-1,
        log_start_offset=-1,
        record_errors=record_errors,
        error_message=message if version >= FIRST_ERROR_MESSAGE_VERSION else None,
    )


def is_transactional(records: memoryview | bytes) -> bool:
    """Whether the set's first batch is a v2 batch with the transactional attribute (Produce
    v3+ carries exactly one batch)."""
    if len(records) < HEADER_SIZE or records[MAGIC_OFFSET] != 2:
        return False
    (attributes,) = _I16.unpack_from(records, ATTRIBUTES_OFFSET)
    return bool(attributes & TRANSACTIONAL_BIT)


def verify_transactional(
    context: RequestContext,
    transactional_id: str | None,
    topic: str,
    partition: int,
    records: memoryview | bytes,
) -> None:
    """A transactional batch must go to a partition added to its producer's open transaction
    (Kafka's produce verification, KIP-890). In a cluster, a transaction coordinated by another
    broker is not verified here (as Kafka before 3.6)."""
    if not is_transactional(records):
        return
    txns = context.services.transactions
    if transactional_id is not None and txns.coordinator_error(transactional_id):
        return
    header = read_header(records)
    code = txns.coordinator.check_produce(
        transactional_id, header.producer_id, header.producer_epoch, (topic, partition)
    )
    if code != ErrorCode.NONE:
        raise KafkaError(code, f"transactional batch for {topic}-{partition}: {code.name}")


@dataclass(slots=True)
class AwaitingReplicas:
    """An acks=-1 answer held until the high watermark passes ``end_offset``."""

    partition: Partition
    end_offset: int
    response: PartitionProduceResponse


def _in_sync(partition: Partition) -> int:
    replicas = partition.replicas
    return 1 if replicas is None else replicas.in_sync_count


async def produce_partition(
    context: RequestContext,
    topic: str,
    data: PartitionProduceData,
    acks: int,
    transactional_id: str | None = None,
    awaiting: list[AwaitingReplicas] | None = None,
) -> PartitionProduceResponse:
    """Append one partition's records; at acks=-1 with followers the answer is added to
    ``awaiting`` (to be completed by `await_replicas`)."""
    version = context.api_version
    index, records = data.index, data.records
    try:
        services = context.services
        if services.metadata.image.led_elsewhere(topic, index, services.node_id):
            raise KafkaError(
                ErrorCode.NOT_LEADER_OR_FOLLOWER,
                f"broker {services.node_id} does not lead {topic}-{index}",
            )
        # As Kafka: a name that is not a topic here, legal or not, is an unknown topic.
        partition = services.partitions.partition_or_none(topic, index)
        if partition is None:
            raise KafkaError(
                ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                f"this broker does not host {topic}-{index}",
            )
        if partition.topic in INTERNAL_TOPICS:
            raise KafkaError(
                ErrorCode.INVALID_TOPIC_EXCEPTION, f"Cannot append to internal topic {topic}"
            )
        validate_records(version, records)
        if acks not in VALID_ACKS:
            raise KafkaError(
                ErrorCode.INVALID_REQUIRED_ACKS, f"acks must be 0, 1 or -1, not {acks}"
            )
        if acks == -1:
            min_isr, in_sync = partition.config.min_insync_replicas, _in_sync(partition)
            if in_sync < min_isr:
                raise KafkaError(
                    ErrorCode.NOT_ENOUGH_REPLICAS,
                    f"{topic}-{index} has {in_sync} in-sync replica(s), "
                    f"min.insync.replicas is {min_isr}",
                )
        assert records is not None
        verify: Callable[[], None] | None = None
        if is_transactional(records):
            verify = partial(verify_transactional, context, transactional_id, topic, index, records)
        result = await partition.append(records, verify=verify)
        partition.records_in += result.record_count
        partition.bytes_in += len(records)
    except KafkaError as error:
        return _error(index, error, version)
    except OSError as exc:
        if is_resource_exhausted(exc):
            log.error("append to %s-%d failed: %s", topic, index, exc)
        else:
            log.exception("append to %s-%d failed", topic, index)
        return _error(index, KafkaError(ErrorCode.KAFKA_STORAGE_ERROR, str(exc)), version)
    response = PartitionProduceResponse(
        index=index,
        error_code=ErrorCode.NONE,
        base_offset=result.base_offset,
        log_append_time_ms=result.log_append_time,
        log_start_offset=result.log_start_offset,
    )
    if acks == -1 and awaiting is not None and partition.replicas is not None:
        awaiting.append(AwaitingReplicas(partition, result.last_offset + 1, response))
    return response


async def await_replicas(awaiting: list[AwaitingReplicas], timeout_ms: int) -> None:
    """Complete held acks=-1 answers: when the high watermark passed the records, with
    NOT_ENOUGH_REPLICAS_AFTER_APPEND if the ISR is below ``min.insync.replicas`` by then;
    REQUEST_TIMED_OUT when it did not within ``timeout_ms``."""
    deadline = trio.current_time() + max(timeout_ms, 0) / 1000
    for held in awaiting:
        partition, response = held.partition, held.response
        committed = await partition.wait_for_high_watermark(held.end_offset, deadline)
        if not committed and partition.following:
            # Leadership moved on meanwhile: the client retries at the new leader.
            response.error_code = ErrorCode.NOT_LEADER_OR_FOLLOWER
        elif not committed:
            response.error_code = ErrorCode.REQUEST_TIMED_OUT
        elif _in_sync(partition) < partition.config.min_insync_replicas:
            response.error_code = ErrorCode.NOT_ENOUGH_REPLICAS_AFTER_APPEND


def _unauthorized(context: RequestContext, request: ProduceRequest) -> KafkaError | None:
    """TRANSACTIONAL_ID_AUTHORIZATION_FAILED for a request with transactional records whose
    principal may not WRITE its transactional id (Kafka then refuses the whole request)."""
    transactional = any(
        data.records is not None and is_transactional(data.records)
        for topic_data in request.topic_data
        for data in topic_data.partition_data
    )
    if not transactional:
        return None
    tid = request.transactional_id
    if tid is not None and context.authorize(
        AclOperation.WRITE, ResourceType.TRANSACTIONAL_ID, tid
    ):
        return None
    return KafkaError(ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED)


def _every_partition(
    context: RequestContext, request: ProduceRequest, error: KafkaError
) -> ProduceResponse | None:
    """``error`` for every partition of the request (none sent, connection closed, at acks=0)."""
    if request.acks == 0:
        raise ProtocolError(f"acks=0 produce refused ({error.code.name})")
    return ProduceResponse(
        responses=[
            TopicProduceResponse(
                name=t.name,
                partition_responses=[
                    _error(p.index, error, context.api_version) for p in t.partition_data
                ],
            )
            for t in request.topic_data
        ]
    )


@handles(PRODUCE)
async def handle_produce(
    context: RequestContext, request: ProduceRequest
) -> ProduceResponse | None:
    acks, transactional_id = request.acks, request.transactional_id
    authorizer = context.services.security.authorizer
    if authorizer is not None:
        denied = _unauthorized(context, request)
        if denied is not None:
            return _every_partition(context, request, denied)
    responses = []
    awaiting: list[AwaitingReplicas] = []
    for topic_data in request.topic_data:
        name = topic_data.name
        partitions = []
        if authorizer is not None and not context.authorize(
            AclOperation.WRITE, ResourceType.TOPIC, name
        ):
            denied = KafkaError(ErrorCode.TOPIC_AUTHORIZATION_FAILED)
            for data in topic_data.partition_data:
                partitions.append(_error(data.index, denied, context.api_version))
        else:
            for data in topic_data.partition_data:
                partitions.append(
                    await produce_partition(context, name, data, acks, transactional_id, awaiting)
                )
        responses.append(TopicProduceResponse(name=name, partition_responses=partitions))
    if awaiting:
        await await_replicas(awaiting, request.timeout_ms)
    if acks == 0:
        failed = [
            f"{t.name}-{p.index}: {ErrorCode(p.error_code).name}"
            for t in responses
            for p in t.partition_responses
            if p.error_code != ErrorCode.NONE
        ]
        if failed:
            raise ProtocolError(f"acks=0 produce failed ({', '.join(failed)})")
        return None
    return ProduceResponse(responses=responses)
