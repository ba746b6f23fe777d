"""Controlled shutdown's partition changes, and which replica fetcher copies a partition."""

from __future__ import annotations

import uuid

from kafkacompat.cluster.controlled_shutdown import shutdown_changes
from kafkacompat.cluster.metadata_image import (
    BrokerInfo,
    MetadataImage,
    PartitionImage,
    TopicImage,
)
from kafkacompat.cluster.metadata_records import PartitionState
from kafkacompat.cluster.replica_fetcher import fetcher_number


def image(*partitions: PartitionImage) -> MetadataImage:
    topic = TopicImage("t", uuid.UUID(int=1), len(partitions), tuple(partitions))
    brokers = [BrokerInfo(n, "127.0.0.1", 9090 + n) for n in (1, 2, 3)]
    return MetadataImage.build("c", 1, brokers, [topic], controller_epoch=4)


def test_a_stopping_broker_hands_over_leadership_and_leaves_the_isrs() -> None:
    before = image(
        PartitionImage(0, 1, 3, (1, 2, 3), (1, 2, 3), version=10),  # led: to 2
        PartitionImage(1, 2, 5, (2, 1, 3), (2, 1, 3), version=11),  # followed: leaves the ISR
        PartitionImage(2, 1, 0, (1, 3, 2), (1, 2), version=12),  # 3 out of sync: to 2
        PartitionImage(3, 1, 7, (1, 2), (1,), version=13),  # no one else in sync: kept
        PartitionImage(4, 3, 1, (3, 2), (3, 2), version=14),  # not a replica here
    )
    assert shutdown_changes(before, 1, {2, 3}) == [
        ("t", 0, PartitionState(2, 4, (2, 3), 4), 10),
        ("t", 1, PartitionState(2, 6, (2, 3), 4), 11),
        ("t", 2, PartitionState(2, 1, (2,), 4), 12),
    ]
    # With broker 2 down, 3 takes over where it is in sync; partition 2 has no one left.
    assert shutdown_changes(before, 1, {3}) == [
        ("t", 0, PartitionState(3, 4, (2, 3), 4), 10),
        ("t", 1, PartitionState(2, 6, (2, 3), 4), 11),
    ]


def test_each_partition_has_one_fetcher_as_kafka_picks_it() -> None:
    # abs(31 * "orders".hashCode() + partition) % fetchers, with Java int arithmetic.
    assert [fetcher_number("orders", p, 3) for p in range(6)] == [
        abs(((31 * -1008770331 + p) + 2**31) % 2**32 - 2**31) % 3 for p in range(6)
    ]
    assert {fetcher_number("orders", p, 1) for p in range(10)} == {0}
