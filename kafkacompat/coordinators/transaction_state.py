"""Transaction metadata, its state machine, and its durable home in the state store.

A transactional id's metadata is what Kafka keeps in ``__transaction_state``: producer id and
epoch (and the previous ones, for KIP-360 retries), timeout, state, the partitions and groups of
the current transaction, and its start time. The namespace holds one JSON value per id; every
transition is written before it is acted on, so a restart resumes where the crash left off.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import Enum

from kafkacompat.storage.state_store import KeyValueSource, KeyValueState

__all__ = [
    "NAMESPACE",
    "TransactionStateStore",
    "TxnMetadata",
    "TxnState",
    "valid_transition",
]

NAMESPACE = "__transaction_state"
NO_PRODUCER_ID = -1
NO_PRODUCER_EPOCH = -1

TopicPartition = tuple[str, int]


class TxnState(Enum):
    """Kafka's transaction states, by the names DescribeTransactions and ListTransactions use."""

    EMPTY = "Empty"
    ONGOING = "Ongoing"
    PREPARE_COMMIT = "PrepareCommit"
    PREPARE_ABORT = "PrepareAbort"
    COMPLETE_COMMIT = "CompleteCommit"
    COMPLETE_ABORT = "CompleteAbort"
    DEAD = "Dead"
    PREPARE_EPOCH_FENCE = "PrepareEpochFence"

    @property
    def is_preparing(self) -> bool:
        """A transaction is completing: its markers are being written."""
        return self in (
            TxnState.PREPARE_COMMIT,
            TxnState.PREPARE_ABORT,
            TxnState.PREPARE_EPOCH_FENCE,
        )

    @property
    def is_settled(self) -> bool:
        """No transaction in progress: a new one may start."""
        return self in (TxnState.EMPTY, TxnState.COMPLETE_COMMIT, TxnState.COMPLETE_ABORT)


S = TxnState
#: The states each state may be entered from (Kafka's valid previous states).
_VALID_PREVIOUS: dict[TxnState, frozenset[TxnState]] = {
    S.EMPTY: frozenset({S.EMPTY, S.COMPLETE_COMMIT, S.COMPLETE_ABORT}),
    S.ONGOING: frozenset({S.ONGOING, S.EMPTY, S.COMPLETE_COMMIT, S.COMPLETE_ABORT}),
    S.PREPARE_COMMIT: frozenset({S.ONGOING}),
    S.PREPARE_ABORT: frozenset({S.ONGOING, S.PREPARE_EPOCH_FENCE}),
    S.COMPLETE_COMMIT: frozenset({S.PREPARE_COMMIT}),
    S.COMPLETE_ABORT: frozenset({S.PREPARE_ABORT}),
    S.DEAD: frozenset({S.EMPTY, S.COMPLETE_COMMIT, S.COMPLETE_ABORT}),
    S.PREPARE_EPOCH_FENCE: frozenset({S.ONGOING}),
}


def valid_transition(old: TxnState, new: TxnState) -> bool:
    return old in _VALID_PREVIOUS[new]


@dataclass(slots=True)
class TxnMetadata:
    transactional_id: str
    producer_id: int
    producer_epoch: int
    timeout_ms: int
    state: TxnState = TxnState.EMPTY
    last_producer_id: int = NO_PRODUCER_ID
    last_producer_epoch: int = NO_PRODUCER_EPOCH
    partitions: set[TopicPartition] = field(default_factory=set)
    groups: set[str] = field(default_factory=set)
    start_ms: int = -1
    last_update_ms: int = -1

    def transition(self, new: TxnState, now_ms: int) -> None:
        if not valid_transition(self.state, new):
            raise ValueError(f"{self.transactional_id}: {self.state.value} -> {new.value}")
        self.state = new
        self.last_update_ms = now_ms

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "pid": self.producer_id,
                "epoch": self.producer_epoch,
                "last_pid": self.last_producer_id,
                "last_epoch": self.last_producer_epoch,
                "timeout_ms": self.timeout_ms,
                "state": self.state.value,
                "partitions": sorted([t, p] for t, p in self.partitions),
                "groups": sorted(self.groups),
                "start_ms": self.start_ms,
                "last_update_ms": self.last_update_ms,
            }
        ).encode()

    @classmethod
    def from_json(cls, transactional_id: str, raw: bytes) -> TxnMetadata:
        data = json.loads(raw)
        return cls(
            transactional_id,
            int(data["pid"]),
            int(data["epoch"]),
            int(data["timeout_ms"]),
            TxnState(data["state"]),
            int(data["last_pid"]),
            int(data["last_epoch"]),
            {(str(t), int(p)) for t, p in data["partitions"]},
            {str(g) for g in data["groups"]},
            int(data["start_ms"]),
            int(data["last_update_ms"]),
        )


class TransactionStateStore:
    """Transaction metadata by transactional id, durable in one state-store namespace."""

    def __init__(self, namespace: KeyValueState) -> None:
        self._ns = namespace

    def load(self, source: KeyValueSource | None = None) -> dict[str, TxnMetadata]:
        """Every stored transactional id (in ``source``, a part of the namespace, if given)."""
        loaded = {}
        for key, raw in (source or self._ns).items():
            txn_id = key.decode()
            loaded[txn_id] = TxnMetadata.from_json(txn_id, raw)
        return loaded

    def write(self, metadata: TxnMetadata) -> None:
        self._ns.put(metadata.transactional_id.encode(), metadata.to_json())

    def delete(self, transactional_id: str) -> None:
        self._ns.delete(transactional_id.encode())
