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
from typing import TYPE_CHECKING

import trio

from kafkacompat.clock import now_ms
from kafkacompat.config import Config
from kafkacompat.coordinators.producer_ids import producer_id_manager
from kafkacompat.coordinators.transaction_coordinator import (
    Completion,
    TransactionCoordinator,
    TxnConfig,
)
from kafkacompat.coordinators.transaction_state import NAMESPACE, TransactionStateStore
from kafkacompat.coordinators.txn_offsets import NAMESPACE as OFFSETS_NAMESPACE
from kafkacompat.coordinators.txn_offsets import PendingTxnOffsets
from kafkacompat.errors import ErrorCode, KafkaError
from kafkacompat.partitions.manager import PartitionManager
from kafkacompat.protocol.control_records import control_batch
from kafkacompat.storage.state_store import StateStore

if TYPE_CHECKING:
    from kafkacompat.coordinators.group_coordinator import GroupCoordinator

__all__ = ["TransactionService"]

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
    ) -> None:
        self.partitions = partitions
        self.groups = groups
        self.offsets = PendingTxnOffsets(state.namespace(OFFSETS_NAMESPACE))
        ids = producer_id_manager(state)
        self.coordinator = TransactionCoordinator(
            TransactionStateStore(state.namespace(NAMESPACE)),
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
            for topic, partition in sorted(completion.partitions):
                try:
                    hosted = self.partitions.partition(topic, partition)
                    await hosted.write_marker(marker, commit=completion.commit)
                except KafkaError as exc:
                    if exc.code != ErrorCode.UNKNOWN_TOPIC_OR_PARTITION:
                        raise  # the partition is gone (topic deleted): nothing to mark
            pid = completion.producer_id
            for group in sorted(completion.groups):
                pending = self.offsets.get(group, pid)
                if completion.commit and pending:
                    self.groups.commit_transactional_offsets(group, pending)
                self.offsets.remove(group, pid)
            self.coordinator.complete(completion)
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
