"""One topic-partition: its log, producer state, append lock, leader epoch, high watermark and
the wake-up of the fetches waiting for its data.

Storage is synchronous; this is where the Trio shell decides what may run on the loop (writes
into the page cache) and what goes to a worker thread (fsync, loading producer state, snapshots,
file removal). Nothing outside this package touches the `PartitionLog`.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from time import perf_counter

import trio

from kafkacompat.clock import now_ms
from kafkacompat.errors import ErrorCode, KafkaError
from kafkacompat.partitions.leader_epoch import UNDEFINED_EPOCH, LeaderEpochCache
from kafkacompat.partitions.legacy_offsets import legacy_offsets
from kafkacompat.partitions.producer_snapshots import (
    delete_snapshots_after,
    load_state,
    replay,
    snapshot_bytes,
    write_snapshot,
)
from kafkacompat.partitions.producer_state import (
    BatchMetadata,
    PartitionProducerState,
    batch_headers,
)
from kafkacompat.partitions.replica_state import LeaderReplicas
from kafkacompat.protocol.control_records import ABORT_MARKER, COMMIT_MARKER, marker_type
from kafkacompat.protocol.records import BatchHeader, has_producer_id, iter_batches, read_header
from kafkacompat.protocol.records import verify_crc as _verify_crc
from kafkacompat.storage.cleaner import (
    CleanerStats,
    CleaningAborted,
    clean,
    needs_cleaning,
    plan_cleaning,
)
from kafkacompat.storage.log_config import LogConfig
from kafkacompat.storage.partition_log import AppendResult, PartitionLog, ReadResult
from kafkacompat.storage.results import TimestampOffset
from kafkacompat.storage.segment import LogSegment
from kafkacompat.storage.txn_index import AbortedTxn

__all__ = ["FetchWaiter", "FlushHook", "Partition"]

#: Called on the loop with the seconds a flush (fsync of the log's files) took.
FlushHook = Callable[[float], None]


class FetchWaiter:
    """A long-polling fetch waiting on several partitions: any one's new data wakes it."""

    __slots__ = ("event",)

    def __init__(self) -> None:
        self.event = trio.Event()


def _verify_crcs(records: memoryview | bytes) -> None:
    for pos, header in iter_batches(records):
        _verify_crc(records, pos, header)


