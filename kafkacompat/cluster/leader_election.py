"""Leader elections asked for (ElectLeaders) or due to imbalance: pure decisions over an image,
as Kafka's controller makes them.

- PREFERRED moves leadership back to the partition's preferred replica (the first of its
  assignment) when that replica is alive and in the ISR; the ISR stays as it is.
- UNCLEAN elects a leader for a partition that has none alive: the first live in-sync replica,
  else the first live replica out of sync (the ISR becomes that replica alone). Asked for by an
  administrator it is allowed whatever ``unclean.leader.election.enable`` says, as in Kafka.
- Automatic rebalance (``auto.leader.rebalance.enable``): every
  ``leader.imbalance.check.interval.seconds`` the controller groups partitions by preferred
  replica; for a broker whose share of partitions led by another exceeds
  ``leader.imbalance.per.broker.percentage``, each such partition whose preferred replica can
  lead gets a preferred election.

Every election bumps the leader epoch and is written guarded by the partition version it was
decided from.
"""

from __future__ import annotations

from collections.abc import Iterable, Set
from dataclasses import dataclass
from enum import IntEnum

from kafkacompat.cluster.leadership import PartitionChange, offline_election
from kafkacompat.cluster.metadata_image import MetadataImage, PartitionImage
from kafkacompat.cluster.metadata_records import PartitionState
from kafkacompat.cluster.replica_placement import NO_LEADER, preferred_leader
from kafkacompat.config import Config
from kafkacompat.errors import ErrorCode

__all__ = [
    "ElectionOutcome",
    "ElectionResult",
    "ElectionSettings",
    "ElectionType",
    "all_partitions",
    "election_settings",
    "plan_elections",
    "rebalance_changes",
    "shows_election",
]

#: A partition by topic name and index.
TopicPartition = tuple[str, int]


class ElectionType(IntEnum):
    """ElectLeaders' election types."""

    PREFERRED = 0
    UNCLEAN = 1


@dataclass(frozen=True, slots=True)
class ElectionSettings:
    """The controller's election settings (Kafka's names, the interval in seconds)."""

    #: ``unclean.leader.election.enable``: the default of topics without an override.
    unclean: bool = False
    #: ``auto.leader.rebalance.enable``
    auto_rebalance: bool = True
    #: ``leader.imbalance.check.interval.seconds``
    check_interval: float = 300.0
    #: ``leader.imbalance.per.broker.percentage``
    imbalance_percentage: int = 10


def election_settings(config: Config) -> ElectionSettings:
    return ElectionSettings(
        unclean=config.get_bool("unclean.leader.election.enable"),
        auto_rebalance=config.get_bool("auto.leader.rebalance.enable"),
        check_interval=float(config.get_int("leader.imbalance.check.interval.seconds")),
        imbalance_percentage=config.get_int("leader.imbalance.per.broker.percentage"),
    )


@dataclass(frozen=True, slots=True)
class ElectionResult:
    """One partition's answer to ElectLeaders."""

    topic: str
    partition: int
    error: ErrorCode
    message: str | None = None


@dataclass(frozen=True, slots=True)
class ElectionOutcome:
    """A partition's answer, or the state to write first (``change``) when it needs electing."""

    result: ElectionResult
    change: PartitionChange | None = None


def all_partitions(image: MetadataImage) -> list[TopicPartition]:
    """Every partition of the cluster (an election asked for without a list covers them all)."""
    return [(t.name, p.index) for t in image.list_topics() for p in t.assignment]


def plan_elections(
    image: MetadataImage,
    election_type: ElectionType,
    partitions: Iterable[TopicPartition],
    live: Set[int],
) -> list[ElectionOutcome]:
    """What an ElectLeaders of ``election_type`` does to each of ``partitions`` (each once)."""
    outcomes: list[ElectionOutcome] = []
    for name, index in dict.fromkeys(partitions):
        topic = image.topic(name)
        partition = None if topic is None else topic.partition(index)
        if partition is None:
            outcomes.append(_answer(name, index, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION))
            continue
        if not partition.isr:  # its first state is not written yet: nothing to elect from
            outcomes.append(_answer(name, index, _NOT_AVAILABLE[election_type]))
        elif election_type == ElectionType.PREFERRED:
            outcomes.append(_preferred(image, name, partition, live))
        else:
            outcomes.append(_unclean(image, name, partition, live))
    return outcomes


