"""A coordinator's durable state kept in an internal topic, as Kafka keeps it.

`InternalTopic` offers the state store's `Namespace` calls (``get``, ``items``, ``put_many``...)
over the partitions of ``__consumer_offsets`` or ``__transaction_state``: each entry belongs to
the partition of its group or transactional id (`partition_for`), is written as a record in
Kafka's own format (`internal_records`), and the topic is compacted, so the latest record of a
key is its value and a tombstone deletes it.

Changes apply in memory at once and are queued; `flush` appends them in order, one batch per
partition and change, creating the topic on first use (Kafka creates it on the first
FindCoordinator). A request handler awaits `flush` before answering; a writer task flushes what
timers changed. Only the partitions this broker coordinates are held (`own`): all of them on a
single broker, the ones it leads in a cluster; loading one reads its log on a worker thread.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Protocol

import trio

from kafkacompat.clock import now_ms
from kafkacompat.coordinators.internal_records import RecordCodec, partition_for
from kafkacompat.errors import ErrorCode, KafkaError
from kafkacompat.partitions.manager import PartitionManager
from kafkacompat.partitions.partition import Partition
from kafkacompat.protocol.record_codec import Record, encode_batch
from kafkacompat.storage.partition_log import PartitionLog
from kafkacompat.storage.state_store import KeyValueSource

__all__ = ["INTERNAL_TOPIC_CONFIGS", "InternalTopic", "StateOwner", "follow_leadership"]

log = logging.getLogger("kafkacompat.coordinators")

#: Kafka's configs for its internal topics (``offsets.topic.segment.bytes`` and friends).
#: How long a write waits for the in-sync replicas (Kafka's ``offsets.commit.timeout.ms``).
REPLICATION_TIMEOUT = 5.0

INTERNAL_TOPIC_CONFIGS = {
    "cleanup.policy": "compact",
    "compression.type": "producer",
    "segment.bytes": "104857600",
}

Entries = dict[bytes, bytes]
#: Creates the topic with this many partitions (the controller; a no-op if it exists).
TopicCreator = Callable[[str, int], Awaitable[None]]


def _read_partition(
    partitions: PartitionManager, topic: str, index: int, codec: RecordCodec
) -> Entries:
    """The live entries of one partition's log (latest record per key; tombstones remove)."""
    hosted = partitions.partition_or_none(topic, index)
    return {} if hosted is None else _read_log(hosted.log, codec)


def _read_log(log: PartitionLog, codec: RecordCodec) -> Entries:
    entries: Entries = {}
    for record in log.iter_records():
        if record.key is None:
            continue
        ours = codec.from_record(record.key, record.value)
        if ours is None:
            continue
        key, value = ours
        if value is None:
            entries.pop(key, None)
        else:
            entries[key] = value
    return entries


class _Part:
    def __init__(self, topic: InternalTopic, partitions: frozenset[int]) -> None:
        self._topic = topic
        self._partitions = partitions

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        return self._topic.items(self._partitions)


