"""Partition reassignments (KIP-455): pure decisions over an image, as Kafka's controller makes
them.

Reassigning a partition from its replicas R to a target T makes its replicas T followed by the
replicas of R not in T, with ``adding`` = T - R and ``removing`` = R - T kept in the topic's
record, so every broker hosts (and the new ones catch up on) the partition meanwhile. Once every
replica of T is in the ISR the controller completes it: the replicas become T, the ISR its
members in T, and a leader outside T gives way to the first live in-sync replica of T. A
cancellation (a null target) goes back to R: the added replicas leave the replicas and the ISR,
and a leader among them gives way to one of R. Dropping a replica bumps the leader epoch, so the
dropped replica's requests are fenced (KIP-320). Should no replica kept be in sync, the first
live one leads alone, as an unclean election would have it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence, Set
from dataclasses import dataclass

from kafkacompat.cluster.etcd_store import Compare, Put
from kafkacompat.cluster.metadata_image import MetadataImage, PartitionImage, TopicImage
from kafkacompat.cluster.metadata_records import (
    PartitionState,
    TopicRecord,
    partition_key,
    topic_key,
)
from kafkacompat.cluster.replica_placement import NO_LEADER
from kafkacompat.errors import ErrorCode

__all__ = [
    "OngoingReassignment",
    "PartitionAssignment",
    "ReassignmentResult",
    "RequestedReassignment",
    "TopicReassignment",
    "completed_reassignments",
    "invalid_target",
    "is_reassigning",
    "ongoing_reassignments",
    "original_replicas",
    "plan_reassignments",
    "reassignment_writes",
    "shows_reassignment",
    "target_replicas",
]

#: A partition by topic name and index, and the replicas asked for (None: cancel).
RequestedReassignment = tuple[str, int, Sequence[int] | None]


@dataclass(frozen=True, slots=True)
class ReassignmentResult:
    """One partition's answer to AlterPartitionReassignments."""

    topic: str
    partition: int
    error: ErrorCode = ErrorCode.NONE
    message: str | None = None


@dataclass(frozen=True, slots=True)
class OngoingReassignment:
    """A partition being reassigned, as ListPartitionReassignments shows it."""

    topic: str
    partition: int
    replicas: tuple[int, ...]
    adding: tuple[int, ...]
    removing: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class PartitionAssignment:
    """A partition's new replicas (and those still coming and going), and its new state when
    that changes too; ``version`` is the partition version it was decided from."""

    index: int
    replicas: tuple[int, ...]
    version: int
    adding: tuple[int, ...] = ()
    removing: tuple[int, ...] = ()
    state: PartitionState | None = None


@dataclass(frozen=True, slots=True)
class TopicReassignment:
    """New assignments of some partitions of ``topic`` (the image's, whose version guards it)."""

    topic: TopicImage
    partitions: tuple[PartitionAssignment, ...]

    def record(self) -> TopicRecord:
        """The topic's record with these assignments."""
        replicas = {p.index: p.replicas for p in self.partitions}
        adding = {p.index: p.adding_replicas for p in self.topic.assignment if p.adding_replicas}
        removing = {
            p.index: p.removing_replicas for p in self.topic.assignment if p.removing_replicas
        }
        for change in self.partitions:
            adding.pop(change.index, None)
            removing.pop(change.index, None)
            if change.adding:
                adding[change.index] = change.adding
            if change.removing:
                removing[change.index] = change.removing
        topic = self.topic
        return TopicRecord(
            topic.topic_id,
            tuple(replicas.get(p.index, p.replicas) for p in topic.assignment),
            dict(topic.configs),
            topic.internal,
            adding,
            removing,
        )


def original_replicas(partition: PartitionImage) -> tuple[int, ...]:
    """The replicas a reassignment started from (all of them when none is ongoing)."""
    return tuple(b for b in partition.replicas if b not in partition.adding_replicas)


def target_replicas(partition: PartitionImage) -> tuple[int, ...]:
    """The replicas a reassignment goes to (all of them when none is ongoing)."""
    return tuple(b for b in partition.replicas if b not in partition.removing_replicas)


def is_reassigning(partition: PartitionImage) -> bool:
    return bool(partition.adding_replicas or partition.removing_replicas)


def ongoing_reassignments(
    image: MetadataImage, partitions: Mapping[str, Sequence[int]] | None
) -> list[OngoingReassignment]:
    """The reassignments in progress among ``partitions`` (None: every partition); unknown
    partitions are left out."""
    found: list[OngoingReassignment] = []
    for topic in image.list_topics():
        if partitions is not None and topic.name not in partitions:
            continue
        wanted = None if partitions is None else set(partitions[topic.name])
        for p in topic.assignment:
            if is_reassigning(p) and (wanted is None or p.index in wanted):
                found.append(
                    OngoingReassignment(
                        topic.name, p.index, p.replicas, p.adding_replicas, p.removing_replicas
                    )
                )
    return found


_UNKNOWN = "This server does not host this topic-partition."
_NOT_IN_PROGRESS = "No partition reassignment is in progress for the relevant partition."


