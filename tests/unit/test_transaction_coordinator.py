"""The transaction coordinator's state machine with a fake clock and a real state store."""

from __future__ import annotations

from pathlib import Path

import pytest

from kafkacompat.coordinators.transaction_coordinator import (
    MAX_EPOCH,
    Completion,
    TransactionCoordinator,
    TxnConfig,
)
from kafkacompat.coordinators.transaction_state import (
    NAMESPACE,
    TransactionStateStore,
    TxnMetadata,
    TxnState,
    valid_transition,
)
from kafkacompat.errors import ErrorCode
from kafkacompat.storage.state_store import StateStore

E = ErrorCode
S = TxnState


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000

    def __call__(self) -> int:
        return self.now


class Ids:
    def __init__(self) -> None:
        self.next = 100

    def __call__(self) -> int:
        self.next += 1
        return self.next - 1


def make(
    path: Path, clock: Clock | None = None, ids: Ids | None = None
) -> tuple[TransactionCoordinator, StateStore]:
    store = StateStore(path, fsync=False)
    coordinator = TransactionCoordinator(
        TransactionStateStore(store.namespace(NAMESPACE)),
        TxnConfig(max_timeout_ms=60_000, id_expiration_ms=3_600_000),
        clock or Clock(),
        ids or Ids(),
    )
    return coordinator, store


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def coordinator(tmp_path: Path, clock: Clock) -> TransactionCoordinator:
    return make(tmp_path, clock)[0]


def ongoing(coordinator: TransactionCoordinator, txn_id: str = "t") -> tuple[int, int]:
    init = coordinator.init_producer_id(txn_id, 10_000)
    pid, epoch = init.producer_id, init.producer_epoch
    assert coordinator.add_partitions(txn_id, pid, epoch, [("a", 0), ("b", 1)]) == E.NONE
    return pid, epoch


def test_valid_transitions_follow_kafka() -> None:
    assert valid_transition(S.ONGOING, S.PREPARE_COMMIT)
    assert valid_transition(S.PREPARE_EPOCH_FENCE, S.PREPARE_ABORT)
    assert valid_transition(S.COMPLETE_ABORT, S.ONGOING)
    assert not valid_transition(S.EMPTY, S.PREPARE_COMMIT)
    assert not valid_transition(S.PREPARE_COMMIT, S.PREPARE_ABORT)
    assert not valid_transition(S.ONGOING, S.COMPLETE_COMMIT)
    txn = TxnMetadata("x", 1, 0, 1000)
    with pytest.raises(ValueError):
        txn.transition(S.COMPLETE_COMMIT, 0)


def test_init_producer_id_validates_timeout_and_bumps_epochs(
    coordinator: TransactionCoordinator,
) -> None:
    assert coordinator.init_producer_id("t", 0).error == E.INVALID_TRANSACTION_TIMEOUT
    assert coordinator.init_producer_id("t", 60_001).error == E.INVALID_TRANSACTION_TIMEOUT
    first = coordinator.init_producer_id("t", 60_000)
    assert (first.error, first.producer_id, first.producer_epoch) == (E.NONE, 100, 0)
    second = coordinator.init_producer_id("t", 5_000)
    assert (second.error, second.producer_id, second.producer_epoch) == (E.NONE, 100, 1)
    txn = coordinator.describe("t")
    assert txn is not None
    assert (txn.state, txn.timeout_ms, txn.last_producer_epoch) == (S.EMPTY, 5_000, 0)


def test_kip_360_retry_and_fencing_by_expected_epoch(coordinator: TransactionCoordinator) -> None:
    coordinator.init_producer_id("t", 10_000)
    bumped = coordinator.init_producer_id("t", 10_000, expected=(100, 0))
    assert (bumped.error, bumped.producer_epoch) == (E.NONE, 1)
    retry = coordinator.init_producer_id("t", 10_000, expected=(100, 0))
    assert (retry.error, retry.producer_epoch) == (E.NONE, 1), "a retry gets the same epoch"
    assert coordinator.init_producer_id("t", 10_000, expected=(100, 7)).error == E.PRODUCER_FENCED
    assert coordinator.init_producer_id("t", 10_000, expected=(55, 1)).error == E.PRODUCER_FENCED


