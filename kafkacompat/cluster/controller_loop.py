"""The controller's work: campaign while there is no controller, and while this broker is the
controller, bring partition states in line with the brokers that are alive.

One task per broker. It waits on metadata changes (the follower publishes them): when etcd names
no controller it campaigns under the broker's lease; when this broker is the controller it writes,
fenced by its epoch, the first leadership of new partitions, the removal of departed brokers
from ISRs with new leaders where needed (unclean ones where a topic allows them), and the return
of leaders for leaderless partitions, and the completion of partition reassignments whose
target replicas are all in sync (reassignment.py); with ``auto.leader.rebalance.enable`` it also checks the
leadership balance every ``leader.imbalance.check.interval.seconds`` (leader_election.py). A
write refused because this broker was deposed makes it a follower again.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import replace

import trio

from kafkacompat.cluster.controller_election import ControllerElection, NotController
from kafkacompat.cluster.etcd_store import Compare, EtcdUnavailable, Put
from kafkacompat.cluster.leader_election import ElectionSettings, rebalance_changes
from kafkacompat.cluster.leadership import PartitionChange, leadership_changes
from kafkacompat.cluster.metadata_follower import ImageUpdates
from kafkacompat.cluster.metadata_image import MetadataImage
from kafkacompat.cluster.metadata_records import PartitionState, partition_key
from kafkacompat.cluster.reassignment import completed_reassignments, reassignment_writes
from kafkacompat.cluster.replica_placement import elect_leader

__all__ = ["controller_writes", "rebalance_writes", "run_controller"]

log = logging.getLogger(__name__)


def controller_writes(
    image: MetadataImage, controller_epoch: int, *, unclean: bool = False
) -> tuple[list[Put], list[Compare]]:
    """What the controller must write for ``image``: first states of new partitions (a
    partition without an ISR has never had a state), leadership changes and completed
    reassignments, each guarded by the partition version it was decided from (a leader may
    have changed its ISR meanwhile; a reassignment also by the topic's version); ``unclean``
    is the broker's default of ``unclean.leader.election.enable``. A partition with another
    change completes its reassignment on a later image."""
    live = {b.node_id for b in image.brokers}
    writes: list[Put] = []
    guards: list[Compare] = []
    for topic in image.list_topics():
        for partition in topic.assignment:
            if partition.isr:
                continue
            key = partition_key(topic.name, partition.index)
            leader = elect_leader(partition.replicas, partition.replicas, live)
            state = PartitionState.first(partition.replicas, leader, controller_epoch)
            writes.append(Put(key, state.encode()))
            guards.append(Compare(key, "MOD", "EQUAL", partition.version))
    changes = leadership_changes(image, live, controller_epoch, unclean=unclean)
    _add_changes(changes, writes, guards)
    completed = completed_reassignments(image, live, controller_epoch)
    more, more_guards = reassignment_writes(completed, skip={w.key for w in writes})
    return writes + more, guards + more_guards


def rebalance_writes(
    image: MetadataImage, controller_epoch: int, percentage: int
) -> tuple[list[Put], list[Compare]]:
    """The preferred elections of an imbalance check, guarded as `controller_writes`."""
    live = {b.node_id for b in image.brokers}
    writes: list[Put] = []
    guards: list[Compare] = []
    changes = [
        (name, index, replace(state, controller_epoch=controller_epoch), version)
        for name, index, state, version in rebalance_changes(image, live, percentage)
    ]
    _add_changes(changes, writes, guards)
    return writes, guards


def _add_changes(changes: list[PartitionChange], writes: list[Put], guards: list[Compare]) -> None:
    for name, index, state, version in changes:
        key = partition_key(name, index)
        writes.append(Put(key, state.encode()))
        guards.append(Compare(key, "MOD", "EQUAL", version))


async def run_controller(
    election: ControllerElection,
    updates: ImageUpdates,
    lease: Callable[[], int],
    *,
    settings: ElectionSettings | None = None,
    retry_after: float = 0.5,
) -> None:
    """Campaign and control until cancelled; ``lease`` gives the broker's current lease."""
    settings = settings or ElectionSettings()
    next_check = math.inf  # the next imbalance check, while this broker is the controller
    while True:
        image = updates.view.image
        try:
            if not election.is_controller:
                next_check = math.inf
                if image.controller_id < 0 and lease():
                    await election.campaign(lease())
                if not election.is_controller:
                    await updates.next_change()
                continue
            if image.controller_id not in (-1, election.node_id):
                election.resign_locally()
                continue
            if settings.auto_rebalance and next_check == math.inf:
                next_check = trio.current_time() + settings.check_interval
            writes, guards = controller_writes(image, election.epoch, unclean=settings.unclean)
            if not writes and trio.current_time() >= next_check:
                next_check = trio.current_time() + settings.check_interval
                writes, guards = rebalance_writes(
                    image, election.epoch, settings.imbalance_percentage
                )
            if writes:
                await election.write(writes, guards)
            with trio.move_on_at(next_check):
                await updates.next_change()
        except NotController as exc:
            log.info("%s", exc)
            if election.is_controller:  # a partition changed meanwhile: decide again on it
                with trio.move_on_after(retry_after):
                    await updates.next_change()
        except EtcdUnavailable as exc:
            log.warning("controller cannot reach etcd: %s", exc)
            await trio.sleep(retry_after)
