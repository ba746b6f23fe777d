"""Committed offsets: validation, durability, replay, compaction, expiry and deletion."""

from __future__ import annotations

from pathlib import Path

import pytest

from kafkacompat.coordinators.group import GroupConfig
from kafkacompat.coordinators.group_offsets import (
    NAMESPACE,
    OffsetAndMetadata,
    StoredGroup,
    StoredMember,
    decode_group,
    decode_offset,
    encode_group,
    encode_offset,
)
from kafkacompat.errors import ErrorCode as E
from tests.unit.group_helpers import SESSION, Harness, consumer_metadata

RETENTION = 60_000
CHECK = 1_000


@pytest.fixture
def h(tmp_path: Path) -> Harness:
    config = GroupConfig(
        initial_rebalance_delay_ms=0,
        offsets_retention_ms=RETENTION,
        offsets_retention_check_interval_ms=CHECK,
    )
    return Harness(tmp_path, config)


def commit(
    h: Harness,
    offsets: dict[tuple[str, int], int],
    *,
    group: str = "g",
    member: str = "",
    generation: int = -1,
    instance: str | None = None,
) -> dict[tuple[str, int], E]:
    values = {tp: OffsetAndMetadata(o, 3, f"meta-{o}") for tp, o in offsets.items()}
    return h.coordinator.commit_offsets(group, member, instance, generation, values)


def fetched(h: Harness, group: str = "g") -> dict[tuple[str, int], int]:
    return {tp: v.offset for tp, v in h.coordinator.fetch_offsets(group, None).items() if v}


