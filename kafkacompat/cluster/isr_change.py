"""A partition leader's change of its ISR (Kafka's AlterPartition), written to the cluster
metadata in etcd.

The write is fenced like Kafka's: it names the leader epoch and the partition version the
leader knows, and etcd applies it only if the partition's state was not written since (by the
controller electing another leader, or by another ISR change). Every broker sees the result
through its metadata watch, the leader included; until then the leader keeps using the old ISR.
"""

from __future__ import annotations

from collections.abc import Iterable

from kafkacompat.cluster.etcd_store import Compare, EtcdStore, Put
from kafkacompat.cluster.metadata_image import MetadataImage
from kafkacompat.cluster.metadata_records import PartitionState, partition_key

__all__ = ["alter_isr"]


async def alter_isr(
    store: EtcdStore,
    image: MetadataImage,
    topic: str,
    index: int,
    leader: int,
    leader_epoch: int,
    isr: Iterable[int],
) -> bool:
    """Write ``isr`` for the partition led by ``leader`` at ``leader_epoch``; False (nothing
    written) when ``image`` shows another leader or epoch, or the partition changed since
    ``image`` (FENCED_LEADER_EPOCH / INVALID_UPDATE_VERSION in Kafka's terms)."""
    found = image.topic(topic)
    partition = None if found is None else found.partition(index)
    if partition is None or (partition.leader, partition.leader_epoch) != (leader, leader_epoch):
        return False
    new_isr = tuple(r for r in partition.replicas if r in set(isr))
    if not new_isr or leader not in new_isr or new_isr == partition.isr:
        return False
    key = partition_key(topic, index)
    state = PartitionState(leader, leader_epoch, new_isr, image.controller_epoch)
    won, _ = await store.transaction(
        [Compare(key, "MOD", "EQUAL", partition.version)], [Put(key, state.encode())]
    )
    return won
