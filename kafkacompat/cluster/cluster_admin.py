"""Topic changes in a cluster, accepted by any broker: written to etcd, carried out by the
controller, answered once the metadata shows them.

As Kafka's ZooKeeper-era admin path: the broker that receives CreateTopics places the replicas
over the live brokers and writes the topic's assignment (a compare-and-set, so two creations of
one name cannot both win); the controller notices it through its watch and elects the
partitions' first leaders; the request is answered when every partition has a leader (or with
REQUEST_TIMED_OUT). Deletions and config changes are single transactions every broker then sees.
Leader elections asked for (ElectLeaders) are decided on this broker's image and written as the
partitions' new states, each guarded by the partition version it was decided from (decided again
on a newer image when that changed), and answered once the image shows them. Partition
reassignments (AlterPartitionReassignments) are started or cancelled the same way, the topic's
record guarded by its version as well (cluster/reassignment.py); the controller completes them.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from functools import partial

import trio

from kafkacompat.cluster.etcd_store import Compare, EtcdStore, Put
from kafkacompat.cluster.leader_election import (
    ElectionResult,
    ElectionType,
    all_partitions,
    plan_elections,
    shows_election,
)
from kafkacompat.cluster.leadership import PartitionChange
from kafkacompat.cluster.metadata_follower import ImageUpdates
from kafkacompat.cluster.metadata_image import MetadataImage, PartitionImage, TopicImage
from kafkacompat.cluster.metadata_records import TopicRecord, partition_key, topic_key
from kafkacompat.cluster.reassignment import (
    OngoingReassignment,
    ReassignmentResult,
    RequestedReassignment,
    TopicReassignment,
    ongoing_reassignments,
    plan_reassignments,
    reassignment_writes,
    shows_reassignment,
)
from kafkacompat.cluster.replica_placement import assign_replicas, placement_order
from kafkacompat.errors import ErrorCode, KafkaError
from kafkacompat.storage.topic_names import is_internal_topic, validate_topic_name

__all__ = ["ClusterAdmin", "ConfigValidator"]

#: Checks a topic's config overrides (by Kafka's names) and returns them as stored.
ConfigValidator = Callable[[str, Mapping[str, str | None]], dict[str, str]]


class ClusterAdmin:
    """The `Controller` (cluster/controller.py) of a broker in a cluster."""

    def __init__(
        self,
        store: EtcdStore,
        updates: ImageUpdates,
        node_id: int,
        validate_configs: ConfigValidator,
        *,
        default_replication_factor: int = 1,
        timeout: float = 30.0,
    ) -> None:
        self._store = store
        self._updates = updates
        self._node_id = node_id
        self._validate_configs = validate_configs
        self.default_replication_factor = default_replication_factor
        self.timeout = timeout

    @property
    def node_id(self) -> int:
        return self._node_id

    @property
    def image(self) -> MetadataImage:
        return self._updates.view.image

    def live_brokers(self) -> list[int]:
        return [b.node_id for b in self.image.brokers]

    async def create_topic(
        self,
        name: str,
        partitions: int,
        configs: Mapping[str, str | None] | None = None,
        *,
        validate_only: bool = False,
        replication_factor: int | None = None,
    ) -> TopicImage:
        validate_topic_name(name)
        if self.image.topic(name) is not None:
            raise KafkaError(ErrorCode.TOPIC_ALREADY_EXISTS, f"Topic '{name}' already exists.")
        factor = replication_factor or self.default_replication_factor
        brokers = {b.node_id: b.rack for b in self.image.brokers}
        replicas = assign_replicas(brokers, partitions, factor)
        record = TopicRecord(
            uuid.uuid4(),
            tuple(tuple(r) for r in replicas),
            self._validate_configs(name, configs or {}),
            is_internal_topic(name),
        )
        if validate_only:
            return _unled_topic(name, record)
        key = topic_key(name)
        won, _ = await self._store.transaction(
            [Compare(key, "CREATE", "EQUAL", 0)], [Put(key, record.encode())]
        )
        if not won:
            raise KafkaError(ErrorCode.TOPIC_ALREADY_EXISTS, f"Topic '{name}' already exists.")
        image = await self._until(lambda image: _all_led(image.topic(name), record.topic_id))
        topic = image.topic(name)
        assert topic is not None
        return topic

    async def create_partitions(
        self, name: str, new_total: int, *, validate_only: bool = False
    ) -> None:
        record, _ = await self._read_topic(name)
        self._added_replicas(record, new_total)  # refusals before anything is written
        if validate_only:
            return

        def grown(record: TopicRecord) -> TopicRecord:
            added = self._added_replicas(record, new_total)
            return replace(record, replicas=record.replicas + added)

        await self._update_topic(name, grown)
        await self._until(lambda image: _all_led(image.topic(name), record.topic_id, new_total))

    def _added_replicas(self, record: TopicRecord, new_total: int) -> tuple[tuple[int, ...], ...]:
        """Replicas of the partitions that take the topic to ``new_total``, placed as Kafka
        places them (leaders continue the round-robin from partition 0's leader)."""
        current = len(record.replicas)
        if new_total <= current:
            raise KafkaError(
                ErrorCode.INVALID_PARTITIONS,
                f"Topic currently has {current} partitions, {new_total} is not greater than "
                f"{current}.",
            )
        brokers = {b.node_id: b.rack for b in self.image.brokers}
        ordered = placement_order(brokers)
        first_leader = record.replicas[0][0]
        added = assign_replicas(
            brokers,
            new_total - current,
            len(record.replicas[0]),
            start_index=ordered.index(first_leader) if first_leader in ordered else None,
            first_partition=current,
        )
        return tuple(tuple(r) for r in added)

    async def delete_topic(self, name: str) -> None:
        record, revision = await self._read_topic(name)
        deletes = [Put(topic_key(name), None)] + [
            Put(partition_key(name, index), None) for index in range(len(record.replicas))
        ]
        await self._store.transaction([Compare(topic_key(name), "MOD", "EQUAL", revision)], deletes)
        await self._until(lambda image: image.topic(name) is None)

    async def alter_topic_configs(self, name: str, configs: Mapping[str, str | None]) -> None:
        stored = self._validate_configs(name, configs)

        def reconfigured(record: TopicRecord) -> TopicRecord:
            return replace(record, configs=stored)

        await self._update_topic(name, reconfigured)
        await self._until(lambda image: _configs_are(image.topic(name), stored))

    async def elect_leaders(
        self,
        election_type: ElectionType,
        partitions: Iterable[tuple[str, int]] | None,
        timeout: float,
    ) -> list[ElectionResult]:
        requested = all_partitions(self.image) if partitions is None else list(partitions)
        results: dict[tuple[str, int], ElectionResult] = {}
        pending = list(dict.fromkeys(requested))
        with trio.move_on_after(timeout):
            while pending:
                image = self.image
                live = {b.node_id for b in image.brokers}
                decided: dict[tuple[str, int], ElectionResult] = {}
                written: list[PartitionChange] = []
                stale: list[PartitionChange] = []  # changed meanwhile: decided again
                for outcome in plan_elections(image, election_type, pending, live):
                    result, change = outcome.result, outcome.change
                    if change is None:
                        results[(result.topic, result.partition)] = result
                    elif await self._write_partition(change):
                        decided[(result.topic, result.partition)] = result
                        written.append(change)
                    else:
                        stale.append(change)
                await self._updates.wait_for(partial(_settled, written=written, stale=stale))
                results.update(decided)
                pending = [tp for tp in pending if tp not in results]
        timed_out = f"The election was not carried out within {timeout:g} s."
        return [
            results.get(tp) or ElectionResult(*tp, ErrorCode.REQUEST_TIMED_OUT, timed_out)
            for tp in dict.fromkeys(requested)
        ]

    async def alter_partition_reassignments(
        self, requested: Iterable[RequestedReassignment], timeout: float
    ) -> list[ReassignmentResult]:
        asked = {(name, index): target for name, index, target in requested}
        results: dict[tuple[str, int], ReassignmentResult] = {}
        pending = [(name, index, target) for (name, index), target in asked.items()]
        with trio.move_on_after(timeout):
            while pending:
                answers, changes = plan_reassignments(self.image, pending)
                stale: set[tuple[str, int]] = set()
                for change in changes:
                    writes, guards = reassignment_writes([change])
                    won, _ = await self._store.transaction(guards, writes)
                    if not won:  # changed meanwhile: decided again on a newer image
                        stale.update((change.topic.name, p.index) for p in change.partitions)
                await self._updates.wait_for(partial(_shown, changes=changes))
                results.update(
                    ((a.topic, a.partition), a)
                    for a in answers
                    if (a.topic, a.partition) not in stale
                )
                pending = [r for r in pending if (r[0], r[1]) not in results]
        timed_out = f"The reassignment was not started within {timeout:g} s."
        return [
            results.get(tp) or ReassignmentResult(*tp, ErrorCode.REQUEST_TIMED_OUT, timed_out)
            for tp in asked
        ]

    async def list_partition_reassignments(
        self, partitions: Mapping[str, Sequence[int]] | None
    ) -> list[OngoingReassignment]:
        return ongoing_reassignments(self.image, partitions)

    async def _write_partition(self, change: PartitionChange) -> bool:
        """Write a partition's new state if its version is still the one it was decided from."""
        name, index, state, version = change
        key = partition_key(name, index)
        won, _ = await self._store.transaction(
            [Compare(key, "MOD", "EQUAL", version)], [Put(key, state.encode())]
        )
        return won

    async def _read_topic(self, name: str) -> tuple[TopicRecord, int]:
        entry = await self._store.read(topic_key(name))
        if entry is None:
            raise KafkaError(
                ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"Topic '{name}' does not exist."
            )
        return TopicRecord.decode(entry.value), entry.mod_revision

    async def _update_topic(self, name: str, change: Callable[[TopicRecord], TopicRecord]) -> None:
        """Apply ``change`` to the topic's record by compare-and-set, again on a race."""
        while True:
            record, revision = await self._read_topic(name)
            key = topic_key(name)
            won, _ = await self._store.transaction(
                [Compare(key, "MOD", "EQUAL", revision)], [Put(key, change(record).encode())]
            )
            if won:
                return

    async def _until(self, check: Callable[[MetadataImage], bool]) -> MetadataImage:
        with trio.move_on_after(self.timeout):
            return await self._updates.wait_for(check)
        raise KafkaError(
            ErrorCode.REQUEST_TIMED_OUT,
            f"The change was written but not carried out within {self.timeout:g} s "
            "(is a controller running?).",
        )


def _all_led(topic: TopicImage | None, topic_id: uuid.UUID, partitions: int = 0) -> bool:
    if topic is None or topic.topic_id != topic_id:
        return False
    if partitions and topic.partitions < partitions:
        return False
    return all(p.leader >= 0 for p in topic.assignment)


def _settled(
    image: MetadataImage, *, written: list[PartitionChange], stale: list[PartitionChange]
) -> bool:
    """Whether ``image`` shows the ``written`` elections and has moved past the ``stale`` ones."""
    return all(shows_election(image, c) for c in written) and all(
        _moved_on(image, c) for c in stale
    )


def _shown(image: MetadataImage, *, changes: list[TopicReassignment]) -> bool:
    return all(shows_reassignment(image, c) for c in changes)


def _moved_on(image: MetadataImage, change: PartitionChange) -> bool:
    """Whether ``image`` shows the partition past the version ``change`` was decided from."""
    name, index, _state, version = change
    topic = image.topic(name)
    partition = None if topic is None else topic.partition(index)
    return partition is None or partition.version != version


def _configs_are(topic: TopicImage | None, configs: Mapping[str, str]) -> bool:
    return topic is not None and dict(topic.configs) == dict(configs)


def _unled_topic(name: str, record: TopicRecord) -> TopicImage:
    partitions = tuple(
        PartitionImage(index, replicas[0], 0, replicas, replicas)
        for index, replicas in enumerate(record.replicas)
    )
    return TopicImage(name, record.topic_id, len(partitions), partitions, record.configs)