def test_epoch_exhaustion_moves_to_a_new_producer_id(tmp_path: Path) -> None:
    coordinator, _ = make(tmp_path)
    coordinator.init_producer_id("t", 10_000)
    txn = coordinator.describe("t")
    assert txn is not None
    txn.producer_epoch = MAX_EPOCH
    again = coordinator.init_producer_id("t", 10_000)
    assert (again.producer_id, again.producer_epoch) == (101, 0)
    assert (txn.last_producer_id, txn.last_producer_epoch) == (100, MAX_EPOCH)


def test_commit_path_and_errors(coordinator: TransactionCoordinator, clock: Clock) -> None:
    pid, epoch = ongoing(coordinator)
    txn = coordinator.describe("t")
    assert txn is not None
    assert (txn.state, txn.start_ms, txn.partitions) == (
        S.ONGOING,
        clock.now,
        {("a", 0), ("b", 1)},
    )
    assert (
        coordinator.add_partitions("t", pid + 1, epoch, [("a", 0)]) == E.INVALID_PRODUCER_ID_MAPPING
    )
    assert coordinator.add_partitions("t", pid, epoch + 1, [("a", 0)]) == E.PRODUCER_FENCED
    assert coordinator.add_offsets("t", pid, epoch, "g") == E.NONE
    assert coordinator.check_offset_commit("t", pid, epoch, "g") == E.NONE
    assert coordinator.check_offset_commit("t", pid, epoch, "other") == E.INVALID_TXN_STATE
    assert coordinator.check_produce("t", pid, epoch, ("a", 0)) == E.NONE
    assert coordinator.check_produce("t", pid, epoch, ("c", 0)) == E.INVALID_TXN_STATE
    assert coordinator.check_produce("t", pid, epoch - 1, ("a", 0)) == E.INVALID_PRODUCER_EPOCH
    assert coordinator.check_produce(None, pid, epoch, ("a", 0)) == E.INVALID_PRODUCER_ID_MAPPING
    error, completion = coordinator.end_txn("t", pid, epoch, commit=True)
    assert error == E.NONE and completion == Completion(
        "t", pid, epoch, True, frozenset({("a", 0), ("b", 1)}), frozenset({"g"})
    )
    assert txn.state is S.PREPARE_COMMIT
    assert coordinator.end_txn("t", pid, epoch, commit=True) == (E.CONCURRENT_TRANSACTIONS, None)
    assert coordinator.end_txn("t", pid, epoch, commit=False) == (E.INVALID_TXN_STATE, None)
    assert coordinator.add_partitions("t", pid, epoch, [("a", 0)]) == E.CONCURRENT_TRANSACTIONS
    assert coordinator.init_producer_id("t", 10_000).error == E.CONCURRENT_TRANSACTIONS
    coordinator.complete(completion)
    assert (txn.state, txn.partitions, txn.groups) == (S.COMPLETE_COMMIT, set(), set())
    assert coordinator.end_txn("t", pid, epoch, commit=True) == (E.NONE, None), "retry"
    assert coordinator.end_txn("t", pid, epoch, commit=False) == (E.INVALID_TXN_STATE, None)
    assert coordinator.check_produce("t", pid, epoch, ("a", 0)) == E.INVALID_TXN_STATE


def test_end_txn_in_empty_state_is_invalid(coordinator: TransactionCoordinator) -> None:
    init = coordinator.init_producer_id("t", 10_000)
    assert coordinator.end_txn("t", init.producer_id, 0, commit=True) == (E.INVALID_TXN_STATE, None)
    assert coordinator.end_txn("nope", 1, 0, commit=True) == (E.INVALID_PRODUCER_ID_MAPPING, None)