def keep_alive(h: Harness, member: str, ms: int) -> None:
    """Let ``ms`` pass while ``member`` heartbeats every second."""
    for _ in range(ms // 1000):
        h.advance(1000)
        assert h.heartbeat(member, 1) == E.NONE


def test_value_encodings_round_trip() -> None:
    for value in (OffsetAndMetadata(5, -1, None, 7, -1), OffsetAndMetadata(2**40, 9, "é", 1, 2)):
        assert decode_offset(encode_offset(value)) == value
    group = StoredGroup(
        "consumer",
        4,
        "range",
        "m1",
        123,
        [StoredMember("m1", "i", "c", "/h", 1, 2, [("range", b"\x00\xff")], b"\x01")],
    )
    assert decode_group(encode_group(group)) == group


def test_simple_commit_and_fetch(h: Harness) -> None:
    assert commit(h, {("t", 0): 10, ("t", 1): 20}) == {("t", 0): E.NONE, ("t", 1): E.NONE}
    result = h.coordinator.fetch_offsets("g", [("t", 0), ("t", 5)])
    assert result[("t", 5)] is None
    value = result[("t", 0)]
    assert value is not None
    assert (value.offset, value.leader_epoch, value.metadata) == (10, 3, "meta-10")
    assert value.commit_timestamp == h.clock.now
    assert h.coordinator.fetch_offsets("unknown", None) == {}
    assert h.coordinator.fetch_offsets("unknown", [("t", 0)]) == {("t", 0): None}
    assert h.state() == "Empty"
    assert h.coordinator.list_groups() == [("g", "", "Empty")]


def test_commit_from_an_unknown_generation_of_an_unknown_group_is_refused(h: Harness) -> None:
    assert commit(h, {("t", 0): 1}, member="m", generation=3) == {("t", 0): E.ILLEGAL_GENERATION}
    assert h.coordinator.list_groups() == []


def test_metadata_too_large_is_refused_per_partition(h: Harness) -> None:
    values = {
        ("t", 0): OffsetAndMetadata(1, metadata="x" * 4097),
        ("t", 1): OffsetAndMetadata(2, metadata="x" * 4096),
    }
    assert h.coordinator.commit_offsets("g", "", None, -1, values) == {
        ("t", 0): E.OFFSET_METADATA_TOO_LARGE,
        ("t", 1): E.NONE,
    }
    assert fetched(h) == {("t", 1): 2}


def test_group_member_commits_are_checked_against_the_generation(h: Harness) -> None:
    a, b = h.stable_group(2)
    assert commit(h, {("t", 0): 1}, member=a, generation=1) == {("t", 0): E.NONE}
    assert commit(h, {("t", 0): 2}, member=a, generation=0) == {("t", 0): E.ILLEGAL_GENERATION}
    assert commit(h, {("t", 0): 2}, member="x", generation=1) == {("t", 0): E.UNKNOWN_MEMBER_ID}
    assert commit(h, {("t", 0): 2}) == {("t", 0): E.UNKNOWN_MEMBER_ID}  # simple commit, busy group
    h.join_new()  # a rebalance starts: members may still commit for their generation
    assert commit(h, {("t", 0): 3}, member=b, generation=1) == {("t", 0): E.NONE}
    h.join(a)
    h.join(b)
    assert h.state() == "CompletingRebalance"
    assert commit(h, {("t", 0): 4}, member=a, generation=2) == {("t", 0): E.REBALANCE_IN_PROGRESS}
    assert fetched(h) == {("t", 0): 3}


def test_committing_keeps_a_member_alive(h: Harness) -> None:
    a, b = h.stable_group(2)
    for _ in range(3):
        h.advance(SESSION // 2)
        assert commit(h, {("t", 0): 1}, member=a, generation=1) == {("t", 0): E.NONE}
        h.heartbeat(b, 1)
    assert h.heartbeat(a, 1) == E.NONE


def test_offsets_and_groups_survive_a_restart(h: Harness) -> None:
    first = h.join(instance="i-1")
    h.advance(0)
    member = first.value.member_id
    h.sync(member, 1, {member: b"assigned"})
    commit(h, {("t", 0): 42, ("u", 3): 7}, member=member, generation=1)
    commit(h, {("x", 0): 1}, group="simple")
    h.reopen()
    assert fetched(h) == {("t", 0): 42, ("u", 3): 7}
    assert fetched(h, "simple") == {("x", 0): 1}
    assert h.coordinator.fetch_offsets("g", [("t", 0)])[("t", 0)] == OffsetAndMetadata(
        42, 3, "meta-42", h.clock.now
    )
    description = h.coordinator.describe_group("g")
    assert description.state == "Stable"
    assert [(m.member_id, m.assignment) for m in description.members] == [(member, b"assigned")]
    # The static member restarts and takes its place back with no rebalance.
    rejoin = h.join(instance="i-1")
    assert (rejoin.value.error, rejoin.value.generation_id) == (E.NONE, 1)
    assert h.sync(rejoin.value.member_id, 1, instance="i-1").value.assignment == b"assigned"
    assert h.state() == "Stable"


def test_a_reloaded_member_that_never_returns_is_evicted(h: Harness) -> None:
    (a,) = h.stable_group(1)
    commit(h, {("t", 0): 5}, member=a, generation=1)
    h.reopen()
    h.advance(SESSION)
    assert h.state() == "Empty"
    assert fetched(h) == {("t", 0): 5}
    assert h.join_new().done is False


def test_the_offsets_file_is_compacted(h: Harness) -> None:
    for i in range(3000):
        commit(h, {("t", i % 4): i})
    namespace = h.state_store.namespace(NAMESPACE)
    assert namespace.file_size < 8192
    h.reopen()
    assert fetched(h) == {("t", 0): 2996, ("t", 1): 2997, ("t", 2): 2998, ("t", 3): 2999}


def test_offsets_of_an_empty_group_expire_after_the_retention(h: Harness) -> None:
    (a,) = h.stable_group(1)
    commit(h, {("t", 0): 5}, member=a, generation=1)
    keep_alive(h, a, RETENTION * 2)  # the group is Stable: subscribed topics never expire
    assert fetched(h) == {("t", 0): 5}
    h.coordinator.leave_group("g", [(a, None)])
    assert h.state() == "Empty"
    h.advance(RETENTION - CHECK)
    assert fetched(h) == {("t", 0): 5}
    h.advance(CHECK)
    assert fetched(h) == {}
    assert h.coordinator.list_groups() == []  # empty and without offsets: removed
    h.reopen()
    assert fetched(h) == {} and h.coordinator.list_groups() == []


def test_stable_group_loses_only_offsets_of_unsubscribed_topics(h: Harness) -> None:
    (a,) = h.stable_group(1)  # subscribed to "t"
    commit(h, {("t", 0): 1, ("old", 0): 2}, member=a, generation=1)
    keep_alive(h, a, RETENTION - CHECK)
    assert fetched(h) == {("t", 0): 1, ("old", 0): 2}
    keep_alive(h, a, CHECK)
    assert fetched(h) == {("t", 0): 1}


def test_simple_group_offsets_expire_by_commit_time(h: Harness) -> None:
    commit(h, {("t", 0): 1})
    h.advance(RETENTION // 2)
    commit(h, {("t", 1): 1})
    h.advance(RETENTION // 2)
    assert fetched(h) == {("t", 1): 1}
    h.advance(RETENTION // 2)
    assert fetched(h) == {}


def test_explicit_expire_timestamp_wins(h: Harness) -> None:
    now = h.clock.now
    values = {("t", 0): OffsetAndMetadata(1, expire_timestamp=now + 2 * CHECK)}
    h.coordinator.commit_offsets("g", "", None, -1, values)
    h.advance(2 * CHECK)
    assert fetched(h) == {}


def test_delete_groups(h: Harness) -> None:
    h.stable_group(1, group="busy")
    commit(h, {("t", 0): 1}, group="idle")
    assert h.coordinator.delete_groups(["busy", "idle", "missing", ""]) == {
        "busy": E.NON_EMPTY_GROUP,
        "idle": E.NONE,
        "missing": E.GROUP_ID_NOT_FOUND,
        "": E.GROUP_ID_NOT_FOUND,
    }
    assert fetched(h, "idle") == {}
    assert [g for g, _, _ in h.coordinator.list_groups()] == ["busy"]
    h.reopen()
    assert fetched(h, "idle") == {}


def test_offset_delete(h: Harness) -> None:
    (a,) = h.stable_group(1)
    commit(h, {("t", 0): 1, ("other", 0): 2}, member=a, generation=1)
    assert h.coordinator.delete_offsets("g", [("t", 0), ("other", 0)]) == (
        E.NONE,
        {("t", 0): E.GROUP_SUBSCRIBED_TO_TOPIC, ("other", 0): E.NONE},
    )
    assert fetched(h) == {("t", 0): 1}
    h.coordinator.leave_group("g", [(a, None)])
    assert h.coordinator.delete_offsets("g", [("t", 0)]) == (E.NONE, {("t", 0): E.NONE})
    assert fetched(h) == {}
    assert h.coordinator.delete_offsets("missing", [("t", 0)]) == (E.GROUP_ID_NOT_FOUND, {})


def test_offset_delete_of_a_non_consumer_group_in_use(h: Harness) -> None:
    join = h.join(protocol_type="connect", protocols=[("default", b"")], require_known=False)
    h.advance(0)
    h.sync(join.value.member_id, 1)
    assert h.coordinator.delete_offsets("g", [("t", 0)]) == (E.NON_EMPTY_GROUP, {})
    assert consumer_metadata("t")  # the helper encodes a v0 subscription
