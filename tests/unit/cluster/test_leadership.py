"""The controller's leadership decisions when brokers leave and come back."""

from __future__ import annotations

import uuid

from kafkacompat.cluster.leadership import leadership_changes
from kafkacompat.cluster.metadata_image import (
    BrokerInfo,
    MetadataImage,
    PartitionImage,
    TopicImage,
)
from kafkacompat.cluster.metadata_records import PartitionState


def image(*partitions: PartitionImage) -> MetadataImage:
    topic = TopicImage("t", uuid.UUID(int=1), len(partitions), tuple(partitions))
    brokers = [BrokerInfo(n, "127.0.0.1", 9090 + n) for n in (1, 2, 3)]
    return MetadataImage.build("c", 1, brokers, [topic])


def part(
    index: int, leader: int, epoch: int, replicas: tuple[int, ...], isr: tuple[int, ...]
) -> PartitionImage:
    return PartitionImage(index, leader, epoch, replicas, isr, version=100 + index)


def test_nothing_changes_while_every_replica_lives() -> None:
    assert leadership_changes(image(part(0, 1, 3, (1, 2, 3), (1, 2, 3))), {1, 2, 3}, 7) == []


def test_a_dead_leader_is_replaced_by_the_next_in_sync_replica() -> None:
    before = image(
        part(0, 1, 3, (1, 2, 3), (1, 2, 3)),
        part(1, 2, 5, (2, 3, 1), (2, 3, 1)),
        part(2, 3, 0, (3, 1, 2), (3, 2)),
    )
    assert leadership_changes(before, {2, 3}, 7) == [
        ("t", 0, PartitionState(2, 4, (2, 3), 7), 100),  # new leader, broker 1 out of the ISR
        ("t", 1, PartitionState(2, 6, (2, 3), 7), 101),  # same leader, smaller ISR: epoch bumped
    ]


def test_no_live_in_sync_replica_means_no_leader_until_it_returns() -> None:
    before = image(part(0, 1, 3, (1, 2), (1,)))
    [(_, _, offline, version)] = leadership_changes(before, {2}, 7)
    assert version == 100
    assert offline == PartitionState(-1, 4, (1,), 7)
    # Broker 2 is alive but out of sync: it never leads (no unclean election).
    after = image(part(0, -1, 4, (1, 2), (1,)))
    assert leadership_changes(after, {2}, 7) == []
    # Broker 1 returns: it leads again.
    assert leadership_changes(after, {1, 2}, 8) == [("t", 0, PartitionState(1, 5, (1,), 8), 100)]


def unclean_topic(value: str | None, *partitions: PartitionImage) -> MetadataImage:
    configs = {} if value is None else {"unclean.leader.election.enable": value}
    topic = TopicImage("t", uuid.UUID(int=1), len(partitions), tuple(partitions), configs)
    brokers = [BrokerInfo(n, "127.0.0.1", 9090 + n) for n in (1, 2, 3)]
    return MetadataImage.build("c", 1, brokers, [topic])


def test_unclean_election_elects_a_live_replica_out_of_sync_where_allowed() -> None:
    offline = part(0, -1, 4, (1, 2, 3), (1,))
    elected = [("t", 0, PartitionState(2, 5, (2,), 7), 100)]
    # The topic's override, over the broker default either way.
    assert leadership_changes(unclean_topic("true", offline), {2, 3}, 7) == elected
    assert leadership_changes(unclean_topic("false", offline), {2, 3}, 7, unclean=True) == []
    # No override: the broker default decides.
    assert leadership_changes(unclean_topic(None, offline), {2, 3}, 7) == []
    assert leadership_changes(unclean_topic(None, offline), {2, 3}, 7, unclean=True) == elected


def test_unclean_election_is_a_last_resort() -> None:
    # The leader dies with a live in-sync replica: the clean choice, whatever the setting.
    led = part(0, 1, 3, (1, 2, 3), (1, 3))
    assert leadership_changes(unclean_topic("true", led), {2, 3}, 7) == [
        ("t", 0, PartitionState(3, 4, (3,), 7), 100)
    ]
    # The last in-sync replica dies with nobody else alive: offline, it stays in the ISR.
    alone = part(0, 1, 3, (1, 2), (1,))
    assert leadership_changes(unclean_topic("true", alone), {3}, 7) == [
        ("t", 0, PartitionState(-1, 4, (1,), 7), 100)
    ]
    # The last in-sync replica dies while an out-of-sync one lives: that one leads at once.
    assert leadership_changes(unclean_topic("true", alone), {2}, 7) == [
        ("t", 0, PartitionState(2, 4, (2,), 7), 100)
    ]


def test_partitions_without_a_state_are_left_to_their_creation() -> None:
    new = PartitionImage(0, -1, 0, (1, 2, 3), ())
    assert leadership_changes(unclean_topic("true", new), {1, 2, 3}, 7, unclean=True) == []
