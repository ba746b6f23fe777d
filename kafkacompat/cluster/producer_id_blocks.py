"""Blocks of producer ids reserved in the cluster's metadata store, so that no two brokers hand
out the same id (Kafka's controller does this with AllocateProducerIds)."""

from __future__ import annotations

from kafkacompat.cluster.etcd_store import Compare, EtcdStore, EtcdUnavailable, Put
from kafkacompat.errors import ErrorCode, KafkaError

__all__ = ["NEXT_PRODUCER_ID", "reserve_producer_ids"]

#: The key holding the first producer id not yet reserved by any broker.
NEXT_PRODUCER_ID = "producer_ids/next"
_ATTEMPTS = 20


async def reserve_producer_ids(store: EtcdStore, count: int) -> int:
    """Reserve ``count`` ids for this broker; returns the first. COORDINATOR_NOT_AVAILABLE
    when the store cannot be reached (clients retry)."""
    try:
        for _ in range(_ATTEMPTS):
            entry = await store.read(NEXT_PRODUCER_ID)
            if entry is None:
                start = 0
                guard = Compare(NEXT_PRODUCER_ID, "CREATE", "EQUAL", 0)
            else:
                start = int(entry.value)
                guard = Compare(NEXT_PRODUCER_ID, "MOD", "EQUAL", entry.mod_revision)
            won, _ = await store.transaction(
                [guard], [Put(NEXT_PRODUCER_ID, str(start + count).encode())]
            )
            if won:
                return start
    except EtcdUnavailable as exc:
        raise KafkaError(ErrorCode.COORDINATOR_NOT_AVAILABLE, str(exc)) from None
    raise KafkaError(ErrorCode.COORDINATOR_NOT_AVAILABLE, "producer id block contended")
