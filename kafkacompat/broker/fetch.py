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
)
from kafkacompat.broker.router import handles
from kafkacompat.clock import now_ms
from kafkacompat.cluster.metadata_image import MetadataImage
from kafkacompat.errors import ErrorCode, KafkaError
from kafkacompat.partitions.manager import PartitionManager
from kafkacompat.partitions.partition import Partition
from kafkacompat.protocol.down_conversion import down_convert
from kafkacompat.protocol.messages.fetch_request import API_KEY as FETCH
from kafkacompat.protocol.messages.fetch_request import FetchRequest
from kafkacompat.protocol.messages.fetch_response import (
    AbortedTransaction,
    FetchableTopicResponse,
    FetchResponse,
    NodeEndpoint,
    PartitionData,
)
from kafkacompat.security.acls import AclOperation, ResourceType
from kafkacompat.storage.results import ReadResult

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
    partition: Partition | None = None
    result: ReadResult | None = None
    #: v0-v2: the first batch exceeded the partition limit; send this many bytes of it.
    cut_to: int | None = None

    @property
    def size(self) -> int:
        return 0 if self.result is None else self.result.size


class FetchReader:
    """Reads every partition of one fetch in order, sharing the response byte budget."""

    def __init__(
        self,
        partitions: PartitionManager,
        image: MetadataImage,
        request: FetchRequest,
        version: int,
        node_id: int = -1,
    ) -> None:
        self.partitions = partitions
        self.image = image
        #: This broker: a partition the metadata gives another leader is NOT_LEADER_OR_FOLLOWER.
        self.node_id = node_id
        self.version = version
        self.read_committed = version >= 4 and request.isolation_level == READ_COMMITTED
        self.hard_limit = version <= LAST_HARD_LIMIT_VERSION
        self.max_bytes = request.max_bytes if version >= 3 else 2**31 - 1
        #: Topics the principal may not read: TOPIC_AUTHORIZATION_FAILED.
        self.denied: frozenset[str] = frozenset()
        #: A follower's fetch (its broker id; -1: a consumer): it reads up to the log end, and
        #: its fetch offset tells this leader how far it has copied.
        self.replica_id = request.replica_state.replica_id if version >= 15 else request.replica_id
        #: Followers that caught up with a partition they are not in sync for (ISR expansion).
        self.caught_up: list[tuple[Partition, int]] = []

    def read_all(
        self, partitions: list[tuple[PartitionKey, PartitionParams]]
    ) -> list[PartitionRead]:
        remaining = self.max_bytes
        min_one = not self.hard_limit
        reads: list[PartitionRead] = []
        for key, params in partitions:
            topic_key, partition = key
            if isinstance(topic_key, uuid.UUID):
                info = self.image.topic_by_id(topic_key)
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
        if self.denied and topic in self.denied:
            code = ErrorCode.TOPIC_AUTHORIZATION_FAILED
            return PartitionRead(key, None, error_partition(partition, code))
        if self.node_id >= 0 and self.image.led_elsewhere(topic, partition, self.node_id):
            code = ErrorCode.NOT_LEADER_OR_FOLLOWER
            return PartitionRead(key, topic, error_partition(partition, code))
        hosted = self.partitions.partition_or_none(topic, partition)
        if hosted is None:
            code = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
            return PartitionRead(key, topic, error_partition(partition, code))
        epoch = hosted.leader_epoch
        code = leader_epoch_error(params.current_leader_epoch, epoch)
        if code != ErrorCode.NONE:
            return PartitionRead(key, topic, error_partition(partition, code), hosted)
        if self.version >= 12 and params.last_fetched_epoch >= 0:
            # KIP-320: the fetcher's last epoch ends earlier here (or is not ours): it diverged.
            end_epoch, end_offset = hosted.end_offset_for_epoch(params.last_fetched_epoch)
            if end_epoch < 0 or params.fetch_offset < hosted.log_start_offset:
                return self._out_of_range(key, topic, hosted)
            if end_epoch < params.last_fetched_epoch or end_offset < params.fetch_offset:
                data = self._partition_data(hosted)
                data.diverging_epoch.epoch = end_epoch
                data.diverging_epoch.end_offset = end_offset
                return PartitionRead(key, topic, data, hosted)
        follower = self.replica_id >= 0
        if follower and hosted.follower_fetched(self.replica_id, params.fetch_offset, now_ms()):
            self.caught_up.append((hosted, self.replica_id))
        data = self._partition_data(hosted)
        limit = max(0, params.partition_max_bytes)
        if not self.hard_limit:
            limit = min(limit, remaining)
        stable = hosted.last_stable_offset()
        bound = stable if self.read_committed else None
        try:
            result = hosted.read(
                params.fetch_offset, limit, min_one=min_one, max_offset=bound, to_log_end=follower
            )
        except KafkaError as exc:
            if exc.code != ErrorCode.OFFSET_OUT_OF_RANGE:
                raise
            return self._out_of_range(key, topic, hosted)
        cut_to = None
        if self.hard_limit and not result.slices and limit > 0:
            whole = hosted.read(params.fetch_offset, limit, min_one=True)
            if whole.slices:
                result, cut_to = whole, limit
        data.last_stable_offset = stable
        data.log_start_offset = result.log_start_offset
        if self.read_committed and result.slices:
            aborted = hosted.aborted_transactions(params.fetch_offset, stable)
            data.aborted_transactions = [
                AbortedTransaction(a.producer_id, a.first_offset) for a in aborted
            ]
        return PartitionRead(key, topic, data, hosted, result, cut_to)

    def _partition_data(self, hosted: Partition) -> PartitionData:
        high_watermark = hosted.high_watermark
        return PartitionData(
            partition_index=hosted.index,
            high_watermark=high_watermark,
            last_stable_offset=high_watermark,
            log_start_offset=hosted.log_start_offset,
            aborted_transactions=[] if self.read_committed else None,
            records=b"",
        )

    def _out_of_range(self, key: PartitionKey, topic: str, hosted: Partition) -> PartitionRead:
        data = self._partition_data(hosted)
        data.error_code = ErrorCode.OFFSET_OUT_OF_RANGE
        data.aborted_transactions = None
        return PartitionRead(key, topic, data, hosted)

    def finish(self, read: PartitionRead, fetch_offset: int) -> PartitionData:
        """The partition's answer with its records (down-converted for v0-v3)."""
        data = read.data
        if read.result is None or read.topic is None:
            return data
        if (
            self.version <= LAST_NO_ZSTD_VERSION
            and read.partition is not None
            and read.partition.config.compression_type == "zstd"
        ):
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


