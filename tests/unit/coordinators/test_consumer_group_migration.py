"""Online migration between the classic and the consumer group protocols (Kafka 4.0), on a fake
clock: a consumer-protocol member upgrading a classic group with members, classic members inside
a consumer group (JoinGroup/SyncGroup/Heartbeat/LeaveGroup, their timeouts, their offsets), the
downgrade when the last consumer-protocol member leaves, the migration policy's refusals with
Kafka's messages, and a restart in between."""

from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from kafkacompat.coordinators.consumer_group_heartbeat import Heartbeat, HeartbeatResult
from kafkacompat.coordinators.consumer_groups import ConsumerGroupConfig
from kafkacompat.coordinators.group import GroupConfig, JoinResult
from kafkacompat.coordinators.group_coordinator import GroupCoordinator
from kafkacompat.coordinators.group_offsets import OffsetAndMetadata
from kafkacompat.errors import ErrorCode
from kafkacompat.protocol.messages import consumer_protocol_assignment as assignment_codec
from kafkacompat.protocol.messages import consumer_protocol_subscription as subscription_codec
from tests.unit.group_helpers import REBALANCE, SESSION, Harness

E = ErrorCode
T = uuid.UUID(int=7)
TOPICS = {"t": (T, 4)}
ALL = {0, 1, 2, 3}


def subscription(owned: set[int] | None = None) -> bytes:
    """A classic consumer's embedded subscription to "t" (v1: with what it owns)."""
    message = subscription_codec.ConsumerProtocolSubscription(
        topics=["t"],
        owned_partitions=[subscription_codec.TopicPartition("t", sorted(owned or ()))],
    )
    return struct.pack(">h", 1) + bytes(subscription_codec.encode(message, 1))


def assignment(partitions: set[int]) -> bytes:
    message = assignment_codec.ConsumerProtocolAssignment(
        assigned_partitions=[assignment_codec.TopicPartition("t", sorted(partitions))]
    )
    return struct.pack(">h", 1) + bytes(assignment_codec.encode(message, 1))


def partitions_of(data: bytes) -> set[int]:
    (version,) = struct.unpack_from(">h", data)
    message = assignment_codec.decode(memoryview(data)[2:], version)
    return {p for tp in message.assigned_partitions if tp.topic == "t" for p in tp.partitions}


@dataclass
class MigrationHarness(Harness):
    """The harness with consumer group settings (the migration policy) kept across reopens."""

    consumer: ConsumerGroupConfig = field(default_factory=ConsumerGroupConfig)

    def open(self) -> None:
        super().open()
        self.coordinator = GroupCoordinator(
            self.store, self.config, self.clock, self._woken, consumer_config=self.consumer
        )

    def beat(
        self, member: str, epoch: int, owned: set[int] | None = None, instance: str | None = None
    ) -> HeartbeatResult:
        """A ConsumerGroupHeartbeat of a consumer-protocol member subscribed to "t"."""
        joining = epoch == 0
        reported = None if owned is None else [(T, sorted(owned))]
        hb = Heartbeat(
            group_id="g",
            member_id=member,
            member_epoch=epoch,
            instance_id=instance,
            rebalance_timeout_ms=60_000 if joining else -1,
            subscribed_topic_names=("t",) if joining else None,
            owned=[] if joining else reported,
        )
        return self.coordinator.consumer_group_heartbeat(hb, TOPICS)

    def classic_join(self, member_id: str = "", owned: set[int] | None = None) -> JoinResult:
        protocols = [("range", subscription(owned)), ("roundrobin", subscription(owned))]
        if not member_id:
            first = self.join(protocols=protocols).value
            assert first.error == E.MEMBER_ID_REQUIRED
            member_id = first.member_id
        joined = self.join(member_id, protocols=protocols)
        self.advance(0)
        return joined.value

    def settle(self, member_id: str, owned: set[int]) -> tuple[int, set[int]]:
        """Rejoin and sync until the heartbeat says nothing is left to do: (generation, owned)."""
        for _ in range(4):
            joined = self.classic_join(member_id, owned)
            assert joined.error == E.NONE, joined
            synced = self.sync(member_id, joined.generation_id).value
            assert synced.error == E.NONE, synced
            owned = partitions_of(synced.assignment)
            if self.heartbeat(member_id, joined.generation_id) == E.NONE:
                return joined.generation_id, owned
        raise AssertionError(f"{member_id} never settled")

    def classic_group(self) -> tuple[str, str]:
        """Two classic members in generation 1 owning {0, 1} and {2, 3}: (leader, follower)."""
        joins = [self.join(protocols=[("range", subscription())]) for _ in range(2)]
        ids = [j.value.member_id for j in joins]
        joins = [self.join(m, protocols=[("range", subscription())]) for m in ids]
        self.advance(0)
        leader = joins[0].value.leader
        follower = next(m for m in ids if m != leader)
        given = {leader: assignment({0, 1}), follower: assignment({2, 3})}
        for m in (leader, follower):
            assert self.sync(m, 1, given).value.error == E.NONE
        return leader, follower


