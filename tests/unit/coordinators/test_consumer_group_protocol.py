"""KIP-848 consumer groups in the coordinator, on a fake clock: epochs, reconciliation (a
partition moves only once its old owner revoked it), static members, sessions, subscriptions by
name and regex, errors, offsets with member epochs, both protocols side by side, restarts."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from kafkacompat.coordinators.consumer_group_heartbeat import (
    Heartbeat,
    HeartbeatResult,
)
from kafkacompat.coordinators.consumer_groups import ConsumerGroupConfig
from kafkacompat.coordinators.group import GroupConfig
from kafkacompat.coordinators.group_coordinator import GroupCoordinator
from kafkacompat.coordinators.group_offsets import OffsetAndMetadata
from kafkacompat.errors import ErrorCode
from tests.unit.group_helpers import Harness

E = ErrorCode
T = uuid.UUID(int=7)
U = uuid.UUID(int=8)
SESSION = 45_000
Owned = list[tuple[uuid.UUID, list[int]]]


class Driver:
    """Heartbeats on the harness's coordinator, with a topic table the test changes."""

    def __init__(self, h: Harness) -> None:
        self.h = h
        self.topics: dict[str, tuple[uuid.UUID, int]] = {"t": (T, 4)}

    @property
    def coordinator(self) -> GroupCoordinator:
        return self.h.coordinator

    def set_topics(self, **changes: tuple[uuid.UUID, int] | None) -> None:
        """A new topic table, as a new metadata image is (None deletes a topic)."""
        topics = dict(self.topics)
        for name, info in changes.items():
            if info is None:
                topics.pop(name, None)
            else:
                topics[name] = info
        self.topics = topics

    def beat(
        self,
        member: str,
        epoch: int,
        owned: Owned | None = None,
        *,
        topics: tuple[str, ...] | None = None,
        regex: str | None = None,
        instance: str | None = None,
        assignor: str | None = None,
        group: str = "g",
        version: int = 1,
    ) -> HeartbeatResult:
        if epoch == 0:
            owned = [] if owned is None else owned
            if topics is None and regex is None:
                topics = ("t",)
        hb = Heartbeat(
            group_id=group,
            member_id=member,
            member_epoch=epoch,
            instance_id=instance,
            rebalance_timeout_ms=60_000 if epoch == 0 else -1,
            subscribed_topic_names=topics,
            subscribed_topic_regex=regex,
            server_assignor=assignor,
            owned=owned,
            version=version,
        )
        return self.coordinator.consumer_group_heartbeat(hb, self.topics)


def parts(result: HeartbeatResult, topic: uuid.UUID = T) -> set[int]:
    assert result.assignment is not None, "no assignment sent"
    return set(result.assignment.get(topic, frozenset()))


def owned(partitions: set[int], topic: uuid.UUID = T) -> Owned:
    return [(topic, sorted(partitions))]


@pytest.fixture
def h(tmp_path: Path) -> Harness:
    return Harness(tmp_path, GroupConfig(initial_rebalance_delay_ms=0))


@pytest.fixture
def d(h: Harness) -> Driver:
    return Driver(h)


def test_first_member_gets_every_partition_at_epoch_one(d: Driver) -> None:
    r = d.beat("a", 0)
    assert (r.error, r.member_id, r.member_epoch, r.heartbeat_interval_ms) == (E.NONE, "a", 1, 5000)
    assert parts(r) == {0, 1, 2, 3}
    # Nothing changed: the next heartbeat sends no assignment.
    r = d.beat("a", 1, owned({0, 1, 2, 3}))
    assert (r.error, r.member_epoch, r.assignment) == (E.NONE, 1, None)
    group = d.coordinator.consumer_group("g")
    assert group is not None and group.state.value == "Stable"