class InternalTopic:
    """A keyed store over an internal topic's partitions (see the module docstring)."""

    def __init__(
        self,
        name: str,
        num_partitions: int,
        codec: RecordCodec,
        partitions: PartitionManager,
        create: TopicCreator,
    ) -> None:
        self.name = name
        self.codec = codec
        self._partitions = partitions
        self._create = create
        existing = partitions.topic(name)
        #: The topic's partition count: an existing topic's own, else the setting's.
        self.num_partitions = existing.partitions if existing is not None else num_partitions
        self._data: dict[int, Entries] = {}
        #: Partitions being read; their keys answer COORDINATOR_LOAD_IN_PROGRESS meanwhile.
        self.loading: set[int] = set()
        #: Changes to append, in order: (partition, entries), or a callback to run once
        #: everything queued before it is written.
        self._queued: list[tuple[int, list[tuple[bytes, bytes | None]]] | Callable[[], None]] = []
        self._writing = trio.Lock()
        self._queued_event = trio.Event()

    # -- where keys live -------------------------------------------------------------------------

    def partition_of(self, key_id: str) -> int:
        """The partition of a group or transactional id."""
        return partition_for(key_id, self.num_partitions)

    @property
    def owned(self) -> frozenset[int]:
        """The partitions held (loaded or loading)."""
        return frozenset(self._data) | frozenset(self.loading)

    def coordinator_error(self, key_id: str) -> ErrorCode:
        """NONE when ``key_id``'s partition is held here; else Kafka's answer for it."""
        index = self.partition_of(key_id)
        if index in self.loading:
            return ErrorCode.COORDINATOR_LOAD_IN_PROGRESS
        if index not in self._data:
            return ErrorCode.NOT_COORDINATOR
        return ErrorCode.NONE

    def load_all_now(self) -> None:
        """Hold every partition, read from the local logs at once (a single broker's start)."""
        for index in range(self.num_partitions):
            self._data[index] = _read_partition(self._partitions, self.name, index, self.codec)

    def release(self, lost: Iterable[int]) -> None:
        """Stop holding these partitions (led elsewhere now); a load under way is dropped."""
        for index in lost:
            self._data.pop(index, None)
            self.loading.discard(index)

    async def acquire(self, gained: Iterable[int]) -> set[int]:
        """Hold these partitions too, each read from its log on a worker thread; meanwhile
        their keys answer COORDINATOR_LOAD_IN_PROGRESS. Returns the partitions loaded (not
        released while loading)."""
        wanted = set(gained) - set(self._data) - self.loading
        self.loading |= wanted
        loaded = set()
        try:
            for index in sorted(wanted):
                hosted = self._partitions.partition_or_none(self.name, index)
                entries: Entries = {}
                if hosted is not None:
                    # Under the partition's lock: a move to another log directory or a
                    # compaction's swap does not replace the log while it is read.
                    async with hosted.lock:
                        entries = await trio.to_thread.run_sync(_read_log, hosted.log, self.codec)
                if index in self.loading:
                    self._data[index] = entries
                    self.loading.discard(index)
                    loaded.add(index)
        finally:
            self.loading -= wanted
        return loaded

    def part(self, partitions: Iterable[int]) -> KeyValueSource:
        """The entries of some partitions, to load from."""
        return _Part(self, frozenset(partitions))

    # -- the Namespace calls ---------------------------------------------------------------------

    def _partition_of_key(self, key: bytes) -> int:
        return self.partition_of(self.codec.owner(key))

    def get(self, key: bytes) -> bytes | None:
        return self._data.get(self._partition_of_key(key), {}).get(key)

    def items(self, partitions: Iterable[int] | None = None) -> Iterator[tuple[bytes, bytes]]:
        """Every held entry (or those of ``partitions``), as a list later writes do not
        disturb."""
        chosen = (
            self._data if partitions is None else {p: self._data.get(p, {}) for p in partitions}
        )
        return iter(list(itertools.chain.from_iterable(e.items() for e in chosen.values())))

    def __len__(self) -> int:
        return sum(len(e) for e in self._data.values())

    def __contains__(self, key: object) -> bool:
        return isinstance(key, bytes) and self.get(key) is not None

    def put(self, key: bytes, value: bytes | None) -> None:
        self.put_many([(key, value)])

    def delete(self, key: bytes) -> None:
        self.put_many([(key, None)])

    def put_many(self, entries: Iterable[tuple[bytes, bytes | None]]) -> None:
        """Apply changes now and queue their records (one batch per partition: atomic)."""
        by_partition: dict[int, list[tuple[bytes, bytes | None]]] = {}
        for key, value in entries:
            by_partition.setdefault(self._partition_of_key(key), []).append((key, value))
        for index, changes in by_partition.items():
            held = self._data.get(index)
            if held is None:
                log.warning("%s-%d is not coordinated here: change dropped", self.name, index)
                continue
            for key, value in changes:
                if value is None:
                    held.pop(key, None)
                else:
                    held[key] = value
            self._queued.append((index, changes))
        if self._queued:
            self._queued_event.set()

    @property
    def file_size(self) -> int:
        """Bytes of the topic's local logs."""
        total = 0
        for index in range(self.num_partitions):
            hosted = self._partitions.partition_or_none(self.name, index)
            if hosted is not None:
                total += hosted.size_in_bytes
        return total

    # -- writing ---------------------------------------------------------------------------------

    @property
    def pending(self) -> bool:
        return bool(self._queued)

    async def create(self) -> None:
        """Have the controller create the topic (nothing happens if it exists); from then on
        keys are placed by the topic's own partition count."""
        await self._create(self.name, self.num_partitions)
        created = self._partitions.topic(self.name)
        if created is not None:
            self.num_partitions = created.partitions

    async def ensure_topic(self) -> None:
        """Create the topic if this broker does not host it yet."""
        if self._partitions.topic(self.name) is None:
            await self.create()

    async def flush(self) -> None:
        """Append every queued change, in order; on return they are in the logs."""
        if not self._queued:
            return
        async with self._writing:
            if not self._queued:
                return
            await self.ensure_topic()
            written: list[tuple[Partition, int]] = []
            while self._queued:
                head = self._queued[0]
                if callable(head):
                    await _replicated(written)
                    written.clear()
                    head()
                else:
                    appended = await self._append(*head)
                    if appended is not None:
                        written.append(appended)
                self._queued.pop(0)
            await _replicated(written)

    def when_written(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once everything queued so far is in the logs."""
        self._queued.append(callback)
        self._queued_event.set()

    async def _append(
        self, index: int, changes: list[tuple[bytes, bytes | None]]
    ) -> tuple[Partition, int] | None:
        """Append the changes; the partition and the offset past them."""
        now = now_ms()
        records = []
        for delta, (key, value) in enumerate(changes):
            record_key, record_value = self.codec.to_record(key, value)
            records.append(Record(delta, now, record_key, record_value))
        hosted = self._partitions.partition_or_none(self.name, index)
        if hosted is None:
            log.warning(
                "%s-%d is not hosted here: %d change(s) dropped", self.name, index, len(records)
            )
            return None
        result = await hosted.append(encode_batch(records, base_offset=0))
        return hosted, result.last_offset + 1

    async def run_writer(self) -> None:
        """Flush what timers and other callers queued, as it comes, forever."""
        while True:
            await self._queued_event.wait()
            self._queued_event = trio.Event()
            try:
                await self.flush()
            except (KafkaError, OSError) as exc:
                log.error("cannot write %s: %s; retrying", self.name, exc)
                await trio.sleep(1.0)
                self._queued_event.set()


async def _replicated(written: list[tuple[Partition, int]]) -> None:
    """Wait until the in-sync replicas hold what was appended (acks=all, as Kafka's
    coordinators write), for at most `REPLICATION_TIMEOUT` seconds (then it is logged)."""
    deadline = trio.current_time() + REPLICATION_TIMEOUT
    for hosted, end in written:
        if not await hosted.wait_for_high_watermark(end, deadline):
            log.warning(
                "%s-%d: the in-sync replicas did not confirm offsets below %d in %g s",
                hosted.topic,
                hosted.index,
                end,
                REPLICATION_TIMEOUT,
            )


class StateOwner(Protocol):
    """A coordinator whose state lives in an internal topic's partitions."""

    def take_over(self, source: KeyValueSource) -> None: ...

    def hand_over(self, belongs: Callable[[str], bool]) -> None: ...


async def follow_leadership(topic: InternalTopic, owner: StateOwner, led: Iterable[int]) -> None:
    """Hold exactly the partitions ``led`` here, and have ``owner`` coordinate what they keep:
    what moved away is handed over first, what came here is taken over once read."""
    wanted = set(led)
    lost = topic.owned - wanted
    if lost:
        topic.release(lost)
        owner.hand_over(lambda key_id: topic.partition_of(key_id) in lost)
    gained = await topic.acquire(wanted - topic.owned)
    if gained:
        owner.take_over(topic.part(gained))
    if lost or gained:
        log.info(
            "%s: coordinating %d partition(s) here (%d taken over, %d handed over)",
            topic.name,
            len(topic.owned),
            len(gained),
            len(lost),
        )
