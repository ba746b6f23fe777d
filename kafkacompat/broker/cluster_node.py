"""This broker as a member of a cluster on etcd (``metadata.store.url``): it joins, keeps the
partitions the cluster metadata gives it, and hands its handlers the cluster's view.

On start it settles the cluster id with the metadata store (a new data directory takes the
cluster's; a directory of another cluster is refused, as Kafka's INCONSISTENT_CLUSTER_ID), then
runs its `ClusterMember` (registration, metadata follower, controller campaign). After every
metadata change it brings local storage in line: of the topics it holds a replica of, exactly its
replicas are kept (created with the cluster's topic id, grown, reconfigured; replicas moved away
deleted); topics gone from the cluster are deleted; and a partition it leads starts its new
leader epoch at the log end.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Protocol

import trio

from kafkacompat.broker.replication import Replication
from kafkacompat.cluster.cluster_member import ClusterMember, MemberSettings
from kafkacompat.cluster.controlled_shutdown import move_leadership_away
from kafkacompat.cluster.etcd_store import Compare, EtcdStore, Put, parse_store_url
from kafkacompat.cluster.metadata_image import BrokerInfo, MetadataImage, TopicImage
from kafkacompat.config import Config, ConfigError
from kafkacompat.coordinators.internal_topic import InternalTopic
from kafkacompat.errors import KafkaError
from kafkacompat.partitions.manager import PartitionManager
from kafkacompat.storage.log_config import validate_topic_configs

__all__ = ["ClusterNode", "InternalStateService", "cluster_settings"]

log = logging.getLogger(__name__)

CLUSTER_ID = "cluster_id"


class InternalStateService(Protocol):
    """A coordinator whose state lives in an internal topic (groups, transactions)."""

    @property
    def topic(self) -> InternalTopic: ...

    async def lead(self, partitions: Iterable[int]) -> None: ...


def cluster_settings(config: Config) -> MemberSettings:
    """The member's settings by Kafka's names."""
    return MemberSettings(
        session_timeout=config.get_int("broker.session.timeout.ms") / 1000,
        heartbeat_interval=config.get_int("broker.heartbeat.interval.ms") / 1000,
        default_replication_factor=config.get_int("default.replication.factor"),
    )


def _validate_configs(_name: str, configs: Mapping[str, str | None]) -> dict[str, str]:
    return dict(validate_topic_configs(configs))


class ClusterNode:
    """One broker's membership and local hosting."""

    def __init__(
        self,
        config: Config,
        partitions: PartitionManager,
        cluster_id: str,
        info: BrokerInfo,
        *,
        fresh_data_dir: bool,
        adopt_cluster_id: Callable[[str], None],
    ) -> None:
        try:
            endpoints, prefix = parse_store_url(config.get_str("metadata.store.url"))
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        self.store = EtcdStore(endpoints, prefix)
        self.partitions = partitions
        self.fresh_data_dir = fresh_data_dir
        self._adopt = adopt_cluster_id
        self.node_id = info.node_id
        self.member = ClusterMember(
            self.store, cluster_id, info, _validate_configs, cluster_settings(config)
        )
        #: The group and transaction coordinators (set by the broker): each coordinates the
        #: groups or transactional ids of the internal-topic partitions this broker leads.
        self.coordinators: tuple[InternalStateService, ...] = ()
        #: Leading and following the hosted partitions (set by the broker).
        self.replication: Replication | None = None

    def set_endpoint(self, info: BrokerInfo) -> None:
        """This broker's endpoints once its listeners are bound (before `run`)."""
        self.member.info = info
        self.member.registration.info = info

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Join and stay in the cluster until cancelled; started once the metadata is read and
        local storage follows it."""
        await self._settle_cluster_id()
        async with trio.open_nursery() as nursery:
            await nursery.start(self.member.run)
            if self.replication is not None:
                await nursery.start(self.replication.run)
            view = self.member.updates.view
            hosted = view.image
            await self._host(hosted)
            task_status.started()
            while True:
                # Images published while the last one was being hosted are not waited for.
                if view.image is hosted:
                    await self.member.updates.next_change()
                hosted = view.image
                await self._host(hosted)

    async def controlled_shutdown(self) -> None:
        """Hand leadership away and leave the ISRs before stopping (the caller bounds it)."""
        if self.replication is not None:
            self.replication.stop_following()
        await move_leadership_away(self.store, self.member.updates, self.node_id)

    async def _settle_cluster_id(self) -> None:
        ours = self.member.keys.cluster_id
        won, _ = await self.store.transaction(
            [Compare(CLUSTER_ID, "CREATE", "EQUAL", 0)], [Put(CLUSTER_ID, ours.encode())]
        )
        if won:
            log.info("cluster %s created in the metadata store", ours)
            return
        entry = await self.store.read(CLUSTER_ID)
        theirs = entry.value.decode() if entry else ours
        if theirs == ours:
            return
        if not self.fresh_data_dir:
            raise ConfigError(
                f"INCONSISTENT_CLUSTER_ID: this data directory belongs to cluster {ours}, the "
                f"metadata store to cluster {theirs}"
            )
        log.info("joining cluster %s", theirs)
        self._adopt(theirs)
        self.member.keys.cluster_id = theirs

    async def _host(self, image: MetadataImage) -> None:
        """Bring local storage in line with ``image``."""
        wanted = {
            t.name: t
            for t in image.list_topics()
            if any(self.node_id in p.replicas for p in t.assignment)
        }
        for meta in list(self.partitions.topics()):
            topic = wanted.get(meta.name)
            if topic is None or topic.topic_id != meta.topic_id:
                await self._quietly(self.partitions.delete_topic(meta.name), meta.name)
        for topic in wanted.values():
            await self._quietly(self._hold(topic), topic.name)
        if self.replication is not None:
            self.replication.assign_roles(image)
        for service in self.coordinators:
            await service.lead(self._led(image, service.topic))

    def _led(self, image: MetadataImage, internal: InternalTopic) -> set[int]:
        """The partitions of an internal topic this broker leads (and hosts) in ``image``."""
        topic = image.topic(internal.name)
        if topic is None:
            return set()
        internal.num_partitions = topic.partitions
        return {
            p.index
            for p in topic.assignment
            if p.leader == self.node_id
            and self.partitions.partition_or_none(topic.name, p.index) is not None
        }

    async def _hold(self, topic: TopicImage) -> None:
        meta = self.partitions.topic(topic.name)
        mine = frozenset(p.index for p in topic.assignment if self.node_id in p.replicas)
        if meta is None:
            await self.partitions.create_topic(
                topic.name,
                topic.partitions,
                dict(topic.configs),
                topic_id=topic.topic_id,
                hosted=mine,
            )
        else:
            if meta.partitions < topic.partitions:
                await self.partitions.add_partitions(topic.name, topic.partitions, hosted=mine)
            await self.partitions.host_only(topic.name, mine)
            if dict(meta.configs) != dict(topic.configs):
                self.partitions.set_topic_configs(topic.name, dict(topic.configs))
        for partition in topic.assignment:
            if partition.leader != self.node_id:
                continue
            hosted = self.partitions.partition(topic.name, partition.index)
            if partition.leader_epoch > hosted.leader_epoch or hosted.following:
                await hosted.begin_leader_epoch(partition.leader_epoch)

    @staticmethod
    async def _quietly(change: Awaitable[None], name: str) -> None:
        """Apply a local change; a failure is logged and retried at the next metadata change."""
        try:
            await change
        except (KafkaError, OSError) as exc:
            log.warning("cannot bring topic %s in line with the cluster metadata: %s", name, exc)