def test_a_partition_moves_only_after_its_owner_revoked_it(d: Driver) -> None:
    d.beat("a", 0)
    b = d.beat("b", 0)
    # b is at the new epoch but gets nothing a still owns.
    assert (b.member_epoch, parts(b)) == (2, set())
    group = d.coordinator.consumer_group("g")
    assert group is not None and group.state.value == "Reconciling"
    a = d.beat("a", 1, owned({0, 1, 2, 3}))
    keep = parts(a)
    assert a.member_epoch == 1 and len(keep) == 2  # told to revoke, keeps its epoch
    given_up = {0, 1, 2, 3} - keep
    # Until a's heartbeat shows it revoked them, b still gets nothing.
    assert d.beat("b", 2, []).assignment is None
    a = d.beat("a", 1, owned({0, 1, 2, 3}))
    assert a.member_epoch == 1
    assert d.beat("b", 2, []).assignment is None
    a = d.beat("a", 1, owned(keep))
    assert a.member_epoch == 2
    b = d.beat("b", 2, [])
    assert (b.member_epoch, parts(b)) == (2, given_up)
    assert group.state.value == "Stable"


def test_leaving_member_hands_over_at_once(d: Driver) -> None:
    d.beat("a", 0)
    d.beat("b", 0)
    keep = parts(d.beat("a", 1, owned({0, 1, 2, 3})))
    d.beat("a", 1, owned(keep))
    b = d.beat("b", 2, [])
    left = d.beat("a", -1)
    assert (left.error, left.member_epoch) == (E.NONE, -1)
    b = d.beat("b", 2, owned(parts(b)))
    assert (b.member_epoch, parts(b)) == (3, {0, 1, 2, 3})


def test_session_timeout_removes_a_silent_member(h: Harness, d: Driver) -> None:
    d.beat("a", 0)
    h.advance(30_000)
    b = d.beat("b", 0)
    assert parts(b) == set()  # a owns everything and goes silent
    h.advance(SESSION - 30_000 - 1)
    group = d.coordinator.consumer_group("g")
    assert group is not None and set(group.members) == {"a", "b"}
    h.advance(1)
    b = d.beat("b", 2, [])
    group = d.coordinator.consumer_group("g")
    assert group is not None and set(group.members) == {"b"}
    assert (b.member_epoch, parts(b)) == (3, {0, 1, 2, 3})


def test_member_not_revoking_in_time_is_fenced(h: Harness, d: Driver) -> None:
    d.beat("a", 0)
    d.beat("b", 0)
    d.beat("a", 1, owned({0, 1, 2, 3}))  # told to revoke; rebalance timeout 60 s
    for _ in range(13):
        h.advance(5_000)
        d.beat("b", 2, [])
        d.beat("a", 1, owned({0, 1, 2, 3}))  # keeps heartbeating, never revokes
    group = d.coordinator.consumer_group("g")
    assert group is not None and "a" not in group.members
    assert d.beat("a", 1, owned({0, 1, 2, 3})).error == E.UNKNOWN_MEMBER_ID


def test_static_member_rejoins_without_reassignment(d: Driver) -> None:
    d.beat("a", 0, instance="i-a")
    d.beat("b", 0, instance="i-b")
    keep = parts(d.beat("a", 1, owned({0, 1, 2, 3}), instance="i-a"))
    d.beat("a", 1, owned(keep), instance="i-a")
    b_parts = parts(d.beat("b", 2, [], instance="i-b"))
    group = d.coordinator.consumer_group("g")
    assert group is not None and group.group_epoch == 2
    # Another member id with a live instance id is refused.
    assert d.beat("x", 0, instance="i-a").error == E.UNRELEASED_INSTANCE_ID
    gone = d.beat("a", -2, instance="i-a")
    assert (gone.error, gone.member_epoch) == (E.NONE, -2)
    assert group.members["a"].member_epoch == -2  # it keeps its partitions meanwhile
    back = d.beat("a2", 0, instance="i-a")
    assert (back.error, back.member_epoch, parts(back)) == (E.NONE, 2, keep)
    assert group.group_epoch == 2 and set(group.members) == {"a2", "b"}
    assert d.beat("b", 2, owned(b_parts), instance="i-b").assignment is None


def test_static_member_gone_past_its_session_is_removed(h: Harness, d: Driver) -> None:
    d.beat("a", 0, instance="i-a")
    d.beat("a", -2, instance="i-a")
    h.advance(SESSION + 1)
    assert d.coordinator.consumer_group("g") is not None
    group = d.coordinator.consumer_group("g")
    assert group is not None and not group.members
    assert group.state.value == "Empty"


