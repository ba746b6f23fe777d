"""Control records: the commit and abort markers that end a transaction on a partition.

A marker is a control batch (transactional and control attribute bits set, no sequence) of one
record whose key is ``version i16 | type i16`` (0 abort, 1 commit) and whose value is
``version i16 | coordinator epoch i32``.
"""

from __future__ import annotations

import struct

from kafkacompat.errors import KafkaError
from kafkacompat.protocol.record_codec import Record, decode_batch, encode_batch

__all__ = ["ABORT_MARKER", "COMMIT_MARKER", "COORDINATOR_EPOCH", "control_batch", "marker_type"]

ABORT_MARKER = 0
COMMIT_MARKER = 1
#: A single broker is the only transaction coordinator there ever was.
COORDINATOR_EPOCH = 0
_CONTROL_KEY = struct.Struct(">hh")
_CONTROL_VALUE = struct.Struct(">hi")


def control_batch(producer_id: int, producer_epoch: int, *, commit: bool, timestamp: int) -> bytes:
    """A transaction marker batch for ``producer_id`` at ``producer_epoch``."""
    record = Record(
        0,
        timestamp,
        _CONTROL_KEY.pack(0, COMMIT_MARKER if commit else ABORT_MARKER),
        _CONTROL_VALUE.pack(0, COORDINATOR_EPOCH),
    )
    return encode_batch(
        [record],
        producer_id=producer_id,
        producer_epoch=producer_epoch,
        transactional=True,
        control=True,
    )


def marker_type(buf: bytes | bytearray | memoryview, pos: int = 0) -> int:
    """The control type (abort 0, commit 1) of the control batch at ``pos``; -1 if unknown."""
    try:
        _, records = decode_batch(buf, pos)
    except KafkaError:
        return -1
    key = records[0].key if records else None
    if key is None or len(key) < _CONTROL_KEY.size:
        return -1
    return int(_CONTROL_KEY.unpack_from(key)[1])
