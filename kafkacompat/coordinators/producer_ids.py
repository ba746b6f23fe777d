"""Producer ids: unique across restarts, handed out from durably reserved blocks.

The state store namespace ``producer_ids`` holds the end of the last reserved block; a restart
continues after it, so an id is never handed out twice even after a crash (ids of a block
reserved but not used are skipped, as in Kafka). In a cluster the blocks come from the cluster
(``reserve_block``, Kafka's AllocateProducerIds): callers `await ready()` before `allocate`.
"""

from __future__ import annotations

import struct
import weakref
from collections.abc import Awaitable, Callable
from typing import NamedTuple

import trio

from kafkacompat.errors import ErrorCode, KafkaError
from kafkacompat.storage.state_store import Namespace, StateStore

__all__ = ["ProducerIdAndEpoch", "ProducerIdManager", "producer_id_manager"]

NAMESPACE = "producer_ids"
BLOCK_SIZE = 1000
_NEXT_BLOCK_KEY = b"next_block"
_I64 = struct.Struct(">q")


class ProducerIdAndEpoch(NamedTuple):
    producer_id: int
    epoch: int


class ProducerIdManager:
    def __init__(self, namespace: Namespace) -> None:
        self._ns = namespace
        raw = namespace.get(_NEXT_BLOCK_KEY)
        self._next = self._limit = 0 if raw is None else _I64.unpack(raw)[0]
        #: In a cluster: reserves a block of ``BLOCK_SIZE`` ids, returning its first id.
        self.reserve_block: Callable[[int], Awaitable[int]] | None = None
        self._reserving = trio.Lock()

    async def ready(self, needed: int = 2) -> None:
        """Have at least ``needed`` ids at hand (in a cluster, reserving the next block)."""
        reserve = self.reserve_block
        if reserve is None or self._limit - self._next >= needed:
            return
        async with self._reserving:
            if self._limit - self._next < needed:
                start = await reserve(BLOCK_SIZE)
                self._next, self._limit = start, start + BLOCK_SIZE

    def allocate(self) -> ProducerIdAndEpoch:
        """A producer id never handed out before, at epoch 0 (COORDINATOR_LOAD_IN_PROGRESS
        when a cluster's block has run out and `ready` was not awaited)."""
        if self._next >= self._limit and self.reserve_block is not None:
            raise KafkaError(
                ErrorCode.COORDINATOR_LOAD_IN_PROGRESS, "no producer id block reserved yet"
            )
        if self._next >= self._limit:
            limit = self._next + BLOCK_SIZE
            self._ns.put(_NEXT_BLOCK_KEY, _I64.pack(limit))
            self._limit = limit
        producer_id = self._next
        self._next += 1
        return ProducerIdAndEpoch(producer_id, 0)


_MANAGERS: weakref.WeakKeyDictionary[StateStore, ProducerIdManager] = weakref.WeakKeyDictionary()


def producer_id_manager(store: StateStore) -> ProducerIdManager:
    """The broker's one producer id manager over its state store."""
    manager = _MANAGERS.get(store)
    if manager is None:
        manager = _MANAGERS[store] = ProducerIdManager(store.namespace(NAMESPACE))
    return manager
