"""The classic group state machine on a fake clock: joins, syncs, timeouts, static members."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from kafkacompat.coordinators.group import GroupConfig, GroupDescription
from kafkacompat.coordinators.group_offsets import OffsetAndMetadata
from kafkacompat.coordinators.group_timers import TimerKey
from kafkacompat.coordinators.group_types import CLASSIC, GroupTypeModule
from kafkacompat.coordinators.offset_manager import ExpiryRule
from kafkacompat.errors import ErrorCode as E
from tests.unit.group_helpers import REBALANCE, SESSION, Harness, consumer_metadata


@pytest.fixture
def h(tmp_path: Path) -> Harness:
    return Harness(tmp_path, GroupConfig(initial_rebalance_delay_ms=0))


@pytest.fixture
def delayed(tmp_path: Path) -> Harness:
    return Harness(tmp_path, GroupConfig(initial_rebalance_delay_ms=3000))


def test_member_id_required_round_trip(h: Harness) -> None:
    first = h.join(client_id="c1")
    assert first.done
    assert first.value.error == E.MEMBER_ID_REQUIRED
    member_id = first.value.member_id
    assert member_id.startswith("c1-")
    assert h.state() == "Empty"
    second = h.join(member_id)
    assert h.state() == "PreparingRebalance"
    assert not second.done  # answered when the rebalance completes
    h.advance(0)
    result = second.value
    assert (result.error, result.member_id, result.generation_id) == (E.NONE, member_id, 1)
    assert (result.leader, result.protocol_type, result.protocol_name) == (
        member_id,
        "consumer",
        "range",
    )
    assert [m.member_id for m in result.members] == [member_id]
    assert h.state() == "CompletingRebalance"


def test_old_join_versions_get_a_member_id_without_the_round_trip(h: Harness) -> None:
    join = h.join(require_known=False)
    h.advance(0)
    assert join.value.error == E.NONE and join.value.generation_id == 1


def test_pending_member_id_expires_after_the_session_timeout(h: Harness) -> None:
    member_id = h.join().value.member_id
    h.advance(SESSION)
    assert h.join(member_id).value.error == E.UNKNOWN_MEMBER_ID


def test_initial_delay_collects_members_and_extends_while_they_arrive(delayed: Harness) -> None:
    a = delayed.join_new()
    delayed.advance(2000)
    b = delayed.join_new()  # arrives during the first delay: another delay follows
    delayed.advance(1000)
    assert not a.done and not b.done
    c = delayed.join_new()
    delayed.advance(2999)
    assert not a.done
    delayed.advance(1)  # no one arrived during the second delay... c did: a third one
    assert not a.done
    delayed.advance(3000)
    assert all(j.done for j in (a, b, c))
    assert {j.value.generation_id for j in (a, b, c)} == {1}
    assert len(a.value.members) == 3


def test_many_concurrent_joins_form_one_generation(h: Harness) -> None:
    joins = [h.join_new(client_id=f"c{i}") for i in range(25)]
    h.advance(0)
    results = [j.value for j in joins]
    assert {r.error for r in results} == {E.NONE}
    assert {r.generation_id for r in results} == {1}
    leaders = {r.leader for r in results}
    assert len(leaders) == 1
    leader = next(r for r in results if r.member_id in leaders)
    assert sorted(m.member_id for m in leader.members) == sorted(r.member_id for r in results)
    assert all(r.members == [] for r in results if r is not leader)
    assert len({r.member_id for r in results}) == 25


def test_sync_hands_out_the_leaders_assignment(h: Harness) -> None:
    a, b = h.join_new(), h.join_new()
    h.advance(0)
    leader, follower = a.value.member_id, b.value.member_id
    assert a.value.leader == leader
    waiting = h.sync(follower, 1)
    assert not waiting.done
    done = h.sync(leader, 1, {leader: b"L", follower: b"F"})
    assert (done.value.error, done.value.assignment) == (E.NONE, b"L")
    assert (waiting.value.error, waiting.value.assignment) == (E.NONE, b"F")
    assert waiting.value.protocol_name == "range"
    assert h.state() == "Stable"
    # A late repeat of SyncGroup in Stable gets the same assignment.
    assert h.sync(follower, 1).value.assignment == b"F"


def test_new_member_triggers_a_rebalance_the_old_members_learn_from_heartbeats(h: Harness) -> None:
    (a,) = h.stable_group(1)
    b = h.join_new()
    assert h.state() == "PreparingRebalance"
    assert h.heartbeat(a, 1) == E.REBALANCE_IN_PROGRESS
    assert h.sync(a, 1).value.error == E.REBALANCE_IN_PROGRESS
    assert not b.done
    rejoin = h.join(a)
    assert rejoin.done and b.done  # every member has joined: no wait for the timeout
    assert rejoin.value.generation_id == b.value.generation_id == 2
    assert rejoin.value.leader == a
    assert len(rejoin.value.members) == 2


def test_member_that_does_not_rejoin_is_dropped_at_the_rebalance_timeout(h: Harness) -> None:
    a, b = h.stable_group(2)
    c = h.join_new()
    h.join(a)
    # b keeps heartbeating through the rebalance but never rejoins.
    for _ in range(REBALANCE // 5000 - 1):
        h.advance(5000)
        assert h.heartbeat(b, 1) == E.REBALANCE_IN_PROGRESS
    h.advance(4999)
    assert not c.done
    h.advance(1)
    assert c.value.generation_id == 2
    assert h.heartbeat(b, 2) == E.UNKNOWN_MEMBER_ID
    assert sorted(m.member_id for m in h.coordinator.describe_group("g").members) == sorted(
        [a, c.value.member_id]
    )


def test_rebalance_in_completing_state_resets_waiting_syncs(h: Harness) -> None:
    _a, b = h.join_new(), h.join_new()
    h.advance(0)
    waiting = h.sync(b.value.member_id, 1)
    h.join_new()
    assert waiting.value.error == E.REBALANCE_IN_PROGRESS
    assert h.state() == "PreparingRebalance"


def test_session_timeout_evicts_a_silent_member(h: Harness) -> None:
    a, b = h.stable_group(2)
    h.advance(SESSION - 1)
    assert h.heartbeat(a, 1) == E.NONE
    h.advance(1)
    # b has been silent for a session timeout: gone, and a rebalance is under way.
    assert h.heartbeat(b, 1) == E.UNKNOWN_MEMBER_ID
    assert h.heartbeat(a, 1) == E.REBALANCE_IN_PROGRESS
    h.advance(SESSION - 1)  # a's own session is renewed by each heartbeat
    assert h.heartbeat(a, 1) == E.REBALANCE_IN_PROGRESS
    rejoin = h.join(a)
    assert rejoin.value.generation_id == 2 and len(rejoin.value.members) == 1


def test_member_that_never_syncs_is_removed_after_the_rebalance_timeout(h: Harness) -> None:
    a, b = h.join_new(), h.join_new()
    h.advance(0)
    leader = a.value.member_id
    h.advance(SESSION // 2)
    h.heartbeat(b.value.member_id, 1)
    h.advance(SESSION // 2)
    h.heartbeat(b.value.member_id, 1)
    h.advance(REBALANCE)
    assert h.heartbeat(b.value.member_id, 1) == E.UNKNOWN_MEMBER_ID
    assert h.heartbeat(leader, 1) == E.UNKNOWN_MEMBER_ID
    assert h.state() == "Empty"


def test_leave_group_rebalances_the_rest(h: Harness) -> None:
    a, b = h.stable_group(2)
    assert h.coordinator.leave_group("g", [(b, None), ("nobody", None)]) == (
        E.NONE,
        [E.NONE, E.UNKNOWN_MEMBER_ID],
    )
    assert h.heartbeat(a, 1) == E.REBALANCE_IN_PROGRESS
    rejoin = h.join(a)
    assert rejoin.value.generation_id == 2
    assert [m.member_id for m in rejoin.value.members] == [a]
    assert h.coordinator.leave_group("g", [(a, None)]) == (E.NONE, [E.NONE])
    assert h.state() == "Empty"
    assert h.coordinator.leave_group("unknown", [(a, None)]) == (E.NONE, [E.UNKNOWN_MEMBER_ID])


def test_leaving_while_a_join_waits_answers_it(h: Harness) -> None:
    a, _b = h.stable_group(2)
    waiting = h.join(a)
    assert not waiting.done
    assert h.coordinator.leave_group("g", [(a, None)]) == (E.NONE, [E.NONE])
    assert waiting.value.error == E.UNKNOWN_MEMBER_ID


def test_generation_and_member_errors(h: Harness) -> None:
    a, _b = h.stable_group(2)
    assert h.heartbeat(a, 0) == E.ILLEGAL_GENERATION
    assert h.heartbeat("stranger", 1) == E.UNKNOWN_MEMBER_ID
    assert h.heartbeat(a, 1, group="other") == E.UNKNOWN_MEMBER_ID
    assert h.sync(a, 7).value.error == E.ILLEGAL_GENERATION
    assert h.sync("stranger", 1).value.error == E.UNKNOWN_MEMBER_ID
    assert h.join("stranger").value.error == E.UNKNOWN_MEMBER_ID
    assert h.join("x", group="nonexistent").value.error == E.UNKNOWN_MEMBER_ID
    assert h.join(group="").value.error == E.INVALID_GROUP_ID
    assert h.join(session=10).value.error == E.INVALID_SESSION_TIMEOUT
    sync = h.coordinator.sync_group("g", 1, a, None, "consumer", "roundrobin", {})
    assert sync.value.error == E.INCONSISTENT_GROUP_PROTOCOL


def test_inconsistent_protocols_are_refused(h: Harness) -> None:
    h.stable_group(1)
    assert h.join(protocol_type="connect").value.error == E.INCONSISTENT_GROUP_PROTOCOL
    other = [("roundrobin", b"")]
    assert h.join(protocols=other).value.error == E.INCONSISTENT_GROUP_PROTOCOL
    assert h.join(protocols=[], group="fresh").value.error == E.INCONSISTENT_GROUP_PROTOCOL


def test_protocol_selection_picks_one_every_member_supports(h: Harness) -> None:
    meta = consumer_metadata("t")
    a = h.join_new(protocols=[("range", meta), ("roundrobin", meta)])
    b = h.join_new(protocols=[("cooperative-sticky", meta), ("roundrobin", meta), ("range", meta)])
    c = h.join_new(protocols=[("roundrobin", meta), ("range", meta)])
    h.advance(0)
    assert {j.value.protocol_name for j in (a, b, c)} == {"roundrobin"}


def test_unchanged_member_rejoin_in_stable_gets_the_current_generation(h: Harness) -> None:
    _a, b = h.stable_group(2)
    again = h.join(b)
    assert again.done and again.value.generation_id == 1 and again.value.members == []
    assert h.state() == "Stable"
    changed = h.join(b, protocols=[("range", consumer_metadata("t", "u"))])
    assert not changed.done
    assert h.state() == "PreparingRebalance"


def test_static_member_rejoins_without_a_rebalance(h: Harness) -> None:
    first = h.join(instance="i-1")  # static members skip MEMBER_ID_REQUIRED
    second = h.join(instance="i-2")
    h.advance(0)
    old = first.value.member_id
    h.sync(old, 1, {old: b"A", second.value.member_id: b"B"})
    h.sync(second.value.member_id, 1)
    assert h.state() == "Stable"
    # The process behind i-2 restarts: a new member id, same generation, its old assignment.
    rejoin = h.join(instance="i-2")
    assert rejoin.done
    new_id = rejoin.value.member_id
    assert new_id != second.value.member_id
    assert (rejoin.value.error, rejoin.value.generation_id) == (E.NONE, 1)
    assert h.state() == "Stable"
    assert h.sync(new_id, 1, instance="i-2").value.assignment == b"B"
    assert h.heartbeat(new_id, 1, instance="i-2") == E.NONE
    assert h.heartbeat(old, 1, instance="i-1") == E.NONE
    # The old member id is fenced.
    fenced = second.value.member_id
    assert h.heartbeat(fenced, 1, instance="i-2") == E.FENCED_INSTANCE_ID
    assert h.sync(fenced, 1, instance="i-2").value.error == E.FENCED_INSTANCE_ID
    assert h.join(fenced, instance="i-2").value.error == E.FENCED_INSTANCE_ID
    offsets = {("t", 0): OffsetAndMetadata(5)}
    assert h.coordinator.commit_offsets("g", fenced, "i-2", 1, offsets) == {
        ("t", 0): E.FENCED_INSTANCE_ID
    }


def test_static_leader_rejoin_is_told_to_skip_the_assignment(h: Harness) -> None:
    first = h.join(instance="i-1")
    h.advance(0)
    h.sync(first.value.member_id, 1, {first.value.member_id: b"A"})
    rejoin = h.join(instance="i-1")
    assert rejoin.value.skip_assignment and rejoin.value.leader == rejoin.value.member_id
    assert h.state() == "Stable"


def test_static_member_with_changed_metadata_triggers_a_rebalance(h: Harness) -> None:
    first = h.join(instance="i-1")
    h.advance(0)
    h.sync(first.value.member_id, 1)
    rejoin = h.join(instance="i-1", protocols=[("range", consumer_metadata("t", "other"))])
    assert h.state() == "CompletingRebalance"  # the only member rejoined: done at once
    assert rejoin.value.generation_id == 2
    assert rejoin.value.member_id != first.value.member_id


def test_static_member_session_timeout_and_leave_by_instance_id(h: Harness) -> None:
    a = h.join(instance="i-1")
    b = h.join(instance="i-2")
    h.advance(0)
    h.sync(a.value.member_id, 1)
    h.sync(b.value.member_id, 1)
    # An admin removes i-2 by instance id alone (LeaveGroup v4+).
    assert h.coordinator.leave_group("g", [("", "i-2"), ("", "i-9")]) == (
        E.NONE,
        [E.NONE, E.UNKNOWN_MEMBER_ID],
    )
    rejoin = h.join(a.value.member_id, instance="i-1")
    assert rejoin.value.generation_id == 2
    h.sync(a.value.member_id, 2, instance="i-1")
    h.advance(SESSION)
    assert h.state() == "Empty"  # i-1 went silent: evicted; the rebalance finds no one


def test_static_member_that_misses_a_rebalance_keeps_its_place(h: Harness) -> None:
    a = h.join(instance="i-1")
    b = h.join(instance="i-2")
    h.advance(0)
    h.sync(a.value.member_id, 1)
    h.sync(b.value.member_id, 1)
    c = h.join_new()
    leader = h.join(a.value.member_id, instance="i-1")
    for _ in range(REBALANCE // 5000):
        h.advance(5000)
        h.heartbeat(b.value.member_id, 1, instance="i-2")
    assert c.value.generation_id == 2
    # Unlike a dynamic member, i-2 stays until its session times out; the leader assigns to it.
    listed = {m.member_id for m in leader.value.members}
    assert listed == {a.value.member_id, b.value.member_id, c.value.member_id}


def test_describe_and_list_groups(h: Harness) -> None:
    a, b = h.stable_group(2)
    h.join_new(group="other")
    description = h.coordinator.describe_group("g")
    assert (description.state, description.protocol_type, description.protocol_name) == (
        "Stable",
        "consumer",
        "range",
    )
    assert [(m.member_id, m.assignment) for m in description.members] == [
        (a, f"assignment-{a}".encode()),
        (b, f"assignment-{b}".encode()),
    ]
    assert description.members[0].metadata == consumer_metadata("t")
    assert h.coordinator.describe_group("missing").state == "Dead"
    assert sorted(h.coordinator.list_groups()) == [
        ("g", "consumer", "Stable"),
        ("other", "consumer", "PreparingRebalance"),
    ]


def test_a_timer_earlier_than_all_others_wakes_the_shell(h: Harness) -> None:
    before = h.wakeups
    h.join_new()
    assert h.wakeups > before
    assert h.coordinator.next_deadline() == h.clock.now


@dataclass
class FakeConsumerGroups:
    """A sibling group type (as KIP-848 consumer groups will be): one Stable group ``c`` whose
    member ``m`` may commit, and a record of what the coordinator asked it."""

    group_type: str = "consumer"
    states: dict[str, str] = field(default_factory=lambda: {"c": "Stable"})
    asked: list[tuple[str, ...]] = field(default_factory=list)

    def has_group(self, group_id: str) -> bool:
        return group_id in self.states

    def group_ids(self) -> list[str]:
        return list(self.states)

    def describe_group(self, group_id: str) -> GroupDescription:
        return GroupDescription(group_id, self.states[group_id], "consumer", "uniform", [])

    def list_groups(self) -> list[tuple[str, str, str]]:
        return [(group_id, "consumer", state) for group_id, state in self.states.items()]

    def delete_group(self, group_id: str) -> E:
        self.asked.append(("delete", group_id))
        return E.NON_EMPTY_GROUP

    def on_timer(self, deadline: int, key: TimerKey, now: int) -> None:
        self.asked.append(("timer", key.kind, key.group_id, key.member_id))

    def validate_offset_commit(
        self, group_id: str, member_id: str, instance_id: str | None, generation_id: int, now: int
    ) -> E:
        return E.NONE if member_id == "m" else E.STALE_MEMBER_EPOCH

    def validate_offset_delete(self, group_id: str) -> tuple[E, frozenset[str]]:
        return E.NONE, frozenset({"t"})

    def offset_expiry(self, group_id: str) -> ExpiryRule | None:
        self.asked.append(("expiry", group_id))
        return None

    def delete_if_empty(self, group_id: str) -> None:
        self.asked.append(("delete_if_empty", group_id))


def with_consumer_type(h: Harness) -> FakeConsumerGroups:
    fake = FakeConsumerGroups()
    types: dict[str, GroupTypeModule] = h.coordinator.group_types
    types[fake.group_type] = fake  # the type table is where a new group type is registered
    return fake


def test_group_admin_asks_every_group_type(h: Harness) -> None:
    assert list(h.coordinator.group_types) == [CLASSIC, "consumer"]
    (a,) = h.stable_group(1)
    fake = with_consumer_type(h)
    assert sorted(h.coordinator.list_groups()) == [
        ("c", "consumer", "Stable"),
        ("g", "consumer", "Stable"),
    ]
    assert h.coordinator.describe_group("c").protocol_name == "uniform"  # the sibling's answer
    assert [m.member_id for m in h.coordinator.describe_group("g").members] == [a]  # classic's
    assert h.coordinator.describe_group("missing").state == "Dead"
    assert h.coordinator.delete_groups(["c", "g", "missing"]) == {
        "c": E.NON_EMPTY_GROUP,
        "g": E.NON_EMPTY_GROUP,
        "missing": E.GROUP_ID_NOT_FOUND,
    }
    assert fake.asked == [("delete", "c")]
    assert "c" not in h.coordinator.groups  # the classic table holds classic groups only


def test_offsets_and_timers_are_routed_to_the_group_type(h: Harness) -> None:
    fake = with_consumer_type(h)
    one = {("t", 0): OffsetAndMetadata(1)}
    assert h.coordinator.commit_offsets("c", "other", None, 1, one) == {
        ("t", 0): E.STALE_MEMBER_EPOCH
    }
    assert h.coordinator.commit_offsets("c", "m", None, 1, one) == {("t", 0): E.NONE}
    assert "c" not in h.coordinator.groups  # no classic group made up for it
    assert h.coordinator.delete_offsets("c", [("t", 0)]) == (
        E.NONE,
        {("t", 0): E.GROUP_SUBSCRIBED_TO_TOPIC},
    )
    assert h.coordinator.expire_offsets() == 0
    assert fake.asked == [("expiry", "c")]  # it still has offsets: not asked to go
    h.coordinator.timers.schedule(h.clock.now + 5, TimerKey("consumer", "heartbeat", "c", "m"))
    h.advance(5)
    assert fake.asked[-1] == ("timer", "heartbeat", "c", "m")


def test_handing_a_group_over_answers_its_waiting_members_and_taking_it_back_restores_it(
    h: Harness,
) -> None:
    members = h.stable_group(1, group="moving")
    h.coordinator.commit_offsets("moving", members[0], None, 1, {("t", 0): OffsetAndMetadata(5)}, 8)
    joining = h.join_new(group="moving")  # waits for the rebalance
    assert not joining.done
    h.coordinator.hand_over(lambda group_id: group_id == "moving")
    assert joining.done and joining.value.error == E.NOT_COORDINATOR
    assert h.coordinator.fetch_offsets("moving", None) == {}
    assert h.state("moving") == "Dead"
    h.coordinator.take_over(h.store.namespace)
    assert h.coordinator.fetch_offsets("moving", None) == {
        ("t", 0): OffsetAndMetadata(5, commit_timestamp=h.clock.now)
    }
    assert h.state("moving") == "Stable"
    assert h.heartbeat(members[0], 1, group="moving") == E.NONE
