"""This broker's part in replication: it leads some partitions and follows others, as the
cluster metadata says, and keeps the ISR of those it leads true.

After every metadata change (`assign_roles`) each hosted partition becomes a leader (tracking
its followers, `Partition.lead`) or a follower (fetched by `ReplicaFetchers` from its leader).
A leader proposes ISR changes itself (`alter_isr`, fenced by its leader epoch and the partition
version): a follower that caught up joins as soon as a fetch shows it
(``Fetch`` reports it here), one that has not caught up for ``replica.lag.time.max.ms`` leaves,
checked every half of that time as Kafka does.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import trio

from kafkacompat.clock import now_ms
from kafkacompat.cluster.etcd_store import EtcdStore, EtcdUnavailable
from kafkacompat.cluster.isr_change import alter_isr
from kafkacompat.cluster.metadata_image import MetadataImage, MetadataView
from kafkacompat.cluster.replica_fetcher import FollowedPartition, ReplicaFetchers
from kafkacompat.partitions.high_watermarks import (
    read_high_watermarks,
    restore,
    write_high_watermarks,
)
from kafkacompat.partitions.manager import PartitionManager
from kafkacompat.partitions.partition import Partition

__all__ = ["Replication"]

log = logging.getLogger(__name__)


class Replication:
    """Leader and follower roles of the hosted partitions, and the ISRs of those led here."""

    def __init__(
        self,
        node_id: int,
        partitions: PartitionManager,
        store: EtcdStore,
        view: MetadataView,
        fetchers: ReplicaFetchers,
        *,
        max_lag_ms: int,
        checkpoint_interval_ms: int = 5000,
    ) -> None:
        self.node_id = node_id
        self.partitions = partitions
        self.store = store
        self.view = view
        self.fetchers = fetchers
        self.max_lag_ms = max_lag_ms
        self.checkpoint_interval_ms = checkpoint_interval_ms
        self._joining: set[tuple[Partition, int]] = set()
        self._wake = trio.Event()
        #: Stopping (controlled shutdown): fetch no more, so no leader adds this broker to an
        #: ISR it is leaving.
        self._stopping = False

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Fetch for the followed partitions, keep the ISRs and checkpoint the high watermarks,
        until cancelled; the hosted partitions start at their checkpointed high watermarks."""
        directory = self.partitions.data_dir
        saved = await trio.to_thread.run_sync(read_high_watermarks, directory)
        restore(self.partitions.partitions(), saved)
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(self.fetchers.run)
                nursery.start_soon(self._checkpoint_high_watermarks)
                task_status.started()
                await self._keep_isrs()
        finally:
            with trio.CancelScope(shield=True):
                await self._write_checkpoint()

    async def _checkpoint_high_watermarks(self) -> None:
        while True:
            await trio.sleep(self.checkpoint_interval_ms / 1000)
            await self._write_checkpoint()

    async def _write_checkpoint(self) -> None:
        try:
            await trio.to_thread.run_sync(
                write_high_watermarks, self.partitions.data_dir, self.partitions.partitions()
            )
        except OSError as exc:
            log.warning("cannot checkpoint high watermarks: %s", exc)

    async def _keep_isrs(self) -> None:
        while True:
            with trio.move_on_after(self.max_lag_ms / 2000):
                await self._wake.wait()
            self._wake = trio.Event()
            try:
                await self._update_isrs(self.view.image)
            except EtcdUnavailable as exc:
                log.warning("cannot change ISRs: %s", exc)

    def assign_roles(self, image: MetadataImage) -> None:
        """Lead or follow each hosted partition as ``image`` says."""
        now = now_ms()
        followed: dict[tuple[str, int], FollowedPartition] = {}
        for topic in image.list_topics():
            for state in topic.assignment:
                hosted = self.partitions.partition_or_none(topic.name, state.index)
                if hosted is None:
                    continue
                if state.leader == self.node_id:
                    hosted.lead(self.node_id, state.replicas, state.isr, now)
                    continue
                hosted.follow(state.leader_epoch)
                if state.leader >= 0:
                    followed[(topic.name, state.index)] = FollowedPartition(
                        hosted, topic.topic_id, state.leader, state.leader_epoch
                    )
        self.fetchers.follow({} if self._stopping else followed)

    def stop_following(self) -> None:
        """Fetch no more (a controlled shutdown)."""
        self._stopping = True
        self.fetchers.follow({})

    def caught_up(self, joining: Iterable[tuple[Partition, int]]) -> None:
        """Followers a fetch showed ready to join the ISR of a partition led here."""
        self._joining.update(joining)
        self._wake.set()

    async def _update_isrs(self, image: MetadataImage) -> None:
        joining, self._joining = self._joining, set()
        now = now_ms()
        for topic in image.list_topics():
            for state in topic.assignment:
                if state.leader != self.node_id or len(state.replicas) < 2:
                    continue
                hosted = self.partitions.partition_or_none(topic.name, state.index)
                if hosted is None or hosted.replicas is None:
                    continue
                replicas = hosted.replicas
                isr = set(state.isr)
                lagging = replicas.lagging(now, self.max_lag_ms)
                adding = {
                    replica
                    for partition, replica in joining
                    if partition is hosted and replicas.can_join(replica, hosted.high_watermark)
                }
                new_isr = (isr - lagging) | adding
                if new_isr == isr:
                    continue
                replicas.pending_additions |= adding
                written = await alter_isr(
                    self.store,
                    image,
                    topic.name,
                    state.index,
                    self.node_id,
                    state.leader_epoch,
                    new_isr,
                )
                if written:
                    log.info(
                        "ISR of %s-%d: %s -> %s",
                        topic.name,
                        state.index,
                        sorted(isr),
                        sorted(new_isr),
                    )
                else:
                    replicas.pending_additions -= adding