def _hosted(
    partitions: PartitionManager, image: MetadataImage, topic_key: str | uuid.UUID, index: int
) -> Partition | None:
    if isinstance(topic_key, uuid.UUID):
        info = image.topic_by_id(topic_key)
        if info is None:
            return None
        topic_key = info.name
    return partitions.partition_or_none(topic_key, index)


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
    image = context.image
    leaders: set[int] = set()
    for (topic_key, index), data in partitions:
        if not topics or topic_key != last:
            if isinstance(topic_key, uuid.UUID):
                topics.append(FetchableTopicResponse(topic_id=topic_key))
            else:
                topics.append(FetchableTopicResponse(topic=topic_key))
            last = topic_key
        if version >= 16 and data.error_code == ErrorCode.FENCED_LEADER_EPOCH:
            topic = (
                image.topic_by_id(topic_key)
                if isinstance(topic_key, uuid.UUID)
                else image.topic(topic_key)
            )
            state = None if topic is None else topic.partition(index)
            if state is not None:
                data.current_leader.leader_id = state.leader
                data.current_leader.leader_epoch = state.leader_epoch
                leaders.add(state.leader)
        topics[-1].partitions.append(data)
    endpoints = [
        NodeEndpoint(b.node_id, e.host, e.port, b.rack)
        for b, e in context.reachable_brokers(image)
        if b.node_id in leaders
    ]
    return FetchResponse(
        error_code=error, session_id=session_id, responses=topics, node_endpoints=endpoints
    )


def _denied_topics(
    context: RequestContext,
    image: MetadataImage,
    fetched: list[tuple[PartitionKey, PartitionParams]],
    from_follower: bool,
) -> frozenset[str]:
    """The fetched topics this principal may not read: a follower needs CLUSTER_ACTION on the
    cluster, a consumer READ on each topic."""
    names = set()
    for (topic_key, _index), _params in fetched:
        if isinstance(topic_key, uuid.UUID):
            info = image.topic_by_id(topic_key)
            if info is None:
                continue
            topic_key = info.name
        names.add(topic_key)
    if from_follower:
        allowed = context.authorize_cluster(AclOperation.CLUSTER_ACTION)
        return frozenset() if allowed else frozenset(names)
    return frozenset(
        n for n in names if not context.authorize(AclOperation.READ, ResourceType.TOPIC, n)
    )


@handles(FETCH)
async def handle_fetch(context: RequestContext, request: FetchRequest) -> FetchResponse:
    version = context.api_version
    partitions = context.services.partitions
    cache = context.services.fetch_sessions
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
    image = context.image
    reader = FetchReader(partitions, image, request, version, context.services.node_id)
    if context.services.security.authorizer is not None:
        reader.denied = _denied_topics(context, image, session.partitions, replica_id >= 0)
    for (topic_key, index), _ in session.partitions:
        hosted = _hosted(partitions, image, topic_key, index)
        if hosted is not None:
            await hosted.load_producer_state()
    deadline = trio.current_time() + max(request.max_wait_ms, 0) / 1000
    reads = reader.read_all(session.partitions)
    while not _respond_now(request, reads):
        waited_on = [r.partition for r in reads if r.partition is not None]
        await partitions.wait_for_data(waited_on, deadline)
        if trio.current_time() >= deadline:
            break  # max_wait_ms passed: the last read still stands unless data came meanwhile
        reads = reader.read_all(session.partitions)
    if reader.caught_up and context.services.replication is not None:
        context.services.replication.caught_up(reader.caught_up)
    offsets = {key: params.fetch_offset for key, params in session.partitions}
    results = [(r.key, reader.finish(r, offsets[r.key])) for r in reads]
    error, session_id, selected = session.finish(cache, results, now_ms())
    return _response(context, error, session_id, selected)
