"""Producer ids: unique across restarts, handed out from durably reserved blocks.

The state store namespace ``producer_ids`` holds the end of the last reserved block; a restart
continues after it, so an id is never handed out twice even after a crash (ids of a block
reserved but not used are skipped, as in Kafka).
"""

from __future__ import annotations

import struct
import weakref
from typing import NamedTuple

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

    def allocate(self) -> ProducerIdAndEpoch:
        """A producer id never handed out before, at epoch 0."""
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
