"""Produced record sets as writable v2 buffers that `PartitionLog.append` patches in place."""

from __future__ import annotations

from kafkacompat.protocol.compression import codec_from_name
from kafkacompat.protocol.legacy_records import legacy_to_v2
from kafkacompat.protocol.records import MAGIC_OFFSET, recompress_batches
from kafkacompat.storage.log_config import LogConfig

__all__ = ["to_writable_v2", "writable"]


def writable(records: bytes | bytearray | memoryview) -> bytearray | memoryview:
    """``records`` as a buffer that offsets can be patched into: itself when writable, else
    a copy."""
    if isinstance(records, bytearray):
        return records
    if isinstance(records, memoryview) and not records.readonly and records.c_contiguous:
        return records.cast("B")
    return bytearray(records)


def to_writable_v2(
    records: bytes | bytearray | memoryview, config: LogConfig
) -> tuple[bytearray | memoryview, bool]:
    """The slow path: legacy v0/v1 message sets converted to one v2 batch, batches recompressed
    unless ``compression.type`` is ``producer``; also whether a legacy set was converted."""
    converted = len(records) > MAGIC_OFFSET and records[MAGIC_OFFSET] in (0, 1)
    if converted:
        max_bytes = config.max_message_bytes
        records = bytearray(legacy_to_v2(records, max_message_bytes=max_bytes))
    if config.compression_type != "producer":
        codec = codec_from_name(config.compression_type)
        records = bytearray(recompress_batches(records, codec))
    return writable(records), converted
