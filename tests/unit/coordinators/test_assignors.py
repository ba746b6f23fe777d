"""The server-side assignors: complete, disjoint, balanced, sticky across epochs, deterministic."""

from __future__ import annotations

import uuid

from kafkacompat.coordinators.assignors import (
    Assignment,
    MemberSpec,
    RangeAssignor,
    UniformAssignor,
    assignor_named,
)

T1 = uuid.UUID(int=1)
T2 = uuid.UUID(int=2)
COUNTS = {T1: 6, T2: 3}


def flat(assignment: Assignment) -> set[tuple[uuid.UUID, int]]:
    return {(t, p) for t, parts in assignment.items() for p in parts}


def check_complete_and_disjoint(
    result: dict[str, Assignment], counts: dict[uuid.UUID, int]
) -> None:
    seen: set[tuple[uuid.UUID, int]] = set()
    for assignment in result.values():
        mine = flat(assignment)
        assert not (seen & mine)
        seen |= mine
    assert seen == {(t, p) for t, n in counts.items() for p in range(n)}


def specs(
    ids: list[str],
    current: dict[str, Assignment] | None = None,
    topics: frozenset[uuid.UUID] = frozenset(COUNTS),
) -> dict[str, MemberSpec]:
    return {m: MemberSpec(topics, (current or {}).get(m, {})) for m in ids}


def sizes(result: dict[str, Assignment]) -> list[int]:
    return sorted(len(flat(a)) for a in result.values())


def test_uniform_balances_homogeneous_members() -> None:
    for n in (1, 2, 3, 4, 9, 12):
        result = UniformAssignor().assign(specs([f"m{i}" for i in range(n)]), COUNTS)
        check_complete_and_disjoint(result, COUNTS)
        assert max(sizes(result)) - min(sizes(result)) <= 1, n


def test_uniform_is_sticky_when_a_member_joins_and_leaves() -> None:
    uniform = UniformAssignor()
    first = uniform.assign(specs(["a", "b"]), COUNTS)
    assert sizes(first) == [4, 5]
    second = uniform.assign(specs(["a", "b", "c"], first), COUNTS)
    check_complete_and_disjoint(second, COUNTS)
    assert sizes(second) == [3, 3, 3]
    # a and b only give partitions away; c takes exactly what they gave.
    for m in ("a", "b"):
        assert flat(second[m]) <= flat(first[m])
    moved = sum(len(flat(first[m]) - flat(second[m])) for m in ("a", "b"))
    assert moved == 3
    # c leaves: a and b keep everything they had and share c's partitions.
    third = uniform.assign(specs(["a", "b"], second), COUNTS)
    check_complete_and_disjoint(third, COUNTS)
    assert sizes(third) == [4, 5]
    for m in ("a", "b"):
        assert flat(second[m]) <= flat(third[m])


def test_uniform_keeps_assignment_when_nothing_changed() -> None:
    uniform = UniformAssignor()
    first = uniform.assign(specs(["a", "b", "c"]), COUNTS)
    assert uniform.assign(specs(["a", "b", "c"], first), COUNTS) == first


def test_uniform_assigns_only_subscribed_topics() -> None:
    members = {
        "a": MemberSpec(frozenset({T1})),
        "b": MemberSpec(frozenset({T1, T2})),
        "c": MemberSpec(frozenset({T2})),
    }
    result = UniformAssignor().assign(members, COUNTS)
    check_complete_and_disjoint(result, COUNTS)
    assert set(result["a"]) <= {T1} and set(result["c"]) <= {T2}
    assert sizes(result) == [3, 3, 3]


def test_uniform_drops_partitions_of_deleted_topics_and_shrunk_counts() -> None:
    first = UniformAssignor().assign(specs(["a", "b"]), COUNTS)
    result = UniformAssignor().assign(specs(["a", "b"], first), {T1: 2})
    check_complete_and_disjoint(result, {T1: 2})


def test_uniform_is_deterministic() -> None:
    ids = ["m3", "m1", "m2"]
    one = UniformAssignor().assign(specs(ids), COUNTS)
    other = UniformAssignor().assign(specs(list(reversed(ids))), dict(reversed(COUNTS.items())))
    assert one == other


def test_range_gives_contiguous_copartitioned_ranges() -> None:
    counts = {T1: 5, T2: 5}
    result = RangeAssignor().assign(specs(["b", "a"], topics=frozenset(counts)), counts)
    check_complete_and_disjoint(result, counts)
    assert result["a"] == {T1: frozenset({0, 1, 2}), T2: frozenset({0, 1, 2})}
    assert result["b"] == {T1: frozenset({3, 4}), T2: frozenset({3, 4})}


def test_range_with_more_members_than_partitions() -> None:
    counts = {T1: 2}
    result = RangeAssignor().assign(specs(["a", "b", "c"], topics=frozenset(counts)), counts)
    check_complete_and_disjoint(result, counts)
    assert result["c"] == {}


def test_assignors_by_name() -> None:
    assert assignor_named("uniform") is not None and assignor_named("range") is not None
    class_name = "org.apache.kafka.coordinator.group.assignor.RangeAssignor"
    assert getattr(assignor_named(class_name), "name", None) == "range"
    assert assignor_named("sticky") is None
