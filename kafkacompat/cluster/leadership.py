"""The controller's decisions when brokers come and go: which partitions get a new leader or a
smaller ISR, as Kafka's controller makes them.

A broker that left is taken out of every ISR; a partition it led gets the first live in-sync
replica in assignment order as leader, or no leader (-1) when none is left (unclean election
stays off; the ISR keeps its last member so that broker can lead again when it returns). A
partition without a leader gets one as soon as an in-sync replica is alive. Every change bumps
the leader epoch, so requests and followers of the old leadership are fenced (KIP-320).
"""

from __future__ import annotations

from collections.abc import Set

from kafkacompat.cluster.metadata_image import MetadataImage, PartitionImage
from kafkacompat.cluster.metadata_records import PartitionState
from kafkacompat.cluster.replica_placement import NO_LEADER, elect_leader

__all__ = ["PartitionChange", "leadership_changes"]

#: Topic, partition index, its new state, and the partition version it replaces.
PartitionChange = tuple[str, int, PartitionState, int]


def leadership_changes(
    image: MetadataImage, live: Set[int], controller_epoch: int
) -> list[PartitionChange]:
    """The new states of the partitions whose leader or ISR must change, given the ``live``
    brokers (topics by name, partitions by index)."""
    changes: list[PartitionChange] = []
    for topic in image.list_topics():
        for partition in topic.assignment:
            state = _next_state(partition, live, controller_epoch)
            if state is not None:
                changes.append((topic.name, partition.index, state, partition.version))
    return changes


def _next_state(
    partition: PartitionImage, live: Set[int], controller_epoch: int
) -> PartitionState | None:
    isr = tuple(b for b in partition.isr if b in live)
    if not isr and partition.isr:
        isr = partition.isr[-1:]  # the last in-sync replica stays, to lead again on return
    leader = partition.leader
    if leader not in live or leader not in isr:
        leader = elect_leader(partition.replicas, isr, live)
    if leader == partition.leader and isr == partition.isr:
        return None
    if leader == NO_LEADER and partition.leader == NO_LEADER and isr == partition.isr:
        return None
    return PartitionState(leader, partition.leader_epoch + 1, isr, controller_epoch)