def test_epoch_errors(d: Driver) -> None:
    d.beat("a", 0)
    assert d.beat("a", 5, []).error == E.FENCED_MEMBER_EPOCH
    assert d.beat("nobody", 1, []).error == E.UNKNOWN_MEMBER_ID
    assert d.beat("nobody", 1, [], group="other").error == E.UNKNOWN_MEMBER_ID
    d.beat("b", 0)  # epoch 2; a is still at 1
    d.beat("a", 1, owned({0, 1, 2, 3}))
    # An epoch behind is fenced unless it is the previous one with partitions it was given.
    assert d.beat("b", 1, []).error == E.FENCED_MEMBER_EPOCH


def test_request_errors(d: Driver) -> None:
    assert d.beat("a", 0, assignor="sticky").error == E.UNSUPPORTED_ASSIGNOR
    assert d.beat("a", 0, regex="(unclosed").error == ErrorCode.INVALID_REGULAR_EXPRESSION
    assert d.beat("", 0).error == E.INVALID_REQUEST  # v1: the client makes the member id
    assert d.beat("a", 0, owned([(T, [1])])).error == E.INVALID_REQUEST
    assert d.beat("a", -3).error == E.INVALID_REQUEST
    assert d.beat("a", 0, topics=()).error == E.INVALID_REQUEST
    assert d.coordinator.consumer_group("g") is None  # failed joins leave no group
    v0 = d.beat("", 0, version=0)
    assert v0.error == E.NONE and v0.member_id  # v0: the broker makes it


def test_group_max_size(tmp_path: Path) -> None:
    h = Harness(tmp_path, GroupConfig())
    h.coordinator = GroupCoordinator(
        h.store, h.config, h.clock, consumer_config=ConsumerGroupConfig(max_size=2)
    )
    d = Driver(h)
    assert d.beat("a", 0).error == E.NONE
    assert d.beat("b", 0).error == E.NONE
    assert d.beat("c", 0).error == E.GROUP_MAX_SIZE_REACHED


def test_range_assignor_on_request(d: Driver) -> None:
    d.topics = {"t": (T, 4), "u": (U, 4)}
    a = d.beat("a", 0, topics=("t", "u"), assignor="range")
    group = d.coordinator.consumer_group("g")
    assert group is not None and group.assignor_name == "range"
    assert parts(a, T) == {0, 1, 2, 3} and parts(a, U) == {0, 1, 2, 3}


def test_regex_subscription_follows_topic_creation_and_deletion(d: Driver) -> None:
    d.topics = {"t": (T, 4), "other": (uuid.UUID(int=9), 1)}
    a = d.beat("a", 0, regex="t|new-.*")
    assert set(a.assignment or {}) == {T}
    new = uuid.UUID(int=10)
    d.set_topics(**{"new-1": (new, 2)})
    a = d.beat("a", 1, [])
    assert a.member_epoch == 2 and parts(a, new) == {0, 1} and parts(a, T) == {0, 1, 2, 3}
    d.set_topics(t=None)
    a = d.beat("a", 2, owned({0, 1, 2, 3}) + owned({0, 1}, new))
    assert a.assignment is not None and set(a.assignment) == {new}


def test_partition_growth_is_assigned(d: Driver) -> None:
    d.beat("a", 0)
    d.set_topics(t=(T, 6))
    a = d.beat("a", 1, owned({0, 1, 2, 3}))
    assert (a.member_epoch, parts(a)) == (2, set(range(6)))


