"""Every partition this broker hosts, over the storage engine's data directory.

Handlers reach a partition here (`partition`), never a log; the controller creates, grows,
reconfigures and deletes topics here; the broker's background task runs `maintain`.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AsyncExitStack
from functools import partial
from pathlib import Path

import trio

from kafkacompat.errors import ErrorCode, KafkaError
from kafkacompat.partitions.leader_epoch import LeaderEpochCache
from kafkacompat.partitions.partition import FetchWaiter, FlushHook, Partition
from kafkacompat.storage.file_cache import DEFAULT_MAX_OPEN_FILES
from kafkacompat.storage.log_config import LogConfig
from kafkacompat.storage.log_copy import LogCopy
from kafkacompat.storage.log_dirs import LogDirReport
from kafkacompat.storage.log_manager import LogManager, remove_trees
from kafkacompat.storage.metadata_store import TopicMetadata
from kafkacompat.storage.partition_log import PartitionLog
from kafkacompat.storage.state_store import StateStore

__all__ = ["PartitionManager"]

log = logging.getLogger("kafkacompat.partitions")

#: A move copies in rounds while appends go on, until a round copies at most this much (or
#: after this many rounds); the rest is copied while appends wait.
_CATCH_UP_BYTES = 4 << 20
_COPY_ROUNDS = 10
_CLEANING_POLL_S = 0.05


class PartitionManager:
    """The hosted partitions by topic and index, and the topic catalogue they belong to."""

    def __init__(
        self,
        data_dir: Path,
        defaults: LogConfig,
        *,
        producer_expiration_ms: int,
        fsync_state: bool,
        max_open_files: int = DEFAULT_MAX_OPEN_FILES,
        log_dirs: Sequence[Path] = (),
    ) -> None:
        """``log_dirs`` (``log.dirs``; empty: ``data_dir`` only): where partition logs are
        kept; the first (or ``data_dir``) also keeps topic metadata and state."""
        self.data_dir = log_dirs[0] if log_dirs else data_dir
        self._logs = LogManager(
            self.data_dir,
            defaults,
            fsync_state=fsync_state,
            max_open_files=max_open_files,
            log_dirs=log_dirs,
        )
        #: Moves between log directories in progress: set when each ends.
        self._moving: dict[tuple[str, int], trio.Event] = {}
        #: Moves asked for (AlterReplicaLogDirs), carried out in order by `run_moves`.
        self._move_requests, self._move_queue = trio.open_memory_channel[tuple[str, int, str]](
            math.inf
        )
        self._producer_expiration_ms = producer_expiration_ms
        self._durable = fsync_state
        self._partitions: dict[tuple[str, int], Partition] = {}
        #: Told how long each partition flush took (metrics); shared by every partition.
        self.flush_hooks: list[FlushHook] = []
        for topic, index, plog in self._logs.partition_logs():
            self._host(topic, index, plog)

    def _host(self, topic: str, index: int, plog: PartitionLog) -> Partition:
        partition = Partition(
            topic,
            index,
            plog,
            producer_expiration_ms=self._producer_expiration_ms,
            durable=self._durable,
            flush_hooks=self.flush_hooks,
        )
        self._partitions[(topic, index)] = partition
        return partition

    @property
    def state(self) -> StateStore:
        """The broker's durable key/value state (group offsets, producer ids, transactions)."""
        return self._logs.state

    @property
    def defaults(self) -> LogConfig:
        """Topic config defaults as the broker's settings make them."""
        return self._logs.defaults

    # -- partitions ------------------------------------------------------------------------------

    def partition(self, topic: str, index: int) -> Partition:
        """The hosted partition, or UNKNOWN_TOPIC_OR_PARTITION."""
        partition = self._partitions.get((topic, index))
        if partition is None:
            raise KafkaError(
                ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"unknown partition {topic}-{index}"
            )
        return partition

    def partition_or_none(self, topic: str, index: int) -> Partition | None:
        return self._partitions.get((topic, index))

    def partitions(self) -> list[Partition]:
        """Every hosted partition, as a list that later topic changes do not disturb."""
        return list(self._partitions.values())

    def last_stable_offset(self, topic: str, index: int) -> int:
        return self.partition(topic, index).last_stable_offset()

    # -- the topic catalogue (the controller writes it; the metadata image reads it) -------------

    def topics(self) -> list[TopicMetadata]:
        return self._logs.topics()

    def topic(self, name: str) -> TopicMetadata | None:
        return self._logs.topic(name)

    def topic_by_id(self, topic_id: uuid.UUID) -> TopicMetadata | None:
        return self._logs.topic_by_id(topic_id)

    async def create_topic(
        self,
        name: str,
        partitions: int,
        configs: Mapping[str, str | None] | None = None,
        *,
        validate_only: bool = False,
        topic_id: uuid.UUID | None = None,
        hosted: Iterable[int] | None = None,
    ) -> TopicMetadata:
        """Create the topic's logs (on a worker thread: thousands of directories and files take
        seconds) and host its partitions. The caller serialises catalogue changes. In a cluster
        ``topic_id`` is the one the cluster metadata gave the topic and ``hosted`` the
        partitions this broker holds a replica of (None: all)."""
        create = partial(
            self._logs.create_topic,
            name,
            partitions,
            configs,
            topic_id=topic_id,
            validate_only=validate_only,
            hosted=hosted,
        )
        meta = create() if validate_only else await trio.to_thread.run_sync(create)
        if not validate_only:
            self._host_new(meta)
        return meta

    def _host_new(self, meta: TopicMetadata) -> None:
        for index in meta.hosted_indexes():
            if (meta.name, index) not in self._partitions:
                self._host(meta.name, index, self._logs.log(meta.name, index))

    async def add_partitions(
        self,
        name: str,
        new_total: int,
        *,
        validate_only: bool = False,
        hosted: Iterable[int] | None = None,
    ) -> None:
        """Grow the topic; ``hosted`` as in `create_topic` (then `host_only` drops replicas
        that are no longer this broker's)."""
        add = partial(
            self._logs.add_partitions,
            name,
            new_total,
            validate_only=validate_only,
            hosted=hosted,
        )
        if validate_only:
            add()
            return
        await trio.to_thread.run_sync(add)
        self._host_new(self._logs.require_topic(name))

    async def host_only(self, name: str, hosted: Iterable[int]) -> None:
        """Keep exactly the partitions ``hosted`` of the topic (a cluster member's replicas):
        new ones are created empty, the others deleted once appends in flight have finished."""
        wanted = frozenset(hosted)
        meta = self._logs.require_topic(name)
        held = {index for (topic, index) in self._partitions if topic == name}
        if meta.hosted == wanted and held == {i for i in wanted if i < meta.partitions}:
            return
        dropped = [self._partitions[(name, index)] for index in sorted(held - wanted)]
        async with AsyncExitStack() as stack:
            for partition in dropped:
                await stack.enter_async_context(partition.lock)
            for partition in dropped:
                partition.deleted = True
                del self._partitions[(name, partition.index)]
            detached = await trio.to_thread.run_sync(self._logs.set_hosted, name, wanted)
        self._host_new(self._logs.require_topic(name))
        await trio.to_thread.run_sync(remove_trees, detached)

    def set_topic_configs(self, name: str, configs: Mapping[str, str | None]) -> TopicMetadata:
        """Replace the topic's config overrides and apply them to its partitions."""
        return self._logs.set_topic_configs(name, configs)

    async def delete_topic(self, name: str) -> None:
        """Delete a topic and its data, after any append in flight on it has finished."""
        self._logs.require_topic(name)
        hosted = [p for (topic, _), p in list(self._partitions.items()) if topic == name]
        async with AsyncExitStack() as held:
            for partition in hosted:
                await held.enter_async_context(partition.lock)
            for partition in hosted:
                partition.deleted = True
                del self._partitions[(name, partition.index)]
            detached = await trio.to_thread.run_sync(self._logs.detach_topic, name)
        await trio.to_thread.run_sync(remove_trees, detached)

    # -- log directories -------------------------------------------------------------------------

    def log_dir_reports(self) -> list[LogDirReport]:
        """Every log directory, its space and the replicas in it (DescribeLogDirs)."""
        return self._logs.log_dir_reports()

    def request_move(self, topic: str, index: int, path: str) -> None:
        """Check a move of the partition to the log directory ``path`` and queue it for
        `run_moves` (AlterReplicaLogDirs is answered then, as Kafka answers once the future
        replica is started: DescribeLogDirs shows the copy as a future replica until it is
        swapped in). LOG_DIR_NOT_FOUND, KAFKA_STORAGE_ERROR, UNKNOWN_TOPIC_OR_PARTITION."""
        self._logs.log_dir(path)
        self.partition(topic, index)
        self._move_requests.send_nowait((topic, index, path))

    async def run_moves(self) -> None:
        """Carry out the requested moves one at a time, until cancelled."""
        async for topic, index, path in self._move_queue:
            try:
                await self.move_replica(topic, index, path)
            except KafkaError as exc:
                log.warning("cannot move %s-%d to %s: %s", topic, index, path, exc)

    async def move_replica(self, topic: str, index: int, path: str) -> None:
        """Move the partition's log to the log directory ``path`` (AlterReplicaLogDirs), as
        Kafka: a copy is made while appends go on, brought level and swapped in while they
        wait. Already there: nothing. LOG_DIR_NOT_FOUND, KAFKA_STORAGE_ERROR,
        UNKNOWN_TOPIC_OR_PARTITION."""
        target = self._logs.log_dir(path)
        key = (topic, index)
        while (moving := self._moving.get(key)) is not None:
            await moving.wait()
        partition = self.partition(topic, index)
        if self._logs.log_dir_of(topic, index) == target:
            return
        done = self._moving[key] = trio.Event()
        try:
            copy = self._logs.start_move(topic, index, target)
            try:
                old_dir = await self._copy_and_swap(partition, copy)
            except BaseException as exc:
                self._logs.abort_move(topic, index, copy)
                if isinstance(exc, OSError):
                    raise KafkaError(
                        ErrorCode.KAFKA_STORAGE_ERROR, f"moving {topic}-{index} failed: {exc}"
                    ) from exc
                raise
        finally:
            del self._moving[key]
            done.set()
        await trio.to_thread.run_sync(remove_trees, [old_dir])

    async def _copy_and_swap(self, partition: Partition, copy: LogCopy) -> Path:
        key = (partition.topic, partition.index)
        for _ in range(_COPY_ROUNDS):  # catch up while appends go on
            copied = await trio.to_thread.run_sync(copy.copy_round, copy.plan())
            if copied <= _CATCH_UP_BYTES:
                break
        while True:
            async with partition.lock:
                if partition.deleted or self._partitions.get(key) is not partition:
                    raise KafkaError(
                        ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"{key[0]}-{key[1]} was deleted"
                    )
                if not partition.cleaning:  # a compaction swaps into the log it started on
                    await trio.to_thread.run_sync(copy.finish)
                    log, old_dir = self._logs.commit_move(*key, copy)
                    self.replace_log(partition, log)
                    return old_dir
            await trio.sleep(_CLEANING_POLL_S)

    def replace_log(self, partition: Partition, log: PartitionLog) -> None:
        """The partition carries on with ``log``, a copy of its log elsewhere (under its
        lock): the leader epochs are read again from the copy's checkpoint."""
        partition.log = log
        partition.leader_epochs = LeaderEpochCache(log.directory, durable=self._durable)

    # -- background work and shutdown ------------------------------------------------------------

    async def maintain(self, now: int, *, retention: bool) -> None:
        """Time-based flushes and (with ``retention``) retention, one partition at a time."""
        for partition in self.partitions():
            await partition.maintain(now, retention=retention)

    async def wait_for_data(self, partitions: list[Partition], deadline: float) -> None:
        """Return when one of ``partitions`` gets new data, or at ``deadline`` (trio time)."""
        waiter = FetchWaiter()
        for partition in partitions:
            partition.add_waiter(waiter)
        try:
            with trio.move_on_at(deadline):
                await waiter.event.wait()
        finally:
            for partition in partitions:
                partition.remove_waiter(waiter)

    def close(self) -> None:
        """Snapshot producer state, flush and close storage: the next start needs no recovery."""
        for partition in self.partitions():
            try:
                partition.snapshot_producer_state()
            except (OSError, KafkaError) as exc:
                log.warning(
                    "producer state snapshot of %s-%d failed: %s",
                    partition.topic,
                    partition.index,
                    exc,
                )
        self._logs.close()
