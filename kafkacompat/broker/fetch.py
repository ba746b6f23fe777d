"""Fetch: long-polled reads of stored batches, with fetch sessions and down-conversion.

The v4+ path never decodes records: each partition's answer is the stored batch bytes, read
from the file slices the log hands back (one place, `_records`, turns slices into bytes, so a
sendfile path can later keep them as slices). Fetch v0-v3 get legacy message sets (magic 0 for
v0-v1, magic 1 for v2-v3) from `down_conversion`.

Size limits follow Kafka: from v3 the response ``max_bytes`` and each ``partition_max_bytes``
are soft for the first batch of the first partition with data (KIP-74), later partitions get
what is left; v0-v2 limit each partition alone, strictly, and an oversized first batch is
returned cut at the limit (old clients report it as too large for their fetch size).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import trio

from kafkacompat.broker.context import RequestContext
from kafkacompat.broker.fetch_sessions import (
    FetchContext,
    PartitionKey,
    PartitionParams,
    new_context,
    session_cache,
)
from kafkacompat.broker.replica_manager import ReplicaManager, now_ms
from kafkacompat.broker.router import handles
from kafkacompat.errors import ErrorCode, KafkaError
from kafkacompat.protocol.down_conversion import down_convert
from kafkacompat.protocol.messages.fetch_request import FetchRequest
from kafkacompat.protocol.messages.fetch_response import (
    AbortedTransaction,
    FetchableTopicResponse,
    FetchResponse,
    NodeEndpoint,
    PartitionData,
)
from kafkacompat.storage.partition_log import PartitionLog, ReadResult

FETCH = 1
READ_COMMITTED = 1
#: From this version topics are named by id.
FIRST_TOPIC_ID_VERSION = 13
#: Up to this version partition limits are hard and there is no response limit.
LAST_HARD_LIMIT_VERSION = 2
#: Up to this version zstd data cannot be returned.
LAST_NO_ZSTD_VERSION = 9
NO_EPOCH = -1


def leader_epoch_error(requested: int, current: int) -> ErrorCode:
    """Kafka's current-leader-epoch check: -1 skips it."""
    if requested in (NO_EPOCH, current):
        return ErrorCode.NONE
    return ErrorCode.FENCED_LEADER_EPOCH if requested < current else ErrorCode.UNKNOWN_LEADER_EPOCH


def error_partition(partition: int, code: ErrorCode) -> PartitionData:
    return PartitionData(
        partition_index=partition,
        error_code=code,
        high_watermark=-1,
        last_stable_offset=-1,
        log_start_offset=-1,
        aborted_transactions=None,
        records=b"",
    )


@dataclass(slots=True)
class PartitionRead:
    """One partition's outcome: the answer without records, and what to read them from."""

    key: PartitionKey
    topic: str | None
    data: PartitionData
    result: ReadResult | None = None
    #: v0-v2: the first batch exceeded the partition limit; send this many bytes of it.
    cut_to: int | None = None

    @property
    def size(self) -> int:
        return 0 if self.result is None else self.result.size


