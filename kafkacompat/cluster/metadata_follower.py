"""Every broker's copy of the cluster metadata: read from etcd, kept current by a watch, and
published as immutable `MetadataImage`s (the ZooKeeper era's UpdateMetadata, pulled instead of
pushed).

`MetadataKeys` holds the keys as last seen and builds an image from them; `follow_metadata`
reads the cluster's prefix, publishes, then applies each watched change from the next revision
on; when etcd has compacted the history the watch needed, it reads everything again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from contextlib import aclosing

import trio

from kafkacompat.cluster.controller_election import (
    CONTROLLER,
    CONTROLLER_EPOCH,
    decode_controller,
)
from kafkacompat.cluster.etcd_store import Change, Entry, EtcdStore, EtcdUnavailable, WatchLost
from kafkacompat.cluster.metadata_image import (
    MetadataImage,
    MetadataView,
    PartitionImage,
    TopicImage,
)
from kafkacompat.cluster.metadata_records import PARTITIONS, TOPICS, PartitionState, TopicRecord
from kafkacompat.cluster.registration import BROKERS, decode_broker

__all__ = ["ImageUpdates", "MetadataKeys", "follow_metadata"]

log = logging.getLogger(__name__)

_NO_CONTROLLER = -1


class MetadataKeys:
    """The cluster's keys (relative to its prefix) and the revision they are current to."""

    def __init__(self, cluster_id: str) -> None:
        self.cluster_id = cluster_id
        self.values: dict[str, bytes] = {}
        #: The etcd revision each key was last written at.
        self.versions: dict[str, int] = {}
        self.revision = 0

    def load(self, revision: int, entries: Iterable[Entry]) -> None:
        entries = list(entries)
        self.values = {e.key: e.value for e in entries}
        self.versions = {e.key: e.mod_revision for e in entries}
        self.revision = revision

    def apply(self, change: Change) -> None:
        if change.value is None:
            self.values.pop(change.key, None)
            self.versions.pop(change.key, None)
        else:
            self.values[change.key] = change.value
            self.versions[change.key] = change.revision
        self.revision = max(self.revision, change.revision)

    def image(self) -> MetadataImage:
        """The metadata these keys describe."""
        brokers = [decode_broker(v) for k, v in self.values.items() if k.startswith(BROKERS)]
        controller = self.values.get(CONTROLLER)
        controller_id = decode_controller(controller).node_id if controller else _NO_CONTROLLER
        # Written with the controller key in one transaction, and kept when that key goes.
        controller_epoch = int(self.values.get(CONTROLLER_EPOCH, b"0"))
        states: dict[tuple[str, int], tuple[PartitionState, int]] = {}
        for key, value in self.values.items():
            if key.startswith(PARTITIONS):
                topic, _, index = key[len(PARTITIONS) :].rpartition("/")
                states[(topic, int(index))] = (PartitionState.decode(value), self.versions[key])
        topics = [
            self._topic(key[len(TOPICS) :], TopicRecord.decode(value), states, self.versions[key])
            for key, value in self.values.items()
            if key.startswith(TOPICS)
        ]
        return MetadataImage.build(
            self.cluster_id,
            controller_id,
            brokers,
            topics,
            controller_epoch=controller_epoch,
            metadata_revision=self.revision,
        )

    @staticmethod
    def _topic(
        name: str,
        record: TopicRecord,
        states: dict[tuple[str, int], tuple[PartitionState, int]],
        version: int,
    ) -> TopicImage:
        partitions = []
        for index, replicas in enumerate(record.replicas):
            found = states.get((name, index))
            adding = record.adding.get(index, ())
            removing = record.removing.get(index, ())
            if found is None:  # created, its state not written yet: no leader
                partitions.append(
                    PartitionImage(
                        index,
                        -1,
                        0,
                        replicas,
                        (),
                        adding_replicas=adding,
                        removing_replicas=removing,
                    )
                )
            else:
                state, state_version = found
                partitions.append(
                    PartitionImage(
                        index,
                        state.leader,
                        state.leader_epoch,
                        replicas,
                        state.isr,
                        version=state_version,
                        adding_replicas=adding,
                        removing_replicas=removing,
                    )
                )
        return TopicImage(
            name,
            record.topic_id,
            len(record.replicas),
            tuple(partitions),
            record.configs,
            record.internal,
            version,
        )


async def follow_metadata(
    store: EtcdStore,
    keys: MetadataKeys,
    publish: Callable[[MetadataImage], None],
    *,
    retry_after: float = 0.5,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Keep ``keys`` current and ``publish`` an image after every change, until cancelled;
    reports started after the first full read."""
    started = False
    while True:
        try:
            revision, entries = await store.read_prefix()
            keys.load(revision, entries)
            publish(keys.image())
            if not started:
                task_status.started()
                started = True
            async with aclosing(store.watch("", revision + 1)) as changes:
                async for batch in changes:
                    for change in batch:
                        keys.apply(change)
                    publish(keys.image())
        except WatchLost as lost:
            log.info("metadata watch lost (%s); reading the cluster metadata again", lost)
        except EtcdUnavailable as exc:
            log.warning("cannot read the cluster metadata: %s", exc)
            await trio.sleep(retry_after)


class ImageUpdates:
    """Publishes each new image to the view and wakes whoever waits for a change."""

    def __init__(self, view: MetadataView) -> None:
        self.view = view
        self._changed = trio.Event()

    def publish(self, image: MetadataImage) -> None:
        self.view.publish(image)
        self._changed.set()
        self._changed = trio.Event()

    async def next_change(self) -> MetadataImage:
        """Wait for the next published image."""
        await self._changed.wait()
        return self.view.image

    async def wait_for(self, check: Callable[[MetadataImage], bool]) -> MetadataImage:
        """Wait until the current image passes ``check`` (the caller bounds the wait)."""
        image = self.view.image
        while not check(image):
            image = await self.next_change()
        return image
