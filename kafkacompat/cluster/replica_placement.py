"""Where a new topic's replicas go, and who leads a partition: the controller's two decisions.

Placement follows Kafka's ZooKeeper-era assignment: partitions' first replicas go round-robin over
the brokers from a start index, the other replicas follow at a shift that grows once per round,
so leaders and followers both spread evenly. When every broker has a rack, brokers are first
ordered to alternate racks, and each partition's replicas take distinct racks while any rack has
none yet. Leader election takes the first replica, in assignment order, that is alive and in
the ISR; none such means no leader (-1), unless unclean election is allowed: then the first live
replica leads, in sync or not. The preferred leader is the first replica of the assignment.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence

from kafkacompat.errors import ErrorCode, KafkaError

__all__ = [
    "NO_LEADER",
    "assign_replicas",
    "elect_leader",
    "elect_offline_leader",
    "placement_order",
    "preferred_leader",
    "rack_alternated",
]

NO_LEADER = -1


def _next_replica(first: int, shift: int, replica: int, brokers: int) -> int:
    step = 1 + (shift + replica) % (brokers - 1)
    return (first + step) % brokers


def rack_alternated(racks: Mapping[int, str]) -> list[int]:
    """Brokers ordered so consecutive ones sit in different racks: the first broker of each rack
    (racks and brokers sorted), then the second of each, and so on."""
    by_rack: dict[str, list[int]] = {}
    for broker in sorted(racks):
        by_rack.setdefault(racks[broker], []).append(broker)
    queues = [by_rack[rack] for rack in sorted(by_rack)]
    ordered: list[int] = []
    depth = 0
    while len(ordered) < len(racks):
        ordered.extend(queue[depth] for queue in queues if depth < len(queue))
        depth += 1
    return ordered


def placement_order(brokers: Mapping[int, str | None]) -> list[int]:
    """The order placement walks the brokers in: rack-alternated when every broker has a
    rack, by node id when none has; refused when only some have."""
    racks = {b: r for b, r in brokers.items() if r is not None}
    if racks and len(racks) != len(brokers):
        raise KafkaError(
            ErrorCode.INVALID_REPLICATION_FACTOR,
            "Not all brokers have rack information for replica rack aware assignment.",
        )
    return rack_alternated(racks) if racks else sorted(brokers)


def assign_replicas(
    brokers: Mapping[int, str | None],
    partitions: int,
    replication_factor: int,
    *,
    start_index: int | None = None,
    replica_shift: int | None = None,
    first_partition: int = 0,
) -> list[list[int]]:
    """Replica lists for partitions ``first_partition`` .. ``first_partition + partitions - 1``
    over ``brokers`` (node id -> rack or None). Start index and shift are random unless given."""
    if partitions <= 0:
        raise KafkaError(
            ErrorCode.INVALID_PARTITIONS, "Number of partitions must be larger than 0."
        )
    if replication_factor <= 0:
        raise KafkaError(
            ErrorCode.INVALID_REPLICATION_FACTOR, "Replication factor must be larger than 0."
        )
    if replication_factor > len(brokers):
        raise KafkaError(
            ErrorCode.INVALID_REPLICATION_FACTOR,
            f"Replication factor: {replication_factor} larger than available brokers: "
            f"{len(brokers)}.",
        )
    racks = {b: r for b, r in brokers.items() if r is not None}
    ordered = placement_order(brokers)
    count = len(ordered)
    start = random.randrange(count) if start_index is None else start_index
    shift = random.randrange(count) if replica_shift is None else replica_shift
    rack_count = len(set(racks.values())) if racks else 0
    assignment: list[list[int]] = []
    for partition in range(first_partition, first_partition + partitions):
        if partition > 0 and partition % count == 0:
            shift += 1
        first = (partition + start) % count
        if racks:
            assignment.append(
                _rack_aware_replicas(ordered, racks, rack_count, first, shift, replication_factor)
            )
        else:
            assignment.append(
                [ordered[first]]
                + [
                    ordered[_next_replica(first, shift, j, count)]
                    for j in range(replication_factor - 1)
                ]
            )
    return assignment


def _rack_aware_replicas(
    ordered: Sequence[int],
    racks: Mapping[int, str],
    rack_count: int,
    first: int,
    shift: int,
    replication_factor: int,
) -> list[int]:
    count = len(ordered)
    leader = ordered[first]
    replicas = [leader]
    used_racks = {racks[leader]}
    used_brokers = {leader}
    step = 0
    while len(replicas) < replication_factor:
        broker = ordered[_next_replica(first, shift * rack_count, step, count)]
        step += 1
        rack = racks[broker]
        rack_free = rack not in used_racks or len(used_racks) == rack_count
        broker_free = broker not in used_brokers or len(used_brokers) == count
        if rack_free and broker_free:
            replicas.append(broker)
            used_racks.add(rack)
            used_brokers.add(broker)
    return replicas


def elect_leader(replicas: Sequence[int], isr: Iterable[int], live: Iterable[int]) -> int:
    """The first replica that is alive and in sync, in assignment order; NO_LEADER if none."""
    in_sync = set(isr)
    alive = set(live)
    for replica in replicas:
        if replica in in_sync and replica in alive:
            return replica
    return NO_LEADER


def elect_offline_leader(
    replicas: Sequence[int], isr: Iterable[int], live: Iterable[int], *, unclean: bool
) -> int:
    """`elect_leader`; failing that, with ``unclean``, the first live replica in assignment
    order, out of sync as it is (Kafka's unclean leader election)."""
    alive = set(live)
    leader = elect_leader(replicas, isr, alive)
    if leader == NO_LEADER and unclean:
        return next((r for r in replicas if r in alive), NO_LEADER)
    return leader


def preferred_leader(replicas: Sequence[int], isr: Iterable[int], live: Iterable[int]) -> int:
    """The first replica of the assignment if it is alive and in sync; NO_LEADER otherwise."""
    if replicas and replicas[0] in set(isr) and replicas[0] in set(live):
        return replicas[0]
    return NO_LEADER
