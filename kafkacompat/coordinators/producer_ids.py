"""Producer ids: unique across restarts, handed out from durably reserved blocks.

The state store namespace ``producer_ids`` holds the end of the last reserved block; a restart
continues after it, so an id is never handed out twice even after a crash (ids of a block
reserved but not used are skipped, as in Kafka). Epochs of ids whose epoch was bumped are kept
there too, so a bump is only granted to the holder of the current epoch.
"""

from __future__ import annotations

import struct
import weakref
from typing import NamedTuple

from kafkacompat.storage.state_store import Namespace, StateStore

__all__ = ["ProducerIdAndEpoch", "ProducerIdManager", "producer_id_manager"]

NAMESPACE = "producer_ids"
BLOCK_SIZE = 1000
#: The highest epoch handed out; past it a producer gets a new id (Kafka: Short.MAX_VALUE - 1).
MAX_EPOCH = 32766
_NEXT_BLOCK_KEY = b"next_block"
_EPOCH_PREFIX = b"epoch:"
_I64 = struct.Struct(">q")
_I16 = struct.Struct(">h")


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

    def current_epoch(self, producer_id: int) -> int | None:
        """The latest epoch of an id handed out by this broker, None for any other id."""
        if not 0 <= producer_id < self._next:
            return None
        raw = self._ns.get(_EPOCH_PREFIX + _I64.pack(producer_id))
        return 0 if raw is None else _I16.unpack(raw)[0]

    def bump_or_allocate(self, producer_id: int, epoch: int) -> ProducerIdAndEpoch:
        """A producer presenting its current id and epoch gets the next epoch of that id; an
        exhausted epoch, an unknown id or a stale epoch gets a fresh id."""
        current = self.current_epoch(producer_id)
        if current is None or current != epoch or epoch >= MAX_EPOCH:
            return self.allocate()
        bumped = epoch + 1
        self._ns.put(_EPOCH_PREFIX + _I64.pack(producer_id), _I16.pack(bumped))
        return ProducerIdAndEpoch(producer_id, bumped)


_MANAGERS: weakref.WeakKeyDictionary[StateStore, ProducerIdManager] = weakref.WeakKeyDictionary()


def producer_id_manager(store: StateStore) -> ProducerIdManager:
    """The broker's one producer id manager over its state store."""
    manager = _MANAGERS.get(store)
    if manager is None:
        manager = _MANAGERS[store] = ProducerIdManager(store.namespace(NAMESPACE))
    return manager
