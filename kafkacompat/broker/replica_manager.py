"""The broker's partitions: the topic catalogue over storage, appends, reads, and waiting for data.

Storage is synchronous; this is where the Trio shell decides what may run on the loop (writes
into the page cache) and what goes to a worker thread (fsync).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from contextlib import AsyncExitStack
from pathlib import Path

import trio

from kafkacompat.broker.topics import TopicInfo, validate_topic_name
from kafkacompat.config import Config
from kafkacompat.coordinators.control_records import ABORT_MARKER, COMMIT_MARKER
from kafkacompat.coordinators.producer_state import (
    BatchMetadata,
    PartitionProducerState,
    ProducerStateManager,
    batch_headers,
    write_snapshot,
)
from kafkacompat.errors import ErrorCode, KafkaError
from kafkacompat.protocol.records import (
    BatchHeader,
    has_producer_id,
    iter_batches,
    read_header,
    verify_crc,
)
from kafkacompat.storage.log_config import LogConfig
from kafkacompat.storage.log_manager import LogManager, remove_trees
from kafkacompat.storage.metadata_store import TopicMetadata
from kafkacompat.storage.partition_log import AppendResult, PartitionLog, ReadResult
from kafkacompat.storage.segment import LogSegment
from kafkacompat.storage.txn_index import AbortedTxn

#: Broker settings that set the default of a topic config: broker name -> topic name.
TOPIC_DEFAULTS_FROM_BROKER = {
    "log.retention.ms": "retention.ms",
    "log.retention.bytes": "retention.bytes",
    "log.segment.bytes": "segment.bytes",
    "log.roll.ms": "segment.ms",
    "log.index.interval.bytes": "index.interval.bytes",
    "log.index.size.max.bytes": "segment.index.bytes",
    "log.flush.interval.messages": "flush.messages",
    "log.flush.interval.ms": "flush.ms",
    "log.message.timestamp.type": "message.timestamp.type",
    "log.cleanup.policy": "cleanup.policy",
    "message.max.bytes": "max.message.bytes",
    "compression.type": "compression.type",
    "min.insync.replicas": "min.insync.replicas",
}


def now_ms() -> int:
    return int(time.time() * 1000)


def topic_defaults(config: Config) -> LogConfig:
    """Topic config defaults as this broker's settings make them."""
    overrides: dict[str, str | None] = {}
    for broker_name, topic_name in TOPIC_DEFAULTS_FROM_BROKER.items():
        value = config.get(broker_name)
        overrides[topic_name] = str(value).lower() if isinstance(value, bool) else str(value)
    return LogConfig.from_overrides(overrides)


def _verify_crcs(records: memoryview | bytes) -> None:
    for pos, header in iter_batches(records):
        verify_crc(records, pos, header)


def topic_info(meta: TopicMetadata) -> TopicInfo:
    return TopicInfo(meta.name, meta.topic_id, meta.partitions)


