"""The write side of cluster metadata: every admin change goes through a `Controller`.

A single broker runs the `LocalController`: it applies a change to the partitions it hosts
(creating, growing, reconfiguring or deleting their logs) and publishes the next
`MetadataImage`. A cluster swaps in a controller that writes to the coordination store
instead; handlers do not change.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Protocol

import trio

from kafkacompat.cluster.leader_election import (
    ElectionResult,
    ElectionType,
    all_partitions,
    plan_elections,
)
from kafkacompat.cluster.metadata_image import (
    BrokerInfo,
    MetadataImage,
    MetadataView,
    PartitionImage,
    TopicImage,
)
from kafkacompat.cluster.reassignment import (
    OngoingReassignment,
    ReassignmentResult,
    RequestedReassignment,
    ongoing_reassignments,
    plan_reassignments,
)
from kafkacompat.errors import ErrorCode, KafkaError
from kafkacompat.partitions.manager import PartitionManager
from kafkacompat.storage.metadata_store import TopicMetadata
from kafkacompat.storage.topic_names import is_internal_topic, validate_topic_name

__all__ = ["Controller", "LocalController"]


class Controller(Protocol):
    """Changes to topics; each returns once the change is in the published image."""

    @property
    def node_id(self) -> int: ...

    async def create_topic(
        self,
        name: str,
        partitions: int,
        configs: Mapping[str, str | None] | None = None,
        *,
        validate_only: bool = False,
        replication_factor: int | None = None,
    ) -> TopicImage: ...

    async def create_partitions(
        self, name: str, new_total: int, *, validate_only: bool = False
    ) -> None: ...

    async def delete_topic(self, name: str) -> None: ...

    async def alter_topic_configs(self, name: str, configs: Mapping[str, str | None]) -> None: ...

    def live_brokers(self) -> list[int]: ...

    async def elect_leaders(
        self,
        election_type: ElectionType,
        partitions: Iterable[tuple[str, int]] | None,
        timeout: float,
    ) -> list[ElectionResult]:
        """Elect leaders of ``partitions`` (None: every partition); one result per partition,
        ELECTION_NOT_NEEDED ones included."""
        ...

    async def alter_partition_reassignments(
        self, requested: Iterable[RequestedReassignment], timeout: float
    ) -> list[ReassignmentResult]:
        """Start (or, for a None target, cancel) reassignments; one result per partition, each
        once the reassignment is started (the controller completes it later)."""
        ...

    async def list_partition_reassignments(
        self, partitions: Mapping[str, Sequence[int]] | None
    ) -> list[OngoingReassignment]:
        """The reassignments in progress among ``partitions`` (None: all)."""
        ...


class LocalController:
    """One broker that hosts and leads every partition: the controller is itself."""

    def __init__(
        self,
        partitions: PartitionManager,
        cluster_id: str,
        broker: BrokerInfo,
        *,
        max_partitions: int = 2**31 - 1,
    ) -> None:
        self._partitions = partitions
        self._broker = broker
        self._max_partitions = max_partitions
        #: Changes to the catalogue happen one at a time.
        self._writing = trio.Lock()
        #: Where readers find the current image.
        self.view = MetadataView(self._full_image(cluster_id, broker))

    @property
    def node_id(self) -> int:
        return self._broker.node_id

    @property
    def image(self) -> MetadataImage:
        return self.view.image

    def _full_image(self, cluster_id: str, broker: BrokerInfo) -> MetadataImage:
        topics = [self._topic_image(meta) for meta in self._partitions.topics()]
        # Its own controller for good: the first and only controller epoch.
        return MetadataImage.build(cluster_id, broker.node_id, [broker], topics, controller_epoch=1)

    def _topic_image(self, meta: TopicMetadata) -> TopicImage:
        node = self._broker.node_id
        assignment = []
        for index in range(meta.partitions):
            hosted = self._partitions.partition_or_none(meta.name, index)
            epoch = 0 if hosted is None else hosted.leader_epoch
            assignment.append(PartitionImage(index, node, epoch, (node,), (node,)))
        return TopicImage(
            meta.name,
            meta.topic_id,
            meta.partitions,
            tuple(assignment),
            MappingProxyType(dict(meta.configs)),
            internal=is_internal_topic(meta.name),
        )

    def _publish_topic(self, name: str) -> TopicImage:
        meta = self._partitions.topic(name)
        assert meta is not None
        topic = self._topic_image(meta)
        self.view.publish(self.view.image.with_topic(topic))
        return topic

    def set_endpoint(self, broker: BrokerInfo) -> None:
        """This broker's address as clients reach it (known once the listener is bound)."""
        self._broker = broker
        self.view.publish(self.view.image.with_brokers([broker]))

    def live_brokers(self) -> list[int]:
        return [b.node_id for b in self.view.image.brokers]

    def _check_capacity(self, adding: int) -> None:
        """Refuse what would take the broker past its partition cap (``max.broker.partitions``)."""
        hosted = sum(t.partitions for t in self.view.image.topics.values())
        if hosted + adding > self._max_partitions:
            raise KafkaError(
                ErrorCode.POLICY_VIOLATION,
                f"Adding {adding} partition(s) to the {hosted} this broker hosts would exceed "
                f"max.broker.partitions ({self._max_partitions}).",
            )

    async def create_topic(
        self,
        name: str,
        partitions: int,
        configs: Mapping[str, str | None] | None = None,
        *,
        validate_only: bool = False,
        replication_factor: int | None = None,
    ) -> TopicImage:
        """Create a topic here (one broker: ``replication_factor`` can only be 1, which the
        request handlers have checked)."""
        validate_topic_name(name)
        async with self._writing:
            if partitions > 0:
                self._check_capacity(partitions)
            meta = await self._partitions.create_topic(
                name, partitions, configs, validate_only=validate_only
            )
            if validate_only:
                return self._topic_image(meta)
            return self._publish_topic(name)

    async def create_partitions(
        self, name: str, new_total: int, *, validate_only: bool = False
    ) -> None:
        async with self._writing:
            existing = self.view.image.topic(name)
            if existing is not None and new_total > existing.partitions:
                self._check_capacity(new_total - existing.partitions)
            await self._partitions.add_partitions(name, new_total, validate_only=validate_only)
            if not validate_only:
                self._publish_topic(name)

    async def delete_topic(self, name: str) -> None:
        async with self._writing:
            await self._partitions.delete_topic(name)
            self.view.publish(self.view.image.without_topic(name))

    async def alter_topic_configs(self, name: str, configs: Mapping[str, str | None]) -> None:
        async with self._writing:
            self._partitions.set_topic_configs(name, configs)
            self._publish_topic(name)

    async def elect_leaders(
        self,
        election_type: ElectionType,
        partitions: Iterable[tuple[str, int]] | None,
        timeout: float,
    ) -> list[ElectionResult]:
        """This broker is every partition's only replica and leads it: no election is ever
        needed (unknown partitions are answered as such)."""
        image = self.view.image
        requested = all_partitions(image) if partitions is None else partitions
        outcomes = plan_elections(image, election_type, requested, {self.node_id})
        return [outcome.result for outcome in outcomes]

    async def alter_partition_reassignments(
        self, requested: Iterable[RequestedReassignment], timeout: float
    ) -> list[ReassignmentResult]:
        """The only replica a partition can have is this broker: reassigning to it changes
        nothing, any other target is invalid, and nothing is ever in progress to cancel."""
        results, changes = plan_reassignments(self.view.image, requested)
        assert not changes, "a single broker's partitions cannot move"
        return results

    async def list_partition_reassignments(
        self, partitions: Mapping[str, Sequence[int]] | None
    ) -> list[OngoingReassignment]:
        return ongoing_reassignments(self.view.image, partitions)