def policy_harness(tmp_path: Path, policy: str = "bidirectional", **kw: int) -> MigrationHarness:
    return MigrationHarness(
        tmp_path,
        GroupConfig(initial_rebalance_delay_ms=0),
        consumer=ConsumerGroupConfig(migration_policy=policy, **kw),  # type: ignore[arg-type]
    )


@pytest.fixture
def h(tmp_path: Path) -> MigrationHarness:
    return policy_harness(tmp_path)


def owners(h: MigrationHarness) -> dict[str, set[int]]:
    group = h.coordinator.consumer_group("g")
    assert group is not None
    return {m.member_id: set(m.assigned.get(T, frozenset())) for m in group.members.values()}


def test_upgrade_keeps_the_classic_members_and_their_partitions(h: MigrationHarness) -> None:
    a, b = h.classic_group()
    c = h.beat("c", 0)
    assert (c.error, c.member_epoch) == (E.NONE, 2)
    assert c.assignment == {}  # everything is still owned by the classic members
    group = h.coordinator.consumer_group("g")
    assert group is not None and "g" not in h.coordinator.groups
    assert owners(h) == {a: {0, 1}, b: {2, 3}, "c": set()}
    assert all(group.members[m].classic is not None for m in (a, b))
    assert group.members[a].classic is not None
    assert group.members[a].classic.session_timeout_ms == SESSION
    # The classic members learn of the new epoch on their heartbeat, and rejoin.
    assert h.heartbeat(a, 1) == E.REBALANCE_IN_PROGRESS
    assert h.heartbeat(b, 1) == E.REBALANCE_IN_PROGRESS
    gen_a, owned_a = h.settle(a, {0, 1})
    gen_b, owned_b = h.settle(b, {2, 3})
    c = h.beat("c", 2, set())
    owned_c = set(c.assignment.get(T, frozenset())) if c.assignment else set()
    assert (gen_a, gen_b) == (2, 2)
    assert owned_a | owned_b | owned_c == ALL
    assert len(owned_a) + len(owned_b) + len(owned_c) == 4 and owned_c
    assert group.state.value == "Stable"
    # DescribeGroups shows the consumer group in the classic shape, classic members too.
    described = h.coordinator.describe_group("g")
    assert (described.state, described.protocol_type) == ("Stable", "consumer")
    assert {m.member_id for m in described.members} == {a, b, "c"}


def test_classic_member_joins_a_consumer_group(h: MigrationHarness) -> None:
    assert h.beat("a", 0).assignment == {T: frozenset(ALL)}
    joined = h.classic_join()
    member = joined.member_id
    assert (joined.error, joined.generation_id) == (E.NONE, 2)
    assert (joined.protocol_type, joined.protocol_name, joined.leader) == ("consumer", "range", "")
    assert joined.members == []  # no leader: the broker assigns
    synced = h.sync(member, 2).value
    assert (synced.error, partitions_of(synced.assignment)) == (E.NONE, set())
    # It waits while "a" still owns its partitions.
    assert h.heartbeat(member, 2) == E.NONE
    keep = set(h.beat("a", 1, ALL).assignment.get(T, frozenset()))  # type: ignore[union-attr]
    assert len(keep) == 2
    assert h.beat("a", 1, keep).member_epoch == 2
    # Now they are free: it must rejoin to get them.
    assert h.heartbeat(member, 2) == E.REBALANCE_IN_PROGRESS
    generation, owned = h.settle(member, set())
    assert (generation, owned) == (2, ALL - keep)
    # A wrong generation, protocol or member.
    assert h.heartbeat(member, 1) == E.ILLEGAL_GENERATION
    assert h.heartbeat("nobody", 2) == E.UNKNOWN_MEMBER_ID
    assert h.heartbeat("a", 2) == E.UNKNOWN_MEMBER_ID  # "a" uses the consumer protocol
    wrong = h.coordinator.sync_group("g", 2, member, None, "consumer", "roundrobin", {})
    assert wrong.value.error == E.INCONSISTENT_GROUP_PROTOCOL
    # Its offsets: its generation is its member epoch, older OffsetCommit versions allowed.
    commit = h.coordinator.commit_offsets
    offsets = {("t", 0): OffsetAndMetadata(5)}
    assert commit("g", member, None, 2, offsets, api_version=8) == {("t", 0): E.NONE}
    assert commit("g", member, None, 1, offsets, api_version=8) == {("t", 0): E.ILLEGAL_GENERATION}
    assert commit("g", "a", None, 2, offsets, api_version=8) == {("t", 0): E.UNSUPPORTED_VERSION}
    # It leaves: "a" gets everything back.
    assert h.coordinator.leave_group("g", [(member, None)]) == (E.NONE, [E.NONE])
    assert h.coordinator.leave_group("g", [("a", None)]) == (E.NONE, [E.UNKNOWN_MEMBER_ID])
    a = h.beat("a", 2, keep)
    assert (a.member_epoch, a.assignment) == (3, {T: frozenset(ALL)})