class Partition:
    """A partition this broker hosts (and, on a single broker, leads at epoch 0)."""

    def __init__(
        self,
        topic: str,
        index: int,
        log: PartitionLog,
        *,
        producer_expiration_ms: int,
        durable: bool = True,
        flush_hooks: list[FlushHook] | None = None,
    ) -> None:
        self.topic = topic
        self.index = index
        self.log = log
        #: Held while the log changes (append with its fsync, record deletion, retention).
        self.lock = trio.Lock()
        #: Set, under the lock, when the partition's topic is deleted.
        self.deleted = False
        #: A compaction is between its plan and its swap: retention waits for it.
        self.cleaning = False
        self.producer_expiration_ms = producer_expiration_ms
        self.leader_epochs = LeaderEpochCache(log.directory, durable=durable)
        if self.leader_epochs.latest_epoch < 0:
            self.leader_epochs.assign(0, log.log_start_offset)
        #: Offsets below it are committed to every in-sync replica.
        self.high_watermark = log.log_end_offset
        #: The followers, while this broker leads the partition with other replicas (a cluster
        #: member); None: this broker is the only replica, every append is committed at once.
        self.replicas: LeaderReplicas | None = None
        #: Another broker leads (a cluster member following it).
        self.following = False
        #: The leader epoch followed: what the leader's answers are applied in (-1: none).
        self.followed_epoch = UNDEFINED_EPOCH
        #: Records and record-set bytes appended by Produce requests (Kafka's always-on
        #: messages-in and bytes-in counters), counted by the produce handler per append.
        self.records_in = 0
        self.bytes_in = 0
        self._high_watermark_moved = trio.Event()
        self._producers: PartitionProducerState | None = None
        self._waiters: set[FetchWaiter] = set()
        #: Told how long each flush took (metrics); usually one list shared by every partition.
        self.flush_hooks: list[FlushHook] = [] if flush_hooks is None else flush_hooks

    # -- what the partition is -------------------------------------------------------------------

    @property
    def leader_epoch(self) -> int:
        return self.leader_epochs.latest_epoch

    @property
    def log_end_offset(self) -> int:
        return self.log.log_end_offset

    @property
    def log_start_offset(self) -> int:
        return self.log.log_start_offset

    @property
    def config(self) -> LogConfig:
        return self.log.config

    @property
    def size_in_bytes(self) -> int:
        return self.log.size_in_bytes

    def update_config(self, config: LogConfig) -> None:
        self.log.update_config(config)

    def _require_live(self) -> None:
        if self.deleted:
            raise KafkaError(
                ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"{self.topic}-{self.index} was deleted"
            )

    def _advance_high_watermark(self) -> None:
        """Move the high watermark to what every in-sync replica has (never back)."""
        end = self.log.log_end_offset
        replicas = self.replicas
        high = end if replicas is None else replicas.high_watermark(end)
        if high > self.high_watermark:
            self.high_watermark = high
            moved, self._high_watermark_moved = self._high_watermark_moved, trio.Event()
            moved.set()
            if replicas is not None and self._waiters:
                self._wake_fetches()  # consumers see the records once they are committed

    # -- leading with followers ------------------------------------------------------------------

    def lead(
        self, node_id: int, replicas: tuple[int, ...], isr: tuple[int, ...], now_ms: int
    ) -> None:
        """This broker leads the partition (its epoch already assigned): track the followers
        in ``replicas``, or none when it is the only replica."""
        self.following = False
        self.followed_epoch = UNDEFINED_EPOCH
        if len(replicas) <= 1:
            self.replicas = None
            self._advance_high_watermark()
            return
        current = self.replicas
        if current is None:
            start = self.leader_epochs.entries()[-1][1]
            current = LeaderReplicas(
                node_id, replicas, isr, epoch_start_offset=start, now_ms=now_ms
            )
            self.replicas = current
        else:
            current.set_replicas(replicas, now_ms)
            current.set_isr(isr)
        self._advance_high_watermark()

    async def begin_leader_epoch(self, epoch: int) -> None:
        """This broker leads from ``epoch`` on: the epoch begins at the log end, and answers of
        the leader followed until now are no longer applied (`applies`). Under the lock, so
        an append from the previous leader is either wholly before the epoch or not at all."""
        async with self.lock:
            self.following = False
            self.followed_epoch = UNDEFINED_EPOCH
            if epoch > self.leader_epochs.latest_epoch:
                self.leader_epochs.assign(epoch, self.log.log_end_offset)

    def follow(self, leader_epoch: int) -> None:
        """Another broker leads, in ``leader_epoch``: the high watermark now comes from its
        answers, and produce requests waiting for it here are answered
        (NOT_LEADER_OR_FOLLOWER)."""
        self.replicas = None
        self.followed_epoch = leader_epoch
        if not self.following:
            self.following = True
            moved, self._high_watermark_moved = self._high_watermark_moved, trio.Event()
            moved.set()

    def follower_fetched(self, replica: int, fetch_offset: int, now_ms: int) -> bool:
        """A follower fetched from ``fetch_offset``: move the high watermark; True when the
        follower may now join the ISR."""
        replicas = self.replicas
        if replicas is None:
            return False
        maybe_join = replicas.follower_fetched(
            replica, fetch_offset, self.log.log_end_offset, now_ms
        )
        self._advance_high_watermark()
        return maybe_join and replicas.can_join(replica, self.high_watermark)

    def applies(self, leader_epoch: int | None) -> bool:
        """Whether an answer of the leader of ``leader_epoch`` may change this replica: only
        while following that epoch (None: unconditionally). A late answer of a leader no
        longer followed would write its batches under an epoch this replica has moved past."""
        return leader_epoch is None or (self.following and self.followed_epoch == leader_epoch)

    def take_leader_high_watermark(self, high_watermark: int) -> None:
        """A follower's high watermark: the leader's, capped by what it holds."""
        self.high_watermark = min(high_watermark, self.log.log_end_offset)

    async def wait_for_high_watermark(self, offset: int, deadline: float) -> bool:
        """Wait until the high watermark reaches ``offset`` or trio time ``deadline``; True
        when it did."""
        with trio.move_on_at(deadline):
            while self.high_watermark < offset and not self.deleted and not self.following:
                await self._high_watermark_moved.wait()
        return self.high_watermark >= offset

    # -- appends ---------------------------------------------------------------------------------

    async def append(
        self,
        records: memoryview | bytes,
        *,
        fsync: bool = False,
        verify: Callable[[], None] | None = None,
    ) -> AppendResult:
        """Append a produced record set; with ``fsync`` it is on disk before this returns.

        Appends are serialised; ``verify`` (raising KafkaError to refuse) runs with the lock
        held, with no wait between it and the write: a transaction cannot end in between.
        """
        lock = self.lock
        if lock.locked():
            await lock.acquire()
        else:
            # Uncontended: no trip through the scheduler (the response send is the checkpoint).
            lock.acquire_nowait()
        log = self.log
        try:
            if self.deleted:
                self._require_live()
            producers = self._producers
            if producers is None or producers.next_offset != log.log_end_offset:
                producers = await self._load_producer_state()
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
            result = log.append(
                records, leader_epoch=self.leader_epochs.latest_epoch, now_ms=now, auto_flush=False
            )
            end = log.log_end_offset
            producers.applied(headers, result.base_offset, end)
            if self.replicas is None:
                self.high_watermark = end  # this broker is the whole ISR: committed at once
            else:
                self._advance_high_watermark()
            if (
                fsync
                or log.flush_due(now)
                or log.active_segment_base != producers.snapshot_segment_base
            ):
                await self._after_write(producers, now, fsync)
        finally:
            lock.release()
        if self._waiters:
            self._wake_fetches()
        return result

    async def write_marker(
        self, control_batch: bytes, *, commit: bool, check_epoch: bool = False
    ) -> int:
        """Append a transaction marker (a control batch) and end the producer's open
        transaction here; returns the marker's offset. With ``check_epoch`` a marker older
        than the producer's epoch on the partition is INVALID_PRODUCER_EPOCH."""
        log = self.log
        async with self.lock:
            self._require_live()
            producers = await self._load_producer_state()
            header = read_header(control_batch)
            entry = producers.entries.get(header.producer_id)
            if check_epoch and entry is not None and header.producer_epoch < entry.epoch:
                raise KafkaError(
                    ErrorCode.INVALID_PRODUCER_EPOCH,
                    f"marker epoch {header.producer_epoch} is older than {entry.epoch}",
                )
            now = now_ms()
            result = log.append(
                control_batch,
                leader_epoch=self.leader_epoch,
                now_ms=now,
                allow_control=True,
                auto_flush=False,
            )
            producers.apply(header, result.base_offset, COMMIT_MARKER if commit else ABORT_MARKER)
            producers.next_offset = log.log_end_offset
            self._advance_high_watermark()
            await self._after_write(producers, now, fsync=False)
        self._wake_fetches()
        return result.base_offset

    async def _after_write(self, producers: PartitionProducerState, now: int, fsync: bool) -> None:
        log = self.log
        if fsync or log.flush_due(now):
            await self._flush(now)
        if log.active_segment_base != producers.snapshot_segment_base:
            # Kafka snapshots producer state at every segment roll, bounding replay after a crash.
            data, offset = snapshot_bytes(producers, log, now_ms(), self.producer_expiration_ms)
            await trio.to_thread.run_sync(write_snapshot, log.directory, data, offset)

    async def _flush(self, now: int) -> None:
        """Flush the log on a worker thread, timed there when flush hooks are set."""
        hooks = self.flush_hooks
        if not hooks:
            await trio.to_thread.run_sync(self.log.flush, now)
            return
        seconds = await trio.to_thread.run_sync(_timed_flush, self.log, now)
        for hook in hooks:
            hook(seconds)

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

    async def delete_records(self, offset: int) -> int:
        """Advance the log start offset (DeleteRecords, -1: the high watermark); returns the
        new low watermark. Beyond the high watermark is OFFSET_OUT_OF_RANGE."""
        async with self.lock:
            self._require_live()
            hw = self.high_watermark
            if offset > hw:
                raise KafkaError(ErrorCode.OFFSET_OUT_OF_RANGE, f"offset {offset} beyond {hw}")
            low = self.log.delete_records_before(hw if offset == -1 else offset)
            self.leader_epochs.truncate_from_start(low)
            return low

    async def maintain(self, now: int, *, retention: bool) -> None:
        """Time-based flush and (with ``retention``) retention, under the lock: what changes the
        log's state runs on the loop, fsync and file removal on a worker thread."""
        async with self.lock:
            if self.deleted:
                return
            log = self.log
            if log.flush_due(now):
                await self._flush(now)
            if retention and not self.cleaning:
                expired = log.detach_expired_segments(now)
                if expired:
                    self.leader_epochs.truncate_from_start(log.log_start_offset)
                    await trio.to_thread.run_sync(_delete_segments, expired)

    # -- compaction ------------------------------------------------------------------------------

    def needs_cleaning(self, now: int) -> bool:
        """Kafka's rule (``min.cleanable.dirty.ratio``, ``max.compaction.lag.ms``) on a
        compacted topic."""
        log = self.log
        if not log.config.compact_enabled:
            return False
        return needs_cleaning(log, now_ms=now, last_stable_offset=self.last_stable_offset())

    async def clean(
        self, *, dedupe_buffer_bytes: int, stopping: Callable[[], bool] = lambda: False
    ) -> CleanerStats | None:
        """Compact the log's closed segments below the last stable offset: planned under the
        lock, cleaned on a worker thread while appends go on, swapped in under the lock."""
        async with self.lock:
            self._require_live()
            if self.cleaning:
                return None
            producers = await self._load_producer_state()
            plan = plan_cleaning(
                self.log,
                now_ms=now_ms(),
                last_stable_offset=self.last_stable_offset(),
                active_producers=producers.entries.keys(),
            )
            if plan is None:
                return None
            self.cleaning = True
        try:
            result = await trio.to_thread.run_sync(
                partial(
                    clean,
                    plan,
                    dedupe_buffer_bytes=dedupe_buffer_bytes,
                    should_stop=lambda: self.deleted or stopping(),
                )
            )
        except CleaningAborted:
            self.cleaning = False
            return None
        except BaseException:
            self.cleaning = False
            raise
        try:
            async with self.lock:
                if self.deleted or not self.log.swap_cleaned(result.cleaned):
                    result.discard()
                    return None
                return result.stats
        finally:
            self.cleaning = False

    # -- producer state --------------------------------------------------------------------------

    async def _load_producer_state(self) -> PartitionProducerState:
        """The idempotent-producer state, loaded (snapshot plus a replay of the log's batch
        headers, on a worker thread) on first use and brought up to the log end."""
        state = self._producers
        if state is not None and state.next_offset == self.log.log_end_offset:
            return state
        return await trio.to_thread.run_sync(self.producer_state_now)

    async def load_producer_state(self) -> None:
        """Bring the producer state (open transactions, for the last stable offset) up to date
        on a worker thread, so reads on the loop find it current."""
        state = self._producers
        if state is not None and state.next_offset == self.log.log_end_offset:
            return
        async with self.lock:
            await self._load_producer_state()

    def producer_state_now(self) -> PartitionProducerState:
        """The producer state, loaded or replayed here and now (reads the log: slow)."""
        log = self.log
        state = self._producers
        if state is None or state.next_offset > log.log_end_offset:
            state = self._producers = load_state(log)
            state.snapshot_segment_base = log.active_segment_base
        elif state.next_offset < log.log_end_offset:
            replay(state, log)
        return state

    def snapshot_producer_state(self) -> None:
        """Clean shutdown: snapshot the loaded state at the log end."""
        if self._producers is None:
            return
        state = self.producer_state_now()
        data, offset = snapshot_bytes(state, self.log, now_ms(), self.producer_expiration_ms)
        write_snapshot(self.log.directory, data, offset)

    def last_stable_offset(self) -> int:
        """First offset of the earliest open transaction (not below the log start offset:
        records deleted before it are gone), else the high watermark."""
        unstable = self.producer_state_now().first_unstable_offset()
        if unstable is None:
            return self.high_watermark
        return min(max(unstable, self.log.log_start_offset), self.high_watermark)

    def aborted_transactions(self, start_offset: int, upper_offset: int) -> list[AbortedTxn]:
        """Aborted transactions overlapping [start_offset, upper_offset)."""
        self.producer_state_now()  # replays markers the index may have lost
        return self.log.txn_index.collect(start_offset, upper_offset)

    # -- reads -----------------------------------------------------------------------------------

    def read(
        self,
        offset: int,
        max_bytes: int,
        *,
        min_one: bool = True,
        max_offset: int | None = None,
        to_log_end: bool = False,
    ) -> ReadResult:
        """Whole batches from ``offset`` below the high watermark (and ``max_offset``);
        ``to_log_end`` (a follower's fetch) reads up to the log end instead."""
        hw = self.log.log_end_offset if to_log_end else self.high_watermark
        if offset > hw:
            lso = self.log.log_start_offset
            raise KafkaError(ErrorCode.OFFSET_OUT_OF_RANGE, f"offset {offset} not in [{lso}, {hw}]")
        bound = hw if max_offset is None else min(max_offset, hw)
        return self.log.read(offset, max_bytes, min_one=min_one, max_offset=bound)

    def offset_for_timestamp(self, timestamp: int) -> TimestampOffset | None:
        return self.log.offset_for_timestamp(timestamp)

    def legacy_offsets(self, timestamp: int, max_num_offsets: int) -> list[int]:
        """ListOffsets v0: up to ``max_num_offsets`` segment base offsets, newest first."""
        return legacy_offsets(self.log, self.high_watermark, timestamp, max_num_offsets)

    # -- waiting for data ------------------------------------------------------------------------

    def add_waiter(self, waiter: FetchWaiter) -> None:
        self._waiters.add(waiter)

    def remove_waiter(self, waiter: FetchWaiter) -> None:
        self._waiters.discard(waiter)

    @property
    def waiting_fetches(self) -> int:
        return len(self._waiters)

    def _wake_fetches(self) -> None:
        """Wake the fetches waiting on this partition (free when none waits, the common case)."""
        if self._waiters:
            waiters, self._waiters = self._waiters, set()
            for waiter in waiters:
                waiter.event.set()

    # -- following a leader ----------------------------------------------------------------------

    async def append_as_follower(
        self, records: memoryview | bytes, leader_epoch: int | None = None
    ) -> int:
        """Append batches fetched from the leader as they are (`PartitionLog.append_replicated`:
        those already here are skipped); returns the new log end offset. Fetched from the
        leader of ``leader_epoch``: nothing is written unless still following it (`applies`).

        The leader epochs learn each newer epoch from the batches, and the producer state
        follows them as on the leader (sequences for duplicate detection, open transactions,
        aborted ones into the transaction index), so this replica can take over as leader.
        The high watermark is left alone: it comes from the leader's answers.
        """
        async with self.lock:
            self._require_live()
            log = self.log
            start = log.log_end_offset
            if not records or not self.applies(leader_epoch):
                return start
            producers = await self._load_producer_state()
            now = now_ms()
            log.append_replicated(records, now_ms=now)
            end = log.log_end_offset
            if end == start:
                return end
            epochs = self.leader_epochs
            for pos, header in iter_batches(records):
                if header.base_offset < start:
                    continue
                if header.partition_leader_epoch > epochs.latest_epoch:
                    epochs.assign(header.partition_leader_epoch, header.base_offset)
                if header.producer_id >= 0:
                    marker = marker_type(records, pos) if header.is_control else -1
                    producers.apply(header, header.base_offset, marker)
            producers.next_offset = end
            if log.flush_due(now) or log.active_segment_base != producers.snapshot_segment_base:
                await self._after_write(producers, now, fsync=False)
        if self._waiters:
            self._wake_fetches()
        return end

    async def truncate_to(self, offset: int, leader_epoch: int | None = None) -> None:
        """Cut the log's tail from ``offset`` (a follower's divergent records; a batch holding
        ``offset`` goes whole), with the leader epochs starting past the new end and the
        producer snapshots beyond it; the producer state is rebuilt on next use and the high
        watermark capped by the new end. Below the log start the log restarts empty there.

        Runs on the loop: reads (on the loop, without the lock) never see half a truncation.
        Told by the leader of ``leader_epoch``: nothing is cut unless still following it.
        """
        async with self.lock:
            self._require_live()
            if not self.applies(leader_epoch):
                return
            log = self.log
            if offset >= log.log_end_offset:
                # Nothing to cut, but an epoch begun here with no batch yet (this broker led it)
                # is not the leader's: forget it, or the next fetch would diverge again.
                self.leader_epochs.truncate_from_end(offset)
                return
            restart = offset < log.log_start_offset
            log.truncate_to(offset)
            self._after_truncation(restart)

    async def truncate_fully(self, offset: int, leader_epoch: int | None = None) -> None:
        """Empty the log and restart it at ``offset`` (a follower behind the leader's log
        start); leader epochs, producer state and the high watermark start over there too.
        Told by the leader of ``leader_epoch``: nothing changes unless still following it."""
        async with self.lock:
            self._require_live()
            if not self.applies(leader_epoch):
                return
            self.log.truncate_fully(offset)
            self._after_truncation(restart=True)

    def _after_truncation(self, restart: bool) -> None:
        log = self.log
        end = log.log_end_offset
        if restart:
            self.leader_epochs.clear()
        else:
            self.leader_epochs.truncate_from_end(end)
        delete_snapshots_after(log.directory, -1 if restart else end)
        self._producers = None
        # Capped by the log end; an emptied log restarts its high watermark at its start.
        self.high_watermark = end if restart else min(self.high_watermark, end)

    def end_offset_for_epoch(self, epoch: int) -> tuple[int, int]:
        """``(epoch, end offset)``: the largest local epoch not above ``epoch`` and where it
        ends (OffsetForLeaderEpoch's answer; ``(-1, -1)`` when unknown)."""
        return self.leader_epochs.end_offset_for(epoch, self.log.log_end_offset)

    def diverging_truncation_offset(self, epoch: int, end_offset: int) -> int:
        """Where to truncate, given the leader's largest epoch not above ours and its end
        offset (Fetch's DivergingEpoch or an OffsetForLeaderEpoch answer) (KIP-101/279).

        The leader knows nothing of it (end offset -1): the high watermark. No epoch (-1) or
        none tracked here: the leader's end offset. An epoch known here: the lower of both
        replicas' ends of it. One unknown here: the end of our largest epoch below it, after
        which the caller asks again with our new latest epoch (the leader may go lower).
        Never above the log end.
        """
        log_end = self.log.log_end_offset
        if end_offset < 0:
            return min(self.high_watermark, log_end)
        if epoch < 0:
            return min(end_offset, log_end)
        local_epoch, local_end = self.end_offset_for_epoch(epoch)
        if local_end < 0:
            return min(end_offset, log_end)
        if local_epoch != epoch:
            return min(local_end, log_end)
        return min(local_end, end_offset, log_end)


def _timed_flush(log: PartitionLog, now: int) -> float:
    started = perf_counter()
    log.flush(now)
    return perf_counter() - started


def _delete_segments(segments: list[LogSegment]) -> None:
    for segment in segments:
        segment.delete()