def test_offset_commit_and_fetch_check_member_epochs(d: Driver) -> None:
    d.beat("a", 0)
    tp = {("t", 0): OffsetAndMetadata(5)}
    commit = d.coordinator.commit_offsets
    assert commit("g", "a", None, 1, tp) == {("t", 0): E.NONE}
    assert commit("g", "a", None, 0, tp) == {("t", 0): E.STALE_MEMBER_EPOCH}
    assert commit("g", "zz", None, 1, tp) == {("t", 0): E.UNKNOWN_MEMBER_ID}
    assert commit("g", "", None, -1, tp) == {("t", 0): E.UNKNOWN_MEMBER_ID}  # group not empty
    assert d.coordinator.validate_offset_fetch("g", "a", 1) == E.NONE
    assert d.coordinator.validate_offset_fetch("g", "a", 2) == E.STALE_MEMBER_EPOCH
    assert d.coordinator.validate_offset_fetch("g", None, -1) == E.NONE  # the admin's
    check = d.coordinator.validate_consumer_txn_offset_commit
    assert check("g", "a", 1) == E.NONE
    assert check("g", "a", 3) == E.ILLEGAL_GENERATION
    assert check("classic-or-none", "a", 3) is None
    # Consumer-protocol members commit with OffsetCommit v9+; v9 knows GROUP_ID_NOT_FOUND.
    assert commit("g", "a", None, 1, tp, 8) == {("t", 0): E.UNSUPPORTED_VERSION}
    assert commit("none", "a", None, 1, tp, 9) == {("t", 0): E.GROUP_ID_NOT_FOUND}
    assert commit("none", "a", None, 1, tp, 8) == {("t", 0): E.ILLEGAL_GENERATION}
    d.beat("a", -1)
    assert commit("g", "", None, -1, tp) == {("t", 0): E.NONE}  # empty: anyone may commit


def test_list_describe_delete(d: Driver) -> None:
    d.beat("a", 0)
    assert ("g", "consumer", "Stable", "consumer") in d.coordinator.list_groups_typed()
    described = d.coordinator.describe_group("g")
    assert (described.state, described.protocol_type, described.protocol_name) == (
        "Stable",
        "consumer",
        "uniform",
    )
    assert [m.member_id for m in described.members] == ["a"]
    assert d.coordinator.delete_groups(["g"]) == {"g": E.NON_EMPTY_GROUP}
    d.beat("a", -1)
    assert d.coordinator.delete_groups(["g"]) == {"g": E.NONE}
    assert d.coordinator.consumer_group("g") is None


def test_group_type_is_fixed_while_it_has_members(h: Harness, d: Driver) -> None:
    (member,) = h.stable_group(1)
    assert d.beat("a", 0).error == E.GROUP_ID_NOT_FOUND
    h.coordinator.leave_group("g", [(member, None)])
    # The empty classic group is taken over, its offsets kept.
    h.coordinator.commit_offsets("g", "", None, -1, {("t", 0): OffsetAndMetadata(3)})
    assert d.beat("a", 0).error == E.NONE
    assert h.coordinator.fetch_offsets("g", [("t", 0)])[("t", 0)] == OffsetAndMetadata(
        3, commit_timestamp=h.clock.now
    )
    # A classic member of another protocol type cannot join it (one of type "consumer" can:
    # test_consumer_group_migration).
    assert h.join(protocol_type="connect").value.error == E.INCONSISTENT_GROUP_PROTOCOL
    d.beat("a", -1)
    # ...and back: the empty consumer group becomes classic again.
    joined = h.join_new()
    h.advance(0)
    assert joined.value.error == E.NONE
    assert d.coordinator.consumer_group("g") is None


def test_state_survives_a_restart(h: Harness, d: Driver) -> None:
    d.beat("a", 0, instance="i-a")
    d.beat("b", 0)
    keep = parts(d.beat("a", 1, owned({0, 1, 2, 3}), instance="i-a"))
    d.coordinator.commit_offsets("g", "b", None, 2, {("t", 1): OffsetAndMetadata(9)})
    h.reopen()
    group = d.coordinator.consumer_group("g")
    assert group is not None and (group.group_epoch, group.assignment_epoch) == (2, 2)
    assert group.members["a"].pending_revocation  # still to revoke after the restart
    assert d.beat("b", 2, []).assignment is None  # and so b still waits
    a = d.beat("a", 1, owned(keep), instance="i-a")
    assert a.member_epoch == 2
    assert parts(d.beat("b", 2, [])) == {0, 1, 2, 3} - keep
    assert d.coordinator.fetch_offsets("g", [("t", 1)])[("t", 1)] is not None
