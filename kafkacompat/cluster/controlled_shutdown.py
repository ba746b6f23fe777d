"""Controlled shutdown (``controlled.shutdown.enable``): before a broker stops on SIGTERM it
hands the leadership of its partitions to other in-sync replicas and leaves the ISRs it is in,
so its clients are redirected instead of failing and no leader waits for it.

As Kafka's ControlledShutdown: for each partition it leads, the next live ISR replica in
assignment order becomes leader at the next epoch, without this broker in the ISR; for each it
follows in sync, it leaves the ISR (same leader, next epoch). A partition with no other live
in-sync replica is left as it is (it goes offline when the broker stops, as in Kafka). The
states are written to etcd each guarded by the partition version they were computed from, so
a concurrent controller or leader change wins; the broker retries on a fresh image.
"""

from __future__ import annotations

import logging
from collections.abc import Set

import trio

from kafkacompat.cluster.etcd_store import Compare, EtcdStore, EtcdUnavailable, Put
from kafkacompat.cluster.metadata_follower import ImageUpdates
from kafkacompat.cluster.metadata_image import MetadataImage
from kafkacompat.cluster.metadata_records import PartitionState, partition_key

__all__ = ["move_leadership_away", "shutdown_changes"]

log = logging.getLogger(__name__)

#: Partition states written per etcd transaction (etcd allows 128 operations by default).
WRITES_PER_TRANSACTION = 50

#: Topic, partition, its new state, and the partition version it replaces.
ShutdownChange = tuple[str, int, PartitionState, int]


def shutdown_changes(image: MetadataImage, node_id: int, live: Set[int]) -> list[ShutdownChange]:
    """The partition states that take ``node_id`` out of leadership and ISRs."""
    changes: list[ShutdownChange] = []
    for topic in image.list_topics():
        for partition in topic.assignment:
            if node_id not in partition.isr:
                continue
            isr = tuple(r for r in partition.isr if r != node_id)
            if not any(r in live for r in isr):
                continue  # no one else to lead or hold it: it goes offline with this broker
            leader = partition.leader
            if leader == node_id:
                leader = next(r for r in partition.replicas if r in isr and r in live)
            state = PartitionState(leader, partition.leader_epoch + 1, isr, image.controller_epoch)
            changes.append((topic.name, partition.index, state, partition.version))
    return changes


def _done(image: MetadataImage, node_id: int) -> bool:
    live = {b.node_id for b in image.brokers} - {node_id}
    return not shutdown_changes(image, node_id, live)


async def move_leadership_away(
    store: EtcdStore, updates: ImageUpdates, node_id: int, *, retry_after: float = 0.2
) -> None:
    """Write the shutdown changes until the metadata shows none left (the caller bounds the
    time)."""
    while True:
        image = updates.view.image
        live = {b.node_id for b in image.brokers} - {node_id}
        changes = shutdown_changes(image, node_id, live)
        if not changes:
            return
        for first in range(0, len(changes), WRITES_PER_TRANSACTION):
            chunk = changes[first : first + WRITES_PER_TRANSACTION]
            keys = [partition_key(topic, index) for topic, index, _, _ in chunk]
            try:
                # A chunk whose guard fails (a partition changed meanwhile) is decided again.
                await store.transaction(
                    [Compare(k, "MOD", "EQUAL", c[3]) for k, c in zip(keys, chunk, strict=True)],
                    [Put(k, c[2].encode()) for k, c in zip(keys, chunk, strict=True)],
                )
            except EtcdUnavailable as exc:
                log.warning("controlled shutdown cannot reach etcd: %s", exc)
                break
        with trio.move_on_after(retry_after * 10):
            await updates.wait_for(lambda i: _done(i, node_id))
        if _done(updates.view.image, node_id):
            log.info("controlled shutdown: leadership of broker %d moved", node_id)
            return
        await trio.sleep(retry_after)
