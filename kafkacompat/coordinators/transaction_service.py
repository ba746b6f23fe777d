"""The Trio shell of the transaction coordinator: writing markers, timeouts, recovery.

Completing a transaction writes a control batch (commit or abort marker) to each of its
partitions through its `Partition` (under each partition's lock), settles its pending
transactional offsets, then records the Complete state. Completions are shielded from
cancellation: once a transaction is preparing it must finish. `run_timers` finishes what a crash
left preparing, aborts transactions past their timeout and expires idle transactional ids.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Protocol

import trio

from kafkacompat.clock import now_ms
from kafkacompat.config import Config
from kafkacompat.coordinators.internal_topic import InternalTopic, follow_leadership
from kafkacompat.coordinators.producer_ids import producer_id_manager
from kafkacompat.coordinators.transaction_coordinator import (
    Completion,
    TransactionCoordinator,
    TxnConfig,
)
from kafkacompat.coordinators.transaction_state import TransactionStateStore
from kafkacompat.coordinators.txn_offsets import NAMESPACE as OFFSETS_NAMESPACE
from kafkacompat.coordinators.txn_offsets import PendingTxnOffsets
from kafkacompat.errors import ErrorCode, KafkaError
from kafkacompat.partitions.manager import PartitionManager
from kafkacompat.protocol.control_records import control_batch
from kafkacompat.storage.state_store import StateStore
from kafkacompat.storage.topic_names import OFFSETS_TOPIC

if TYPE_CHECKING:
    from kafkacompat.coordinators.group_coordinator import GroupCoordinator

__all__ = ["RemoteMarkers", "TransactionService"]

TopicPartition = tuple[str, int]


class RemoteMarkers(Protocol):
    """Transaction markers for partitions led by other brokers (a cluster's WriteTxnMarkers)."""

    def leader_of(self, topic: str, partition: int) -> int | None:
        """The leader of a partition when it is another broker; None when it is this one (or
        the partition is unknown)."""
        ...

    async def write_markers(
        self, node_id: int, completion: Completion, partitions: list[TopicPartition]
    ) -> None:
        """Have ``node_id`` write the completion's markers; KafkaError when it did not."""
        ...


log = logging.getLogger("kafkacompat.transactions")

_RETRY_S = 1.0


def txn_config(config: Config) -> TxnConfig:
    return TxnConfig(
        max_timeout_ms=config.get_int("transaction.max.timeout.ms"),
        id_expiration_ms=config.get_int("transactional.id.expiration.ms"),
    )


class TransactionService:
    def __init__(
        self,
        config: Config,
        state: StateStore,
        partitions: PartitionManager,
        groups: GroupCoordinator,
        topic: InternalTopic,
        groups_topic: InternalTopic,
        remote: RemoteMarkers | None = None,
    ) -> None:
        self.partitions = partitions
        self.groups = groups
        #: ``__consumer_offsets``: which groups this broker coordinates.
        self.groups_topic = groups_topic
        #: In a cluster: markers for partitions other brokers lead go through it.
        self.remote = remote
        #: ``__transaction_state``: where the transactions' state lives.
        self.topic = topic
        self.offsets = PendingTxnOffsets(state.namespace(OFFSETS_NAMESPACE))
        ids = producer_id_manager(state)
        self.coordinator = TransactionCoordinator(
            TransactionStateStore(topic),
            txn_config(config),
            now_ms,
            lambda: ids.allocate().producer_id,
        )
        self._wake = trio.Event()
        self._expiry_interval_ms = config.get_int(
            "transaction.remove.expired.transaction.cleanup.interval.ms"
        )
        self._next_expiry_ms = now_ms() + self._expiry_interval_ms
        self._in_flight: set[str] = set()
        self._retry = False

    def wake(self) -> None:
        """A deadline may have moved: let the timer task look again."""
        self._wake.set()

    def groups_elsewhere(self, group_id: str) -> bool:
        """Whether another broker coordinates ``group_id`` (its offsets are settled there)."""
        return self.groups_topic.coordinator_error(group_id) != ErrorCode.NONE

    def settle_offsets(self, group_id: str, producer_id: int, commit: bool) -> None:
        """Commit (or drop) the offsets ``producer_id``'s transaction holds for the group."""
        pending = self.offsets.get(group_id, producer_id)
        if commit and pending:
            self.groups.commit_transactional_offsets(group_id, pending)
        self.offsets.remove(group_id, producer_id)

    def settle_offsets_partition(self, partition: int, producer_id: int, commit: bool) -> None:
        """A marker for a partition of ``__consumer_offsets`` led here: settle the producer's
        pending offsets of the groups that partition holds."""
        for group_id in self.offsets.groups_of(producer_id):
            if self.groups_topic.partition_of(group_id) == partition:
                self.settle_offsets(group_id, producer_id, commit)

    def coordinator_error(self, transactional_id: str) -> ErrorCode:
        """NONE when this broker coordinates ``transactional_id``; else NOT_COORDINATOR, or
        COORDINATOR_LOAD_IN_PROGRESS while its partition is read."""
        return self.topic.coordinator_error(transactional_id)

    async def settled(self) -> None:
        """Wait until every change made so far is written (a handler, before answering)."""
        await self.topic.flush()

    async def lead(self, partitions: Iterable[int]) -> None:
        """Coordinate the transactional ids of exactly these ``__transaction_state``
        partitions; transactions taken over while preparing are finished."""
        await follow_leadership(self.topic, self.coordinator, partitions)
        self._retry = True
        self.wake()

    async def complete(self, completion: Completion) -> None:
        """Write the markers of ``completion`` and settle its offsets (never cancelled)."""
        self._in_flight.add(completion.transactional_id)
        try:
            await self._complete(completion)
        finally:
            self._in_flight.discard(completion.transactional_id)

    async def _complete(self, completion: Completion) -> None:
        with trio.CancelScope(shield=True):
            marker = control_batch(
                completion.producer_id,
                completion.producer_epoch,
                commit=completion.commit,
                timestamp=now_ms(),
            )
            remote: dict[int, set[TopicPartition]] = {}
            for topic, partition in sorted(completion.partitions):
                leader = self.remote.leader_of(topic, partition) if self.remote else None
                if leader is not None:
                    remote.setdefault(leader, set()).add((topic, partition))
                    continue
                try:
                    hosted = self.partitions.partition(topic, partition)
                    await hosted.write_marker(marker, commit=completion.commit)
                except KafkaError as exc:
                    if exc.code != ErrorCode.UNKNOWN_TOPIC_OR_PARTITION:
                        raise  # the partition is gone (topic deleted): nothing to mark
            for group in sorted(completion.groups):
                if self.groups_elsewhere(group):
                    offsets_partition = (OFFSETS_TOPIC, self.groups_topic.partition_of(group))
                    leader = self.remote.leader_of(*offsets_partition) if self.remote else None
                    if leader is None:
                        raise KafkaError(
                            ErrorCode.COORDINATOR_NOT_AVAILABLE, f"group {group} has no coordinator"
                        )
                    remote.setdefault(leader, set()).add(offsets_partition)
                else:
                    self.settle_offsets(group, completion.producer_id, completion.commit)
            for node_id, partitions in sorted(remote.items()):
                assert self.remote is not None
                await self.remote.write_markers(node_id, completion, sorted(partitions))
            self.coordinator.complete(completion)
            await self.topic.flush()
        self.wake()

    async def complete_or_retry(self, completion: Completion, *, wake: bool = True) -> None:
        """Complete now; on a storage failure the timer task retries until it succeeds (the
        transaction stays preparing, so its outcome is already decided)."""
        try:
            await self.complete(completion)
        except (KafkaError, OSError):
            log.exception("completing transaction %s failed", completion.transactional_id)
            self._retry = True
            if wake:
                self.wake()

    async def _retry_unfinished(self) -> None:
        self._retry = False
        for completion in self.coordinator.unfinished():
            if completion.transactional_id not in self._in_flight:
                await self.complete_or_retry(completion, wake=False)

    async def _run_due(self) -> None:
        """Abort the transactions past their timeout and expire idle transactional ids."""
        for completion in self.coordinator.timed_out():
            log.info("aborting transaction %s: timed out", completion.transactional_id)
            await self.complete_or_retry(completion, wake=False)
        now = now_ms()
        if now >= self._next_expiry_ms:
            self.coordinator.expire_ids()
            self._next_expiry_ms = now + self._expiry_interval_ms

    async def catch_up(self) -> None:
        """Run what is due now (the clock jumped), then have the timer task look again."""
        await self._run_due()
        self.wake()

    async def run_timers(self) -> None:
        """Finish transactions a crash left preparing, then abort timed-out ones, forever."""
        await self._retry_unfinished()
        while True:
            self._wake = trio.Event()
            await self._run_due()
            if self._retry:
                await self._retry_unfinished()
            deadline = self.coordinator.next_deadline()
            deadline = (
                self._next_expiry_ms if deadline is None else min(deadline, self._next_expiry_ms)
            )
            timeout = (deadline - now_ms() + 1) / 1000
            if self._retry:
                timeout = min(timeout, _RETRY_S)
            with trio.move_on_after(max(0.0, timeout) if math.isfinite(timeout) else math.inf):
                await self._wake.wait()
