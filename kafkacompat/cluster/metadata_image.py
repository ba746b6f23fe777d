"""The cluster as every read of it sees it: an immutable image, swapped whole when it changes.

Metadata, DescribeCluster, DescribeTopicPartitions, FindCoordinator and admin answers read the
image; only the `Controller` builds new ones. A handler that reads it twice in one request
should keep the first image it took, so its answer is consistent.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

__all__ = [
    "BrokerEndpoint",
    "BrokerInfo",
    "MetadataImage",
    "MetadataView",
    "PartitionImage",
    "TopicImage",
]


@dataclass(frozen=True, slots=True)
class BrokerEndpoint:
    """Where clients of one listener reach a broker."""

    listener: str
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class BrokerInfo:
    """A broker as clients reach it: ``host``/``port`` of its first listener, and the endpoint of
    every listener (a client is told the endpoints of the listener it came in on)."""

    node_id: int
    host: str
    port: int
    rack: str | None = None
    endpoints: tuple[BrokerEndpoint, ...] = ()

    def endpoint(self, listener: str) -> BrokerEndpoint | None:
        """This broker's endpoint on ``listener``; None when it has no such listener."""
        for endpoint in self.endpoints:
            if endpoint.listener == listener:
                return endpoint
        if not self.endpoints:
            return BrokerEndpoint(listener, self.host, self.port)
        return None


@dataclass(frozen=True, slots=True)
class PartitionImage:
    """Who leads a partition, since which epoch, and who holds and keeps up with it."""

    index: int
    leader: int
    leader_epoch: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]
    offline_replicas: tuple[int, ...] = ()
    #: The partition version: the etcd revision its state was last written at (0: not yet).
    #: A change of leader or ISR is written only if it is still this (Kafka's partition epoch).
    version: int = 0
    #: While the partition is reassigned (KIP-455): the replicas it gains and loses when the
    #: reassignment completes (``replicas`` holds both the target and the original replicas).
    adding_replicas: tuple[int, ...] = ()
    removing_replicas: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class TopicImage:
    """A topic: its id, partition count, each partition's leadership and its config overrides."""

    name: str
    topic_id: uuid.UUID
    partitions: int
    assignment: tuple[PartitionImage, ...]
    #: The topic's own config overrides (its effective configs add the broker's defaults).
    configs: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    internal: bool = False
    #: The etcd revision the topic's record was last written at (0: none, a single broker).
    version: int = 0

    def partition(self, index: int) -> PartitionImage | None:
        return self.assignment[index] if 0 <= index < self.partitions else None


def _frozen(items: Mapping[str, TopicImage]) -> Mapping[str, TopicImage]:
    return MappingProxyType(dict(items))


@dataclass(frozen=True, slots=True)
class MetadataImage:
    """Brokers, the controller and every topic, as of one moment."""

    cluster_id: str
    controller_id: int
    brokers: tuple[BrokerInfo, ...]
    topics: Mapping[str, TopicImage] = field(default_factory=lambda: MappingProxyType({}))
    _by_id: Mapping[uuid.UUID, TopicImage] = field(
        default_factory=lambda: MappingProxyType({}), repr=False
    )
    #: How many controllers the cluster has had, as of this image (the epoch of the current
    #: one; of the last one while there is none): 1 on a single broker, its own controller for
    #: good; 0 before any was elected.
    controller_epoch: int = 0
    #: How far the metadata behind this image goes: in a cluster, the etcd revision its keys are
    #: current to (it only grows); 0 on a single broker, which keeps no metadata log.
    metadata_revision: int = 0

    @classmethod
    def build(
        cls,
        cluster_id: str,
        controller_id: int,
        brokers: Iterable[BrokerInfo],
        topics: Iterable[TopicImage],
        *,
        controller_epoch: int = 0,
        metadata_revision: int = 0,
    ) -> MetadataImage:
        by_name = {t.name: t for t in topics}
        return cls(
            cluster_id,
            controller_id,
            tuple(sorted(brokers, key=lambda b: b.node_id)),
            _frozen(by_name),
            MappingProxyType({t.topic_id: t for t in by_name.values()}),
            controller_epoch,
            metadata_revision,
        )

    def topic(self, name: str) -> TopicImage | None:
        return self.topics.get(name)

    def topic_by_id(self, topic_id: uuid.UUID) -> TopicImage | None:
        return self._by_id.get(topic_id)

    def list_topics(self) -> list[TopicImage]:
        """Every topic, by name."""
        return sorted(self.topics.values(), key=lambda t: t.name)

    def led_elsewhere(self, topic: str, index: int, node_id: int) -> bool:
        """Whether the cluster knows ``topic``-``index`` and ``node_id`` does not lead it (then
        the answer is NOT_LEADER_OR_FOLLOWER, and the client refreshes its metadata)."""
        found = self.topics.get(topic)
        if found is None:
            return False
        partition = found.partition(index)
        return partition is not None and partition.leader != node_id

    def broker(self, node_id: int) -> BrokerInfo | None:
        for broker in self.brokers:
            if broker.node_id == node_id:
                return broker
        return None

    def with_topic(self, topic: TopicImage) -> MetadataImage:
        """This image with ``topic`` added or replaced."""
        by_name = dict(self.topics)
        old = by_name.get(topic.name)
        by_name[topic.name] = topic
        by_id = dict(self._by_id)
        if old is not None:
            by_id.pop(old.topic_id, None)
        by_id[topic.topic_id] = topic
        return replace(self, topics=MappingProxyType(by_name), _by_id=MappingProxyType(by_id))

    def without_topic(self, name: str) -> MetadataImage:
        by_name = dict(self.topics)
        old = by_name.pop(name, None)
        if old is None:
            return self
        by_id = dict(self._by_id)
        by_id.pop(old.topic_id, None)
        return replace(self, topics=MappingProxyType(by_name), _by_id=MappingProxyType(by_id))

    def with_brokers(self, brokers: Iterable[BrokerInfo]) -> MetadataImage:
        return replace(self, brokers=tuple(sorted(brokers, key=lambda b: b.node_id)))


class MetadataView:
    """Where readers find the current image; the controller publishes each new one here."""

    __slots__ = ("image",)

    def __init__(self, image: MetadataImage) -> None:
        self.image = image

    def publish(self, image: MetadataImage) -> None:
        self.image = image
