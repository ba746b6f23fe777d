"""Replica placement and leader election, against the assignments Kafka's own tests expect."""

from __future__ import annotations

from collections import Counter

import pytest

from kafkacompat.cluster.replica_placement import (
    NO_LEADER,
    assign_replicas,
    elect_leader,
    rack_alternated,
)
from kafkacompat.errors import ErrorCode, KafkaError


def test_round_robin_with_a_growing_shift() -> None:
    brokers: dict[int, str | None] = dict.fromkeys(range(5))
    assert assign_replicas(brokers, 10, 3, start_index=0, replica_shift=0) == [
        [0, 1, 2],
        [1, 2, 3],
        [2, 3, 4],
        [3, 4, 0],
        [4, 0, 1],
        [0, 2, 3],
        [1, 3, 4],
        [2, 4, 0],
        [3, 0, 1],
        [4, 1, 2],
    ]


def test_racks_alternate_and_each_partition_spans_racks() -> None:
    racks = {0: "rack1", 1: "rack3", 2: "rack3", 3: "rack2", 4: "rack2", 5: "rack1"}
    assert rack_alternated(racks) == [0, 3, 1, 5, 4, 2]
    assignment = assign_replicas(dict(racks), 7, 3, start_index=0, replica_shift=0)
    assert assignment == [
        [0, 3, 1],
        [3, 1, 5],
        [1, 5, 4],
        [5, 4, 2],
        [4, 2, 0],
        [2, 0, 3],
        [0, 4, 2],
    ]
    for replicas in assignment:
        assert len({racks[b] for b in replicas}) == 3


def test_leaders_and_replicas_spread_evenly() -> None:
    brokers: dict[int, str | None] = dict.fromkeys([1, 2, 3])
    assignment = assign_replicas(brokers, 6, 2)
    assert Counter(r[0] for r in assignment) == {1: 2, 2: 2, 3: 2}
    assert Counter(b for r in assignment for b in r) == {1: 4, 2: 4, 3: 4}
    assert all(len(set(r)) == 2 for r in assignment)


def test_added_partitions_continue_the_leaders_round_robin() -> None:
    """As Kafka's partition addition: leaders continue from the existing partitions; the shift
    restarts from the one given (Kafka picks it at random)."""
    brokers: dict[int, str | None] = dict.fromkeys(range(5))
    tail = assign_replicas(brokers, 4, 3, start_index=0, replica_shift=0, first_partition=6)
    assert tail == [[1, 2, 3], [2, 3, 4], [3, 4, 0], [4, 0, 1]]


@pytest.mark.parametrize(
    ("brokers", "partitions", "factor", "code", "message"),
    [
        (
            {1: None, 2: None},
            3,
            3,
            ErrorCode.INVALID_REPLICATION_FACTOR,
            "Replication factor: 3 larger than available brokers: 2.",
        ),
        (
            {1: None},
            0,
            1,
            ErrorCode.INVALID_PARTITIONS,
            "Number of partitions must be larger than 0.",
        ),
        (
            {1: None},
            1,
            0,
            ErrorCode.INVALID_REPLICATION_FACTOR,
            "Replication factor must be larger than 0.",
        ),
        (
            {1: "a", 2: None},
            1,
            1,
            ErrorCode.INVALID_REPLICATION_FACTOR,
            "Not all brokers have rack information for replica rack aware assignment.",
        ),
    ],
)
def test_refusals(
    brokers: dict[int, str | None], partitions: int, factor: int, code: ErrorCode, message: str
) -> None:
    with pytest.raises(KafkaError) as refused:
        assign_replicas(brokers, partitions, factor)
    assert (refused.value.code, refused.value.message) == (code, message)


def test_election_takes_the_first_live_in_sync_replica() -> None:
    assert elect_leader([3, 1, 2], isr=[1, 2, 3], live=[1, 2, 3]) == 3
    assert elect_leader([3, 1, 2], isr=[1, 2, 3], live=[1, 2]) == 1
    assert elect_leader([3, 1, 2], isr=[2, 3], live=[1, 2]) == 2
    assert elect_leader([3, 1, 2], isr=[3], live=[1, 2]) == NO_LEADER