class FetchReader:
    """Reads every partition of one fetch in order, sharing the response byte budget."""

    def __init__(self, replicas: ReplicaManager, request: FetchRequest, version: int) -> None:
        self.replicas = replicas
        self.version = version
        self.read_committed = version >= 4 and request.isolation_level == READ_COMMITTED
        self.hard_limit = version <= LAST_HARD_LIMIT_VERSION
        self.max_bytes = request.max_bytes if version >= 3 else 2**31 - 1

    def read_all(
        self, partitions: list[tuple[PartitionKey, PartitionParams]]
    ) -> list[PartitionRead]:
        remaining = self.max_bytes
        min_one = not self.hard_limit
        reads: list[PartitionRead] = []
        for key, params in partitions:
            topic_key, partition = key
            if isinstance(topic_key, uuid.UUID):
                info = self.replicas.find_topic_by_id(topic_key)
                if info is None:
                    reads.append(
                        PartitionRead(
                            key, None, error_partition(partition, ErrorCode.UNKNOWN_TOPIC_ID)
                        )
                    )
                    continue
                topic = info.name
            else:
                topic = topic_key
            read = self.read_partition(key, topic, params, remaining, min_one)
            if read.size:
                min_one = False
                remaining = max(0, remaining - read.size)
            reads.append(read)
        return reads

    def read_partition(
        self, key: PartitionKey, topic: str, params: PartitionParams, remaining: int, min_one: bool
    ) -> PartitionRead:
        partition = key[1]
        try:
            log = self.replicas.log(topic, partition)
        except KafkaError as exc:
            return PartitionRead(key, topic, error_partition(partition, exc.code))
        epoch = self.replicas.leader_epoch(topic, partition)
        code = leader_epoch_error(params.current_leader_epoch, epoch)
        if code != ErrorCode.NONE:
            return PartitionRead(key, topic, error_partition(partition, code))
        data = self._partition_data(partition, log)
        if self.version >= 12 and params.last_fetched_epoch >= 0:
            # Diverging-epoch check: this log has one epoch, ending at the log end offset.
            if params.last_fetched_epoch != epoch or params.fetch_offset < log.log_start_offset:
                return self._out_of_range(key, topic, log)
            if params.fetch_offset > log.log_end_offset:
                data.diverging_epoch.epoch = epoch
                data.diverging_epoch.end_offset = log.log_end_offset
                return PartitionRead(key, topic, data)
        limit = max(0, params.partition_max_bytes)
        if not self.hard_limit:
            limit = min(limit, remaining)
        stable = self.replicas.last_stable_offset(topic, partition)
        bound = stable if self.read_committed else None
        try:
            result = log.read(params.fetch_offset, limit, min_one=min_one, max_offset=bound)
        except KafkaError as exc:
            if exc.code != ErrorCode.OFFSET_OUT_OF_RANGE:
                raise
            return self._out_of_range(key, topic, log)
        cut_to = None
        if self.hard_limit and not result.slices and limit > 0:
            whole = log.read(params.fetch_offset, limit, min_one=True)
            if whole.slices:
                result, cut_to = whole, limit
        data.high_watermark = result.high_watermark
        data.last_stable_offset = stable
        data.log_start_offset = result.log_start_offset
        if self.read_committed and result.slices:
            aborted = self.replicas.aborted_transactions(
                topic, partition, params.fetch_offset, stable
            )
            data.aborted_transactions = [
                AbortedTransaction(a.producer_id, a.first_offset) for a in aborted
            ]
        return PartitionRead(key, topic, data, result, cut_to)

    def _partition_data(self, partition: int, log: PartitionLog) -> PartitionData:
        high_watermark = log.high_watermark
        return PartitionData(
            partition_index=partition,
            high_watermark=high_watermark,
            last_stable_offset=high_watermark,
            log_start_offset=log.log_start_offset,
            aborted_transactions=[] if self.read_committed else None,
            records=b"",
        )

    def _out_of_range(self, key: PartitionKey, topic: str, log: PartitionLog) -> PartitionRead:
        data = self._partition_data(key[1], log)
        data.error_code = ErrorCode.OFFSET_OUT_OF_RANGE
        data.aborted_transactions = None
        return PartitionRead(key, topic, data)

    def finish(self, read: PartitionRead, fetch_offset: int) -> PartitionData:
        """The partition's answer with its records (down-converted for v0-v3)."""
        data = read.data
        if read.result is None or read.topic is None:
            return data
        if self.version <= LAST_NO_ZSTD_VERSION and self._topic_is_zstd(read.topic, data):
            return error_partition(data.partition_index, ErrorCode.UNSUPPORTED_COMPRESSION_TYPE)
        if self.version >= 4:
            # Stored batches go out as file slices (os.sendfile); b"" keeps emptiness falsy.
            data.records = read.result if read.result.slices else b""
            return data
        raw = _records(read.result)
        try:
            converted = down_convert(
                raw, 0 if self.version <= 1 else 1, fetch_offset, max_bytes=len(raw)
            )
        except KafkaError as exc:
            return error_partition(data.partition_index, exc.code)
        data.records = converted if read.cut_to is None else converted[: read.cut_to]
        return data

    def _topic_is_zstd(self, topic: str, data: PartitionData) -> bool:
        try:
            log = self.replicas.log(topic, data.partition_index)
        except KafkaError:
            return False
        return log.config.compression_type == "zstd"