def test_init_fences_an_open_transaction(coordinator: TransactionCoordinator) -> None:
    pid, epoch = ongoing(coordinator)
    result = coordinator.init_producer_id("t", 10_000)
    assert result.error == E.CONCURRENT_TRANSACTIONS
    assert result.abort_first == Completion(
        "t", pid, epoch + 1, False, frozenset({("a", 0), ("b", 1)}), frozenset()
    )
    assert coordinator.end_txn("t", pid, epoch, commit=True) == (E.PRODUCER_FENCED, None)
    coordinator.complete(result.abort_first)
    done = coordinator.init_producer_id("t", 10_000)
    assert (done.error, done.producer_id, done.producer_epoch) == (E.NONE, pid, epoch + 2)


def test_timeout_aborts_with_a_bumped_epoch(
    coordinator: TransactionCoordinator, clock: Clock
) -> None:
    pid, epoch = ongoing(coordinator)
    assert coordinator.next_deadline() == clock.now + 10_000
    clock.now += 9_999
    assert coordinator.timed_out() == []
    clock.now += 1
    (completion,) = coordinator.timed_out()
    assert (completion.commit, completion.producer_epoch) == (False, epoch + 1)
    assert coordinator.next_deadline() is None
    coordinator.complete(completion)
    txn = coordinator.describe("t")
    assert txn is not None and txn.state is S.COMPLETE_ABORT
    assert coordinator.end_txn("t", pid, epoch, commit=True) == (E.PRODUCER_FENCED, None)


def test_transactional_ids_expire_when_idle(
    coordinator: TransactionCoordinator, clock: Clock
) -> None:
    ongoing(coordinator, "busy")
    coordinator.init_producer_id("idle", 10_000)
    clock.now += 3_600_000
    assert coordinator.expire_ids() == ["idle"]
    assert coordinator.describe("idle") is None
    assert coordinator.describe("busy") is not None


def test_state_is_durable_and_unfinished_work_resumes(tmp_path: Path, clock: Clock) -> None:
    coordinator, store = make(tmp_path, clock)
    pid, epoch = ongoing(coordinator, "committing")
    coordinator.end_txn("committing", pid, epoch, commit=True)
    ongoing(coordinator, "open")
    fenced_pid, fenced_epoch = ongoing(coordinator, "fencing")
    txn = coordinator.describe("fencing")
    assert txn is not None
    coordinator._transition(txn, S.PREPARE_EPOCH_FENCE)
    store.close()
    reopened, _ = make(tmp_path, clock)
    states = {t: m.state for t, m in reopened.transactions.items()}
    assert states == {
        "committing": S.PREPARE_COMMIT,
        "open": S.ONGOING,
        "fencing": S.PREPARE_EPOCH_FENCE,
    }
    unfinished = {c.transactional_id: c for c in reopened.unfinished()}
    assert sorted(unfinished) == ["committing", "fencing"]
    assert unfinished["committing"].commit and unfinished["committing"].producer_epoch == epoch
    fence = unfinished["fencing"]
    assert (fence.commit, fence.producer_id, fence.producer_epoch) == (
        False,
        fenced_pid,
        fenced_epoch + 1,
    )
    opened = reopened.describe("open")
    assert opened is not None and opened.partitions == {("a", 0), ("b", 1)}


def test_verify_only_and_listing(coordinator: TransactionCoordinator, clock: Clock) -> None:
    pid, epoch = ongoing(coordinator, "t1")
    coordinator.init_producer_id("t2", 10_000)
    assert coordinator.verify_partitions("t1", pid, epoch, [("a", 0), ("z", 0)]) == {
        ("a", 0): E.NONE,
        ("z", 0): E.INVALID_TXN_STATE,
    }
    assert coordinator.verify_partitions("t1", pid, epoch + 1, [("a", 0)]) == {
        ("a", 0): E.PRODUCER_FENCED
    }
    assert [t.transactional_id for t in coordinator.list({"Ongoing"}, set())] == ["t1"]
    assert [t.transactional_id for t in coordinator.list(set(), {pid})] == ["t1"]
    assert len(coordinator.list(set(), set())) == 2
    clock.now += 500
    assert [t.transactional_id for t in coordinator.list(set(), set(), 500)] == ["t1"]
    assert coordinator.list(set(), set(), 501) == []
