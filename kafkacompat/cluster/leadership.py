"""The controller's decisions when brokers come and go: which partitions get a new leader or a
smaller ISR, as Kafka's controller makes them.

A broker that left is taken out of every ISR; a partition it led gets the first live in-sync
replica in assignment order as leader. When no in-sync replica is alive the partition goes
offline (leader -1; the ISR keeps its last member so that broker can lead again when it
returns) unless unclean election is allowed for its topic (``unclean.leader.election.enable``,
the topic's override over the broker's default): then the first live replica leads and the ISR
is that replica alone, as in Kafka. A partition without a leader gets one as soon as an eligible
replica is alive. Every change bumps the leader epoch, so requests and followers of the old
leadership are fenced (KIP-320).
"""

from __future__ import annotations

from collections.abc import Set

from kafkacompat.cluster.metadata_image import MetadataImage, PartitionImage, TopicImage
from kafkacompat.cluster.metadata_records import PartitionState
from kafkacompat.cluster.replica_placement import NO_LEADER, elect_offline_leader

__all__ = [
    "UNCLEAN_ELECTION",
    "PartitionChange",
    "leadership_changes",
    "offline_election",
    "unclean_allowed",
]

#: Topic, partition index, its new state, and the partition version it replaces.
PartitionChange = tuple[str, int, PartitionState, int]

UNCLEAN_ELECTION = "unclean.leader.election.enable"


def unclean_allowed(topic: TopicImage, default: bool) -> bool:
    """Whether ``topic`` allows unclean leader election: its override, else ``default``."""
    value = topic.configs.get(UNCLEAN_ELECTION)
    return default if value is None else value.strip().lower() == "true"


def leadership_changes(
    image: MetadataImage, live: Set[int], controller_epoch: int, *, unclean: bool = False
) -> list[PartitionChange]:
    """The new states of the partitions whose leader or ISR must change, given the ``live``
    brokers (topics by name, partitions by index); ``unclean`` is the broker's default of
    ``unclean.leader.election.enable``."""
    changes: list[PartitionChange] = []
    for topic in image.list_topics():
        allowed = unclean_allowed(topic, unclean)
        for partition in topic.assignment:
            state = _next_state(partition, live, controller_epoch, allowed)
            if state is not None:
                changes.append((topic.name, partition.index, state, partition.version))
    return changes


def offline_election(
    partition: PartitionImage, live: Set[int], *, unclean: bool
) -> tuple[int, tuple[int, ...]]:
    """The leader and ISR of a partition whose leader is gone: the first live in-sync replica
    and the live ISR; or, with ``unclean`` and no live in-sync replica, the first live replica
    and an ISR of it alone; or no leader, keeping the last in-sync replica."""
    isr = tuple(b for b in partition.isr if b in live)
    leader = elect_offline_leader(partition.replicas, isr, live, unclean=unclean)
    if leader != NO_LEADER and leader not in isr:
        return leader, (leader,)
    if not isr:
        isr = partition.isr[-1:]  # the last in-sync replica stays, to lead again on return
    return leader, isr


def _next_state(
    partition: PartitionImage, live: Set[int], controller_epoch: int, unclean: bool
) -> PartitionState | None:
    if not partition.isr:
        return None  # no state yet: its first one is written with the topic's creation
    leader = partition.leader
    isr = tuple(b for b in partition.isr if b in live)
    if leader not in live or leader not in isr:
        leader, isr = offline_election(partition, live, unclean=unclean)
    if leader == partition.leader and isr == partition.isr:
        return None
    if leader == NO_LEADER and partition.leader == NO_LEADER and isr == partition.isr:
        return None
    return PartitionState(leader, partition.leader_epoch + 1, isr, controller_epoch)