def test_classic_member_with_other_protocols_is_refused(h: MigrationHarness) -> None:
    h.beat("a", 0)
    refused = h.join(protocol_type="connect", protocols=[("range", subscription())])
    assert refused.value.error == E.INCONSISTENT_GROUP_PROTOCOL
    member = h.classic_join().member_id
    # A protocol none of the classic members supports.
    other = h.join(protocols=[("sticky", subscription())], require_known=False)
    assert other.value.error == E.INCONSISTENT_GROUP_PROTOCOL
    assert h.coordinator.consumer_group("g") is not None
    assert member in owners(h)


def test_classic_member_timeouts(h: MigrationHarness) -> None:
    h.beat("a", 0)
    group = h.coordinator.consumer_group("g")
    assert group is not None
    # Its own session timeout applies (10 s), not the consumer groups' (45 s).
    silent = h.classic_join().member_id
    assert h.sync(silent, 2).value.error == E.NONE
    h.advance(SESSION - 1)
    assert silent in owners(h)
    h.advance(1)
    assert silent not in owners(h)
    # Joined, it must sync within its rebalance timeout (30 s), heartbeats or not.
    never_syncs = h.classic_join().member_id
    epoch = group.members[never_syncs].member_epoch
    for _ in range(REBALANCE // 5_000 - 1):
        h.advance(5_000)
        assert h.heartbeat(never_syncs, epoch) == E.NONE
    h.advance(5_000)
    assert never_syncs not in owners(h)
    # Told to rejoin, it must rejoin within its rebalance timeout.
    late = h.classic_join().member_id
    epoch = group.members[late].member_epoch
    assert h.sync(late, epoch).value.error == E.NONE
    h.beat("b", 0)  # the group epoch moves on
    for _ in range(REBALANCE // 5_000):
        assert h.heartbeat(late, epoch) == E.REBALANCE_IN_PROGRESS
        h.advance(5_000)
    assert late not in owners(h)


def test_downgrade_when_the_last_consumer_member_leaves(h: MigrationHarness) -> None:
    a, b = h.classic_group()
    h.beat("c", 0)
    h.settle(a, {0, 1})
    h.settle(b, {2, 3})
    assert h.beat("c", 2, set()).assignment
    left = h.beat("c", -1)
    assert (left.error, left.member_epoch) == (E.NONE, -1)
    assert h.coordinator.consumer_group("g") is None
    group = h.coordinator.groups["g"]
    assert (group.state.value, group.protocol_type, group.generation_id) == (
        "PreparingRebalance",
        "consumer",
        2,
    )
    assert set(group.members) == {a, b}
    # The members rebalance as a classic group: the leader assigns again.
    assert h.heartbeat(a, 2) == E.REBALANCE_IN_PROGRESS
    joins = {m: h.join(m, protocols=[("range", subscription())]) for m in (a, b)}
    h.advance(0)
    results = {m: j.value for m, j in joins.items()}
    assert all(r.error == E.NONE and r.generation_id == 3 for r in results.values())
    leader = results[a].leader
    assert len(results[leader].members) == 2
    given = {a: assignment({0, 1}), b: assignment({2, 3})}
    for m in (a, b):
        assert h.sync(m, 3, given if m == leader else {}).value.error == E.NONE
    assert h.state() == "Stable"


def test_downgrade_when_the_last_consumer_members_session_ends(tmp_path: Path) -> None:
    h = policy_harness(tmp_path)
    a, b = h.classic_group()
    h.beat("c", 0)
    # c goes silent: its session ends (45 s) while a and b keep beating (they rejoin once).
    generations = {m: h.settle(m, owned)[0] for m, owned in ((a, {0, 1}), (b, {2, 3}))}
    for _ in range(10):
        h.advance(5_000)
        for m in (a, b):
            if h.coordinator.consumer_group("g") is not None:
                assert h.heartbeat(m, generations[m]) in (E.NONE, E.REBALANCE_IN_PROGRESS)
    assert h.coordinator.consumer_group("g") is None
    assert set(h.coordinator.groups["g"].members) == {a, b}


def test_classic_static_member_replacing_the_last_consumer_member(h: MigrationHarness) -> None:
    c = h.beat("c", 0, instance="i-c")
    assert c.assignment == {T: frozenset(ALL)}
    member = h.classic_join().member_id
    revoking = h.beat("c", 1, ALL, instance="i-c").assignment
    assert revoking is not None
    keep = set(revoking.get(T, frozenset()))
    h.beat("c", 1, keep, instance="i-c")
    assert h.beat("c", -2, instance="i-c").error == E.NONE  # leaves for now, as static members do
    assert h.coordinator.consumer_group("g") is not None
    # A classic consumer comes back under the same instance id: every member is classic now.
    back = h.join(instance="i-c", protocols=[("range", subscription(keep))])
    h.advance(0)
    assert (back.value.error, back.value.generation_id) == (E.NONE, 2)
    assert h.coordinator.consumer_group("g") is None
    group = h.coordinator.groups["g"]
    assert (group.state.value, set(group.members)) == ("Stable", {member, back.value.member_id})
    assert partitions_of(group.members[back.value.member_id].assignment) == keep


@pytest.mark.parametrize("policy", ["disabled", "upgrade"])
def test_no_downgrade_unless_the_policy_allows(tmp_path: Path, policy: str) -> None:
    h = policy_harness(tmp_path, policy)
    h.beat("c", 0)
    member = h.classic_join().member_id
    h.beat("c", -1)
    assert h.coordinator.consumer_group("g") is not None
    assert set(owners(h)) == {member}
    # The classic member alone gets everything; the group stays a consumer group.
    assert h.heartbeat(member, 2) == E.REBALANCE_IN_PROGRESS
    generation, owned = h.settle(member, set())
    assert (generation, owned) == (3, ALL)


@pytest.mark.parametrize(
    ("policy", "protocol_type", "max_size", "reason"),
    [
        ("disabled", "consumer", 100, "online upgrade is disabled."),
        ("downgrade", "consumer", 100, "online upgrade is disabled."),
        (
            "upgrade",
            "connect",
            100,
            "the group does not use the consumer embedded protocol.",
        ),
        ("bidirectional", "consumer", 1, "the group size exceeds the consumer group maximum size."),
    ],
)
def test_upgrade_refused(
    tmp_path: Path, policy: str, protocol_type: str, max_size: int, reason: str
) -> None:
    h = policy_harness(tmp_path, policy, max_size=max_size)
    for _ in range(2):
        first = h.join(protocol_type=protocol_type, protocols=[("range", subscription())])
        h.join(first.value.member_id, protocol_type=protocol_type)
    h.advance(0)
    result = h.beat("c", 0)
    assert (result.error, result.message) == (
        E.GROUP_ID_NOT_FOUND,
        f"Cannot upgrade classic group g to consumer group because {reason}",
    )
    assert h.coordinator.consumer_group("g") is None and len(h.coordinator.groups["g"].members) == 2
    # A heartbeat of a member that is not joining never converts anything.
    assert h.beat("c", 3).error == E.GROUP_ID_NOT_FOUND


def test_upgrade_refused_when_the_embedded_protocol_is_malformed(h: MigrationHarness) -> None:
    h.stable_group(1)  # its assignment is not in the consumer protocol's format
    result = h.beat("c", 0)
    assert (result.error, result.message) == (
        E.GROUP_ID_NOT_FOUND,
        "Cannot upgrade the classic group g to consumer group because the embedded consumer "
        "protocol is malformed.",
    )
    assert h.state() == "Stable"


def test_migrated_group_survives_a_restart(h: MigrationHarness) -> None:
    a, b = h.classic_group()
    h.beat("c", 0)
    h.reopen()
    group = h.coordinator.consumer_group("g")
    assert group is not None
    classic = group.members[a].classic
    assert classic is not None and classic.session_timeout_ms == SESSION
    assert [name for name, _ in classic.protocols] == ["range"]
    assert owners(h) == {a: {0, 1}, b: {2, 3}, "c": set()}
    assert h.heartbeat(a, 1) == E.REBALANCE_IN_PROGRESS
    h.settle(a, {0, 1})
    h.settle(b, {2, 3})
    assert h.beat("c", 2, set()).assignment
    h.reopen()
    h.beat("c", -1)  # the downgrade is durable too
    h.reopen()
    assert h.coordinator.consumer_group("g") is None
    assert set(h.coordinator.groups["g"].members) == {a, b}


def test_upgrade_during_a_classic_rebalance(h: MigrationHarness) -> None:
    a, _ = h.classic_group()
    waiting = h.join(a, protocols=[("range", subscription({0, 1}))])  # waits for b to rejoin
    assert not waiting.done and h.state() == "PreparingRebalance"
    assert h.beat("c", 0).error == E.NONE
    # The waiting member is told to rejoin: it does so into the consumer group.
    assert waiting.done and waiting.value.error == E.REBALANCE_IN_PROGRESS
    generation, owned = h.settle(a, {0, 1})
    assert generation == 2 and owned <= {0, 1}