class ReplicaManager:
    """Every partition this broker leads (all of them, on a single broker)."""

    def __init__(self, config: Config, data_dir: Path) -> None:
        self.config = config
        # Internal state (offsets, producer ids) is fsynced only when every message is, as the
        # logs are: Kafka's own __consumer_offsets relies on the page cache by default too.
        fsync_everything = config.get_int("log.flush.interval.messages") == 1
        self.logs = LogManager(data_dir, topic_defaults(config), fsync_state=fsync_everything)
        self._locks: dict[tuple[str, int], trio.Lock] = {}
        #: Long-polling fetches park here until the next append.
        self._data_waiters = trio.lowlevel.ParkingLot()
        self.producer_states = ProducerStateManager(config.get_int("producer.id.expiration.ms"))

    def close(self) -> None:
        self.producer_states.snapshot_all(self.logs.partition_logs(), now_ms())
        self.logs.close()

    async def maintain(self, now: int, *, retention: bool) -> None:
        """Time-based flushes and (with ``retention``) retention, one partition at a time under
        its lock: what changes the log's state runs on the loop, fsync and file removal on a
        worker thread."""
        for topic, partition, log in self.logs.partition_logs():
            async with self.partition_lock(topic, partition):
                if self.logs.log_or_none(topic, partition) is not log:
                    continue  # deleted while we waited for the lock
                if log.flush_due(now):
                    await trio.to_thread.run_sync(log.flush, now)
                if retention:
                    expired = log.detach_expired_segments(now)
                    if expired:
                        await trio.to_thread.run_sync(_delete_segments, expired)

    # -- topics ----------------------------------------------------------------------------------

    def list_topics(self) -> list[TopicInfo]:
        return sorted((topic_info(t) for t in self.logs.topics()), key=lambda t: t.name)

    def find_topic(self, name: str) -> TopicInfo | None:
        meta = self.logs.topic(name)
        return None if meta is None else topic_info(meta)

    def hosts(self, topic: str, partition: int) -> bool:
        """Whether ``topic`` exists here with a partition ``partition``."""
        meta = self.logs.topic(topic)
        return meta is not None and 0 <= partition < meta.partitions

    def find_topic_by_id(self, topic_id: uuid.UUID) -> TopicInfo | None:
        meta = self.logs.topic_by_id(topic_id)
        return None if meta is None else topic_info(meta)

    def create_topic(
        self,
        name: str,
        partitions: int,
        configs: Mapping[str, str | None] | None = None,
        *,
        validate_only: bool = False,
    ) -> TopicInfo:
        validate_topic_name(name)
        return topic_info(
            self.logs.create_topic(name, partitions, configs, validate_only=validate_only)
        )

    async def auto_create_topic(self, name: str) -> TopicInfo:
        """Create a topic a client asked for, with the broker's default partition count."""
        existing = self.find_topic(name)
        if existing is not None:
            return existing
        return self.create_topic(name, self.config.get_int("num.partitions"))

    async def delete_topic(self, name: str) -> None:
        """Delete a topic and its data, after any append in flight on it has finished."""
        meta = self.logs.require_topic(name)
        async with AsyncExitStack() as held:
            for partition in range(meta.partitions):
                await held.enter_async_context(self.partition_lock(name, partition))
            detached = self.logs.detach_topic(name)
            self.producer_states.forget_topic(name)
        for key in [k for k in self._locks if k[0] == name]:
            del self._locks[key]
        await trio.to_thread.run_sync(remove_trees, detached)

    # -- partitions ------------------------------------------------------------------------------

    def log(self, topic: str, partition: int) -> PartitionLog:
        """The partition's log, or UNKNOWN_TOPIC_OR_PARTITION."""
        return self.logs.log(topic, partition)

    def partition_lock(self, topic: str, partition: int) -> trio.Lock:
        """Held while a partition's log changes (append with its fsync, record deletion)."""
        lock = self._locks.get((topic, partition))
        if lock is None:
            lock = self._locks[(topic, partition)] = trio.Lock()
        return lock

    async def delete_records(self, topic: str, partition: int, offset: int) -> int:
        """Advance the log start offset (DeleteRecords); returns the new low watermark."""
        log = self.log(topic, partition)
        async with self.partition_lock(topic, partition):
            return log.delete_records_before(offset)

    def leader_epoch(self, topic: str, partition: int) -> int:
        """A single broker leads every partition from its creation on: epoch 0."""
        return 0

    async def append(
        self,
        topic: str,
        partition: int,
        records: memoryview | bytes,
        *,
        fsync: bool = False,
        verify: Callable[[], None] | None = None,
    ) -> AppendResult:
        """Append a produced record set; with ``fsync`` it is on disk before this returns.

        Appends to one partition are serialised; the write lands in the page cache on the loop,
        the fsync (when asked for, or due by the topic's flush policy) runs on a worker thread.
        ``verify`` (raising KafkaError to refuse) runs with the partition lock held, with no
        wait between it and the write: a transaction cannot end in between.
        """
        log = self.log(topic, partition)
        lock = self.partition_lock(topic, partition)
        if lock.locked():
            await lock.acquire()
        else:
            # Uncontended: take it without a trip through the scheduler (the response send
            # is this request's checkpoint).
            lock.acquire_nowait()
        try:
            producers = self.producer_states.current(topic, partition, log)
            if producers is None:
                producers = await self._producer_state(topic, partition, log)
            if verify is not None:
                verify()
            # Only batches with a producer id have sequences to check and state to record;
            # for the rest the state just moves on to the new log end.
            headers = batch_headers(records) if has_producer_id(records) else []
            if headers:
                duplicate = self._check_producers(producers, headers, records)
                if duplicate is not None:
                    return AppendResult(
                        duplicate.first_offset, duplicate.last_offset, -1, log.log_start_offset, 0
                    )
            now = now_ms()
            result = log.append(records, leader_epoch=0, now_ms=now, auto_flush=False)
            producers.applied(headers, result.base_offset, log.log_end_offset)
            if fsync or log.flush_due(now):
                await trio.to_thread.run_sync(log.flush, now)
            if self.producer_states.snapshot_due(producers, log):
                data, offset = self.producer_states.snapshot_bytes(producers, log, now_ms())
                await trio.to_thread.run_sync(write_snapshot, log.directory, data, offset)
        finally:
            lock.release()
        self._signal_data_arrived()
        return result

    async def write_marker(
        self,
        topic: str,
        partition: int,
        control_batch: bytes,
        *,
        commit: bool,
        check_epoch: bool = False,
    ) -> int:
        """Append a transaction marker (a control batch) and end the producer's open
        transaction on the partition; returns the marker's offset. With ``check_epoch`` a
        marker older than the producer's epoch on the partition is INVALID_PRODUCER_EPOCH."""
        log = self.log(topic, partition)
        async with self.partition_lock(topic, partition):
            producers = await self._producer_state(topic, partition, log)
            header = read_header(control_batch)
            entry = producers.entries.get(header.producer_id)
            if check_epoch and entry is not None and header.producer_epoch < entry.epoch:
                raise KafkaError(
                    ErrorCode.INVALID_PRODUCER_EPOCH,
                    f"marker epoch {header.producer_epoch} is older than {entry.epoch}",
                )
            now = now_ms()
            result = log.append(
                control_batch, leader_epoch=0, now_ms=now, allow_control=True, auto_flush=False
            )
            marker = COMMIT_MARKER if commit else ABORT_MARKER
            producers.apply(header, result.base_offset, marker)
            producers.next_offset = log.log_end_offset
            if log.flush_due(now):
                await trio.to_thread.run_sync(log.flush, now)
            if self.producer_states.snapshot_due(producers, log):
                data, offset = self.producer_states.snapshot_bytes(producers, log, now_ms())
                await trio.to_thread.run_sync(write_snapshot, log.directory, data, offset)
        self._signal_data_arrived()
        return result.base_offset

    async def load_producer_state(self, topic: str | uuid.UUID, partition: int) -> None:
        """Bring a partition's producer state (open transactions, for its last stable offset)
        up to date on a worker thread, so reads on the loop find it current."""
        if isinstance(topic, uuid.UUID):
            info = self.find_topic_by_id(topic)
            if info is None:
                return
            topic = info.name
        try:
            log = self.log(topic, partition)
        except KafkaError:
            return
        if self.producer_states.is_current(topic, partition, log):
            return
        async with self.partition_lock(topic, partition):
            await self._producer_state(topic, partition, log)

    def producer_state_now(self, topic: str, partition: int) -> PartitionProducerState:
        """The partition's producer state, loaded on the loop if needed (reads the log)."""
        return self.producer_states.state_for(topic, partition, self.log(topic, partition))

    def last_stable_offset(self, topic: str, partition: int) -> int:
        """First offset of the earliest open transaction (not below the log start offset:
        records deleted before it are gone), else the high watermark."""
        log = self.log(topic, partition)
        unstable = self.producer_state_now(topic, partition).first_unstable_offset()
        if unstable is None:
            return log.high_watermark
        return min(max(unstable, log.log_start_offset), log.high_watermark)

    def aborted_transactions(
        self, topic: str, partition: int, start_offset: int, upper_offset: int
    ) -> list[AbortedTxn]:
        """Aborted transactions overlapping [start_offset, upper_offset)."""
        self.producer_state_now(topic, partition)  # replays markers the index may have lost
        return self.log(topic, partition).txn_index.collect(start_offset, upper_offset)

    async def _producer_state(
        self, topic: str, partition: int, log: PartitionLog
    ) -> PartitionProducerState:
        """The partition's idempotent-producer state, loaded (snapshot plus a replay of the
        log's batch headers, on a worker thread) on first use."""
        states = self.producer_states
        state = states.current(topic, partition, log)
        if state is not None:
            return state
        return await trio.to_thread.run_sync(states.state_for, topic, partition, log)

    @staticmethod
    def _check_producers(
        producers: PartitionProducerState,
        headers: list[BatchHeader],
        records: memoryview | bytes,
    ) -> BatchMetadata | None:
        """Sequence checks. Storage verifies CRCs on append; a set that is not appended
        (duplicate or sequence error) is verified here, so corruption answers CORRUPT_MESSAGE."""
        try:
            duplicate = producers.check(headers)
        except KafkaError:
            _verify_crcs(records)
            raise
        if duplicate is not None:
            _verify_crcs(records)
        return duplicate

    def read(
        self, topic: str, partition: int, offset: int, max_bytes: int, *, min_one: bool = True
    ) -> ReadResult:
        return self.log(topic, partition).read(offset, max_bytes, min_one=min_one)

    # -- waiting for data ------------------------------------------------------------------------

    def _signal_data_arrived(self) -> None:
        """Wake every fetch waiting for data (free when none waits, the common case)."""
        if self._data_waiters:
            self._data_waiters.unpark_all()

    async def wait_for_data(self) -> None:
        """Return after the next append to any partition (long-poll fetches re-check then)."""
        await self._data_waiters.park()


def _delete_segments(segments: list[LogSegment]) -> None:
    for segment in segments:
        segment.delete()