_MESSAGES = {
    ErrorCode.UNKNOWN_TOPIC_OR_PARTITION: "The partition does not exist.",
    ErrorCode.ELECTION_NOT_NEEDED: "Leader election not needed for topic partition.",
    ErrorCode.PREFERRED_LEADER_NOT_AVAILABLE: (
        "The preferred leader is not alive or not in the ISR."
    ),
    ErrorCode.ELIGIBLE_LEADERS_NOT_AVAILABLE: "No replica of the partition can lead.",
}


_NOT_AVAILABLE = {
    ElectionType.PREFERRED: ErrorCode.PREFERRED_LEADER_NOT_AVAILABLE,
    ElectionType.UNCLEAN: ErrorCode.ELIGIBLE_LEADERS_NOT_AVAILABLE,
}


def _answer(name: str, index: int, error: ErrorCode) -> ElectionOutcome:
    return ElectionOutcome(ElectionResult(name, index, error, _MESSAGES[error]))


def _elected(
    image: MetadataImage, name: str, partition: PartitionImage, leader: int, isr: tuple[int, ...]
) -> ElectionOutcome:
    state = PartitionState(leader, partition.leader_epoch + 1, isr, image.controller_epoch)
    return ElectionOutcome(
        ElectionResult(name, partition.index, ErrorCode.NONE),
        (name, partition.index, state, partition.version),
    )


def _preferred(
    image: MetadataImage, name: str, partition: PartitionImage, live: Set[int]
) -> ElectionOutcome:
    if partition.replicas and partition.leader == partition.replicas[0]:
        return _answer(name, partition.index, ErrorCode.ELECTION_NOT_NEEDED)
    leader = preferred_leader(partition.replicas, partition.isr, live)
    if leader == NO_LEADER:
        return _answer(name, partition.index, ErrorCode.PREFERRED_LEADER_NOT_AVAILABLE)
    return _elected(image, name, partition, leader, partition.isr)


def _unclean(
    image: MetadataImage, name: str, partition: PartitionImage, live: Set[int]
) -> ElectionOutcome:
    if partition.leader != NO_LEADER and partition.leader in live:
        return _answer(name, partition.index, ErrorCode.ELECTION_NOT_NEEDED)
    leader, isr = offline_election(partition, live, unclean=True)
    if leader == NO_LEADER:
        return _answer(name, partition.index, ErrorCode.ELIGIBLE_LEADERS_NOT_AVAILABLE)
    return _elected(image, name, partition, leader, isr)


def shows_election(image: MetadataImage, change: PartitionChange) -> bool:
    """Whether ``image`` shows the election ``change`` (or a later change of the partition)."""
    name, index, state, _version = change
    topic = image.topic(name)
    partition = None if topic is None else topic.partition(index)
    if partition is None:
        return True  # deleted meanwhile: nothing left to wait for
    if partition.leader_epoch > state.leader_epoch:
        return True
    return partition.leader_epoch == state.leader_epoch and partition.leader == state.leader


def rebalance_changes(
    image: MetadataImage, live: Set[int], percentage: int
) -> list[PartitionChange]:
    """Preferred elections for the brokers whose leadership is out of balance (Kafka's rule:
    the share of a broker's preferred partitions led by another exceeds ``percentage``)."""
    by_preferred: dict[int, list[tuple[str, PartitionImage]]] = {}
    for topic in image.list_topics():
        for partition in topic.assignment:
            if partition.replicas:
                by_preferred.setdefault(partition.replicas[0], []).append((topic.name, partition))
    changes: list[PartitionChange] = []
    for broker, partitions in sorted(by_preferred.items()):
        elsewhere = [(n, p) for n, p in partitions if p.isr and p.leader != broker]
        if len(elsewhere) * 100 <= percentage * len(partitions):
            continue
        for name, partition in elsewhere:
            outcome = _preferred(image, name, partition, live)
            if outcome.change is not None:
                changes.append(outcome.change)
    return changes
