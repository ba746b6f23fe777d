"""Transactional offset commits: pending until their transaction's marker, then committed or
dropped.

Kept durably (namespace ``__pending_txn_offsets``, one key per group and producer id) so a
transaction that is committing when the broker crashes still commits its offsets on restart.
OffsetFetch with ``require_stable`` answers UNSTABLE_OFFSET_COMMIT while a partition has any.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping

from kafkacompat.coordinators.group_offsets import OffsetAndMetadata, TopicPartition
from kafkacompat.storage.state_store import Namespace

__all__ = ["NAMESPACE", "PendingTxnOffsets"]

NAMESPACE = "__pending_txn_offsets"
_PID = struct.Struct(">q")


def _key(group_id: str, producer_id: int) -> bytes:
    return _PID.pack(producer_id) + group_id.encode()


def _encode(offsets: Mapping[TopicPartition, OffsetAndMetadata]) -> bytes:
    return json.dumps(
        [
            [t, p, v.offset, v.leader_epoch, v.metadata, v.commit_timestamp]
            for (t, p), v in offsets.items()
        ]
    ).encode()


def _decode(raw: bytes) -> dict[TopicPartition, OffsetAndMetadata]:
    return {
        (str(t), int(p)): OffsetAndMetadata(int(o), int(e), m, int(ts))
        for t, p, o, e, m, ts in json.loads(raw)
    }


class PendingTxnOffsets:
    def __init__(self, namespace: Namespace) -> None:
        self._ns = namespace
        self._pending: dict[tuple[str, int], dict[TopicPartition, OffsetAndMetadata]] = {}
        for key, raw in namespace.items():
            (pid,) = _PID.unpack_from(key)
            self._pending[(key[_PID.size :].decode(), pid)] = _decode(raw)

    def add(
        self, group_id: str, producer_id: int, offsets: Mapping[TopicPartition, OffsetAndMetadata]
    ) -> None:
        merged = dict(self._pending.get((group_id, producer_id), {}))
        merged.update(offsets)
        self._ns.put(_key(group_id, producer_id), _encode(merged))
        self._pending[(group_id, producer_id)] = merged

    def get(self, group_id: str, producer_id: int) -> dict[TopicPartition, OffsetAndMetadata]:
        return dict(self._pending.get((group_id, producer_id), {}))

    def remove(self, group_id: str, producer_id: int) -> None:
        if self._pending.pop((group_id, producer_id), None) is not None:
            self._ns.delete(_key(group_id, producer_id))

    def is_pending(self, group_id: str, tp: TopicPartition) -> bool:
        return any(g == group_id and tp in offsets for (g, _), offsets in self._pending.items())

    def groups_of(self, producer_id: int) -> list[str]:
        """The groups with offsets pending in ``producer_id``'s transaction."""
        return sorted(g for g, pid in self._pending if pid == producer_id)

    def has_group(self, group_id: str) -> bool:
        return any(g == group_id for g, _ in self._pending)
