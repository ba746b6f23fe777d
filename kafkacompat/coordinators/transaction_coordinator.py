"""The transaction coordinator: Kafka's transaction state machine, synchronous and clock-driven.

Requests change metadata and get an error code back; when a transaction must complete (EndTxn,
a timeout, fencing an open transaction) the coordinator moves it to a Prepare state and hands
back a `Completion` for the caller to carry out (write the markers, settle transactional
offsets) before calling `complete`. Every change is written to the state store first.

Errors follow Kafka's coordinator; handlers map PRODUCER_FENCED to INVALID_PRODUCER_EPOCH for
request versions older than KIP-588.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from kafkacompat.coordinators.transaction_state import (
    NO_PRODUCER_EPOCH,
    NO_PRODUCER_ID,
    TopicPartition,
    TransactionStateStore,
    TxnMetadata,
    TxnState,
)
from kafkacompat.errors import ErrorCode
from kafkacompat.storage.state_store import KeyValueSource

__all__ = ["Completion", "TransactionCoordinator", "TxnConfig"]

E = ErrorCode
S = TxnState
#: Past this epoch a producer gets a new producer id (Kafka: Short.MaxValue - 1).
MAX_EPOCH = 32766


@dataclass(frozen=True, slots=True)
class TxnConfig:
    max_timeout_ms: int = 900_000
    id_expiration_ms: int = 604_800_000


@dataclass(frozen=True, slots=True)
class Completion:
    """A transaction to finish: markers with this producer id and epoch to these partitions."""

    transactional_id: str
    producer_id: int
    producer_epoch: int
    commit: bool
    partitions: frozenset[TopicPartition]
    groups: frozenset[str]


@dataclass(frozen=True, slots=True)
class InitResult:
    error: ErrorCode
    producer_id: int = NO_PRODUCER_ID
    producer_epoch: int = NO_PRODUCER_EPOCH
    #: An open transaction to abort before the request can be answered.
    abort_first: Completion | None = None


class TransactionCoordinator:
    def __init__(
        self,
        store: TransactionStateStore,
        config: TxnConfig,
        clock: Callable[[], int],
        allocate_producer_id: Callable[[], int],
    ) -> None:
        self.store = store
        self.config = config
        self.clock = clock
        self.allocate_producer_id = allocate_producer_id
        self.transactions: dict[str, TxnMetadata] = store.load()

    def take_over(self, source: KeyValueSource) -> None:
        """Coordinate the transactional ids stored in ``source`` too (a partition of
        ``__transaction_state`` led here now); `unfinished` then lists their preparing ones."""
        self.transactions.update(self.store.load(source))

    def hand_over(self, belongs: Callable[[str], bool]) -> None:
        """Let go of the transactional ids ``belongs`` picks (coordinated elsewhere now)."""
        for txn_id in [t for t in self.transactions if belongs(t)]:
            del self.transactions[txn_id]

    # -- helpers ---------------------------------------------------------------------------------

    def _write(self, txn: TxnMetadata) -> None:
        self.store.write(txn)

    def _transition(self, txn: TxnMetadata, state: TxnState) -> None:
        txn.transition(state, self.clock())
        self._write(txn)

    def _prepare(self, txn: TxnMetadata, commit: bool) -> Completion:
        self._transition(txn, S.PREPARE_COMMIT if commit else S.PREPARE_ABORT)
        return self._completion(txn)

    @staticmethod
    def _completion(txn: TxnMetadata) -> Completion:
        return Completion(
            txn.transactional_id,
            txn.producer_id,
            txn.producer_epoch,
            txn.state is S.PREPARE_COMMIT,
            frozenset(txn.partitions),
            frozenset(txn.groups),
        )

    def _fence_and_abort(self, txn: TxnMetadata) -> Completion:
        """Abort the open transaction with a bumped epoch, fencing its producer."""
        self._transition(txn, S.PREPARE_EPOCH_FENCE)
        if txn.producer_epoch < MAX_EPOCH:
            txn.producer_epoch += 1
        return self._prepare(txn, commit=False)

    def _check_producer(
        self, transactional_id: str, producer_id: int, epoch: int
    ) -> tuple[ErrorCode, TxnMetadata | None]:
        txn = self.transactions.get(transactional_id)
        if txn is None or txn.producer_id != producer_id:
            return E.INVALID_PRODUCER_ID_MAPPING, None
        if epoch != txn.producer_epoch:
            return E.PRODUCER_FENCED, None
        if txn.state.is_preparing:
            return E.CONCURRENT_TRANSACTIONS, None
        return E.NONE, txn

    # -- InitProducerId --------------------------------------------------------------------------

    def init_producer_id(
        self, transactional_id: str, timeout_ms: int, expected: tuple[int, int] | None = None
    ) -> InitResult:
        """Producer id and a new epoch for a transactional id (KIP-360: ``expected`` is the
        producer's current id and epoch, when it has one)."""
        if timeout_ms <= 0 or timeout_ms > self.config.max_timeout_ms:
            return InitResult(E.INVALID_TRANSACTION_TIMEOUT)
        now = self.clock()
        txn = self.transactions.get(transactional_id)
        if txn is None:
            txn = TxnMetadata(
                transactional_id, self.allocate_producer_id(), 0, timeout_ms, last_update_ms=now
            )
            self.transactions[transactional_id] = txn
            self._write(txn)
            return InitResult(E.NONE, txn.producer_id, txn.producer_epoch)
        if txn.state.is_preparing:
            return InitResult(E.CONCURRENT_TRANSACTIONS)
        if expected is not None:
            pid, epoch = expected
            if (pid, epoch) == (txn.last_producer_id, txn.last_producer_epoch) or (
                pid == txn.producer_id and epoch == txn.last_producer_epoch
            ):
                if txn.state.is_settled:  # a retry of the InitProducerId that bumped the epoch
                    return InitResult(E.NONE, txn.producer_id, txn.producer_epoch)
            elif (pid, epoch) != (txn.producer_id, txn.producer_epoch):
                return InitResult(E.PRODUCER_FENCED)
        if txn.state is S.ONGOING:
            return InitResult(E.CONCURRENT_TRANSACTIONS, abort_first=self._fence_and_abort(txn))
        if txn.state is S.DEAD:
            return InitResult(E.CONCURRENT_TRANSACTIONS)
        txn.last_producer_id, txn.last_producer_epoch = txn.producer_id, txn.producer_epoch
        if txn.producer_epoch >= MAX_EPOCH:
            txn.producer_id, txn.producer_epoch = self.allocate_producer_id(), 0
        else:
            txn.producer_epoch += 1
        txn.timeout_ms = timeout_ms
        txn.partitions.clear()
        txn.groups.clear()
        txn.start_ms = -1
        self._transition(txn, S.EMPTY)
        return InitResult(E.NONE, txn.producer_id, txn.producer_epoch)

    # -- building a transaction ------------------------------------------------------------------

    def _add(
        self, txn: TxnMetadata, partitions: Iterable[TopicPartition], groups: Iterable[str]
    ) -> None:
        new_parts = set(partitions) - txn.partitions
        new_groups = set(groups) - txn.groups
        if txn.state is S.ONGOING and not new_parts and not new_groups:
            return
        if txn.state is not S.ONGOING:
            txn.partitions.clear()
            txn.groups.clear()
            txn.start_ms = self.clock()
        txn.partitions |= new_parts
        txn.groups |= new_groups
        self._transition(txn, S.ONGOING)

    def add_partitions(
        self, transactional_id: str, producer_id: int, epoch: int, partitions: list[TopicPartition]
    ) -> ErrorCode:
        error, txn = self._check_producer(transactional_id, producer_id, epoch)
        if txn is None:
            return error
        self._add(txn, partitions, ())
        return E.NONE

    def verify_partitions(
        self, transactional_id: str, producer_id: int, epoch: int, partitions: list[TopicPartition]
    ) -> dict[TopicPartition, ErrorCode]:
        """AddPartitionsToTxn verify-only (KIP-890): are these partitions in the open
        transaction of this producer?"""
        error, txn = self._check_producer(transactional_id, producer_id, epoch)
        if txn is None:
            return dict.fromkeys(partitions, error)
        ongoing = txn.state is S.ONGOING
        return {
            tp: E.NONE if ongoing and tp in txn.partitions else E.INVALID_TXN_STATE
            for tp in partitions
        }

    def add_offsets(
        self, transactional_id: str, producer_id: int, epoch: int, group: str
    ) -> ErrorCode:
        error, txn = self._check_producer(transactional_id, producer_id, epoch)
        if txn is None:
            return error
        self._add(txn, (), (group,))
        return E.NONE

    def check_produce(
        self, transactional_id: str | None, producer_id: int, epoch: int, tp: TopicPartition
    ) -> ErrorCode:
        """A transactional batch may only go to a partition of its producer's open transaction."""
        txn = None if transactional_id is None else self.transactions.get(transactional_id)
        if txn is None or txn.producer_id != producer_id:
            return E.INVALID_PRODUCER_ID_MAPPING
        if epoch != txn.producer_epoch:
            return E.INVALID_PRODUCER_EPOCH
        if txn.state is not S.ONGOING or tp not in txn.partitions:
            return E.INVALID_TXN_STATE
        return E.NONE

    def check_offset_commit(
        self, transactional_id: str, producer_id: int, epoch: int, group: str
    ) -> ErrorCode:
        """TxnOffsetCommit: the group must be part of the producer's open transaction."""
        txn = self.transactions.get(transactional_id)
        if txn is None or txn.producer_id != producer_id:
            return E.INVALID_PRODUCER_ID_MAPPING
        if epoch != txn.producer_epoch:
            return E.PRODUCER_FENCED
        if txn.state is not S.ONGOING or group not in txn.groups:
            return E.INVALID_TXN_STATE
        return E.NONE

    # -- ending a transaction --------------------------------------------------------------------

    def end_txn(
        self, transactional_id: str, producer_id: int, epoch: int, commit: bool
    ) -> tuple[ErrorCode, Completion | None]:
        txn = self.transactions.get(transactional_id)
        if txn is None or txn.producer_id != producer_id:
            return E.INVALID_PRODUCER_ID_MAPPING, None
        if epoch != txn.producer_epoch:
            return E.PRODUCER_FENCED, None
        state = txn.state
        if state is S.ONGOING:
            return E.NONE, self._prepare(txn, commit)
        wanted_done = S.COMPLETE_COMMIT if commit else S.COMPLETE_ABORT
        wanted_prepare = S.PREPARE_COMMIT if commit else S.PREPARE_ABORT
        if state is wanted_done:
            return E.NONE, None  # a retry of an EndTxn that completed
        if state is wanted_prepare or state is S.PREPARE_EPOCH_FENCE:
            return E.CONCURRENT_TRANSACTIONS, None
        return E.INVALID_TXN_STATE, None

    def complete(self, completion: Completion) -> None:
        """The markers of ``completion`` are written: the transaction is complete."""
        txn = self.transactions.get(completion.transactional_id)
        if txn is None or txn.producer_id != completion.producer_id:
            return
        expected = S.PREPARE_COMMIT if completion.commit else S.PREPARE_ABORT
        if txn.state is not expected:
            return
        txn.partitions.clear()
        txn.groups.clear()
        self._transition(txn, S.COMPLETE_COMMIT if completion.commit else S.COMPLETE_ABORT)

    # -- timers and recovery ---------------------------------------------------------------------

    def unfinished(self) -> list[Completion]:
        """Transactions a crash left preparing: complete them (fencing ones abort)."""
        found = []
        for txn in self.transactions.values():
            if txn.state is S.PREPARE_EPOCH_FENCE:
                found.append(self._fence_and_abort_from_fence(txn))
            elif txn.state in (S.PREPARE_COMMIT, S.PREPARE_ABORT):
                found.append(self._completion(txn))
        return found

    def _fence_and_abort_from_fence(self, txn: TxnMetadata) -> Completion:
        if txn.producer_epoch < MAX_EPOCH:
            txn.producer_epoch += 1
        return self._prepare(txn, commit=False)

    def timed_out(self) -> list[Completion]:
        """Open transactions past their timeout: abort them, fencing their producers."""
        now = self.clock()
        return [
            self._fence_and_abort(txn)
            for txn in list(self.transactions.values())
            if txn.state is S.ONGOING and txn.start_ms + txn.timeout_ms <= now
        ]

    def expire_ids(self) -> list[str]:
        """Forget transactional ids idle past ``transactional.id.expiration.ms``."""
        now = self.clock()
        expired = [
            txn.transactional_id
            for txn in self.transactions.values()
            if txn.state.is_settled and now - txn.last_update_ms >= self.config.id_expiration_ms
        ]
        for txn_id in expired:
            self.transactions.pop(txn_id).transition(S.DEAD, now)
            self.store.delete(txn_id)
        return expired

    def next_deadline(self) -> int | None:
        deadlines = [
            txn.start_ms + txn.timeout_ms
            for txn in self.transactions.values()
            if txn.state is S.ONGOING
        ]
        return min(deadlines) if deadlines else None

    # -- introspection ---------------------------------------------------------------------------

    def describe(self, transactional_id: str) -> TxnMetadata | None:
        return self.transactions.get(transactional_id)

    def list(
        self, states: set[str], producer_ids: set[int], min_duration_ms: int = -1
    ) -> list[TxnMetadata]:
        now = self.clock()
        return [
            txn
            for txn in self.transactions.values()
            if (not states or txn.state.value in states)
            and (not producer_ids or txn.producer_id in producer_ids)
            and (
                min_duration_ms < 0
                or (txn.state is S.ONGOING and now - txn.start_ms >= min_duration_ms)
            )
        ]