def plan_reassignments(
    image: MetadataImage, requested: Iterable[RequestedReassignment]
) -> tuple[list[ReassignmentResult], list[TopicReassignment]]:
    """Each requested partition's answer (a partition asked for twice: the last), and the
    assignments to write for those accepted."""
    live = {b.node_id for b in image.brokers}  # a registered broker is a live one
    results: list[ReassignmentResult] = []
    changes: dict[str, list[PartitionAssignment]] = {}
    asked = {(name, index): target for name, index, target in requested}
    for (name, index), target in asked.items():
        topic = image.topic(name)
        partition = None if topic is None else topic.partition(index)
        if partition is None:
            error = ReassignmentResult(name, index, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, _UNKNOWN)
            results.append(error)
            continue
        if target is None:
            if not is_reassigning(partition):
                results.append(
                    ReassignmentResult(
                        name, index, ErrorCode.NO_REASSIGNMENT_IN_PROGRESS, _NOT_IN_PROGRESS
                    )
                )
                continue
            change = _reassigned(image, partition, original_replicas(partition), live)
        else:
            invalid = invalid_target(target, live)
            if invalid is not None:
                results.append(
                    ReassignmentResult(name, index, ErrorCode.INVALID_REPLICA_ASSIGNMENT, invalid)
                )
                continue
            change = _reassigned(image, partition, tuple(target), live)
        results.append(ReassignmentResult(name, index))
        if change is not None:
            changes.setdefault(name, []).append(change)
    planned = [
        TopicReassignment(topic, tuple(parts))
        for name, parts in changes.items()
        if (topic := image.topic(name)) is not None
    ]
    return results, planned


def invalid_target(target: Sequence[int], registered: Set[int]) -> str | None:
    """Why ``target`` cannot be a partition's replicas (as Kafka words it), or None."""
    if not target:
        return "Empty replica list specified in partition reassignment."
    if len(set(target)) != len(target):
        return f"Duplicate replica ids in partition reassignment replica list: {list(target)}"
    if any(b < 0 for b in target):
        return f"Invalid broker id in replica list: {list(target)}"
    if not set(target) <= registered:
        return (
            f"Replica assignment has brokers that are not alive. Replica list: {list(target)}, "
            f"live broker list: {sorted(registered)}"
        )
    return None


def _reassigned(
    image: MetadataImage, partition: PartitionImage, target: tuple[int, ...], live: Set[int]
) -> PartitionAssignment | None:
    """``partition`` reassigned from its original replicas to ``target`` (None: nothing to do)."""
    if target == partition.replicas and not is_reassigning(partition):
        return None
    original = original_replicas(partition)
    adding = tuple(b for b in target if b not in original)
    removing = tuple(b for b in original if b not in target)
    replicas = target + removing
    if not adding and not removing:
        replicas = target
    state = _shrunk(partition, replicas, live, image.controller_epoch)
    return PartitionAssignment(
        partition.index, replicas, partition.version, adding, removing, state
    )


def _shrunk(
    partition: PartitionImage, kept: tuple[int, ...], live: Set[int], controller_epoch: int
) -> PartitionState | None:
    """The partition's state once its replicas are ``kept`` (None: unchanged)."""
    if not partition.isr or set(partition.replicas) <= set(kept):
        return None
    isr = tuple(b for b in kept if b in partition.isr)
    leader = partition.leader
    if leader not in isr or leader not in live:
        eligible = [b for b in isr if b in live]
        leader = eligible[0] if eligible else NO_LEADER
    if not isr:
        alive = [b for b in kept if b in live]
        leader = alive[0] if alive else NO_LEADER
        isr = (leader,) if alive else kept[:1]
    return PartitionState(leader, partition.leader_epoch + 1, isr, controller_epoch)


def completed_reassignments(
    image: MetadataImage, live: Set[int], controller_epoch: int
) -> list[TopicReassignment]:
    """The reassignments the controller completes on ``image``: those whose target replicas are
    all in the ISR, with a live in-sync leader among them."""
    completed: list[TopicReassignment] = []
    for topic in image.list_topics():
        done = tuple(
            change
            for partition in topic.assignment
            if (change := _completion(partition, live, controller_epoch)) is not None
        )
        if done:
            completed.append(TopicReassignment(topic, done))
    return completed


def _completion(
    partition: PartitionImage, live: Set[int], controller_epoch: int
) -> PartitionAssignment | None:
    if not is_reassigning(partition) or not partition.isr:
        return None
    target = target_replicas(partition)
    if not set(target) <= set(partition.isr):
        return None
    if not any(b in live for b in target):
        return None
    state = _shrunk(partition, target, live, controller_epoch)
    if state is not None and state.leader == NO_LEADER:
        return None
    return PartitionAssignment(partition.index, target, partition.version, state=state)


def reassignment_writes(
    changes: Iterable[TopicReassignment], skip: Set[str] = frozenset()
) -> tuple[list[Put], list[Compare]]:
    """The writes of ``changes``, each guarded by the topic and partition versions it was
    decided from; partitions whose key is in ``skip`` (written otherwise) are left for later."""
    writes: list[Put] = []
    guards: list[Compare] = []
    for change in changes:
        name = change.topic.name
        kept = tuple(p for p in change.partitions if partition_key(name, p.index) not in skip)
        if not kept:
            continue
        change = TopicReassignment(change.topic, kept)
        key = topic_key(name)
        writes.append(Put(key, change.record().encode()))
        guards.append(Compare(key, "MOD", "EQUAL", change.topic.version))
        for partition in kept:
            key = partition_key(name, partition.index)
            guards.append(Compare(key, "MOD", "EQUAL", partition.version))
            if partition.state is not None:
                writes.append(Put(key, partition.state.encode()))
    return writes, guards


def shows_reassignment(image: MetadataImage, change: TopicReassignment) -> bool:
    """Whether ``image`` shows the topic, or one of the partitions of ``change``, written since
    ``change`` was decided (or the topic gone)."""
    topic = image.topic(change.topic.name)
    if topic is None or topic.topic_id != change.topic.topic_id:
        return True
    if topic.version != change.topic.version:
        return True
    return any(
        (now := topic.partition(p.index)) is None or now.version != p.version
        for p in change.partitions
    )