def _records(result: ReadResult) -> bytes:
    """The bytes of the slices read (the one place a zero-copy send would hand slices over)."""
    return result.read_bytes()


def _respond_now(request: FetchRequest, reads: list[PartitionRead]) -> bool:
    """Kafka answers at once with enough data, nothing to wait for, or any error."""
    if request.max_wait_ms <= 0 or not reads:
        return True
    if sum(r.size for r in reads) >= request.min_bytes:
        return True
    return any(
        r.data.error_code != ErrorCode.NONE or r.data.diverging_epoch.epoch != -1 for r in reads
    )


def _requested(
    request: FetchRequest, uses_ids: bool
) -> tuple[dict[PartitionKey, PartitionParams], list[PartitionKey]]:
    fetch: dict[PartitionKey, PartitionParams] = {}
    for topic in request.topics:
        topic_key: str | uuid.UUID = topic.topic_id if uses_ids else topic.topic
        for p in topic.partitions:
            fetch[(topic_key, p.partition)] = PartitionParams(
                p.fetch_offset,
                p.partition_max_bytes,
                p.current_leader_epoch,
                p.last_fetched_epoch,
                p.log_start_offset,
            )
    forget: list[PartitionKey] = []
    for forgotten in request.forgotten_topics_data:
        topic_key = forgotten.topic_id if uses_ids else forgotten.topic
        forget.extend((topic_key, p) for p in forgotten.partitions)
    return fetch, forget


def _response(
    context: RequestContext,
    error: ErrorCode,
    session_id: int,
    partitions: list[tuple[PartitionKey, PartitionData]],
) -> FetchResponse:
    """Group consecutive partitions of one topic, as Kafka builds the response."""
    version = context.api_version
    topics: list[FetchableTopicResponse] = []
    last: str | uuid.UUID | None = None
    leader_shown = False
    for (topic_key, _), data in partitions:
        if not topics or topic_key != last:
            if isinstance(topic_key, uuid.UUID):
                topics.append(FetchableTopicResponse(topic_id=topic_key))
            else:
                topics.append(FetchableTopicResponse(topic=topic_key))
            last = topic_key
        if version >= 16 and data.error_code == ErrorCode.FENCED_LEADER_EPOCH:
            data.current_leader.leader_id = context.broker.node_id
            data.current_leader.leader_epoch = 0
            leader_shown = True
        topics[-1].partitions.append(data)
    endpoints = []
    if leader_shown:
        endpoint = context.broker.endpoint
        endpoints.append(NodeEndpoint(context.broker.node_id, endpoint.host, endpoint.port))
    return FetchResponse(
        error_code=error, session_id=session_id, responses=topics, node_endpoints=endpoints
    )


@handles(FETCH)
async def handle_fetch(context: RequestContext, request: FetchRequest) -> FetchResponse:
    version = context.api_version
    replicas = context.broker.replicas
    cache = session_cache(context.broker)
    fetch, forget = _requested(request, version >= FIRST_TOPIC_ID_VERSION)
    replica_id = request.replica_state.replica_id if version >= 15 else request.replica_id
    session: FetchContext = new_context(
        cache,
        version=version,
        session_id=request.session_id,
        epoch=request.session_epoch,
        fetch=fetch,
        forget=forget,
        privileged=replica_id >= 0,
        now_ms=now_ms(),
    )
    if session.kind == "error":
        return FetchResponse(error_code=session.error, session_id=0)
    reader = FetchReader(replicas, request, version)
    for (topic_key, partition), _ in session.partitions:
        await replicas.load_producer_state(topic_key, partition)
    deadline = trio.current_time() + max(request.max_wait_ms, 0) / 1000
    reads = reader.read_all(session.partitions)
    while not _respond_now(request, reads):
        with trio.move_on_at(deadline) as wait:
            await replicas.wait_for_data()
        if wait.cancelled_caught:
            break  # max_wait_ms passed without an append: the last read still stands
        reads = reader.read_all(session.partitions)
    offsets = {key: params.fetch_offset for key, params in session.partitions}
    results = [(r.key, reader.finish(r, offsets[r.key])) for r in reads]
    error, session_id, selected = session.finish(cache, results, now_ms())
    return _response(context, error, session_id, selected)
