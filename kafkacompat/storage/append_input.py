"""Produced record sets as writable v2 buffers that `PartitionLog.append` patches in place."""

from __future__ import annotations

from kafkacompat.protocol.compression import codec_from_name
from kafkacompat.protocol.legacy_records import legacy_to_v2
from kafkacompat.protocol.record_codec import recompress_batches
from kafkacompat.protocol.record_validation import RecordRules, decompression_limit, validate_batch
from kafkacompat.protocol.records import (
    MAGIC_OFFSET,
    BatchHeader,
    BatchValidator,
    iter_batches,
    verify_crc,
)
from kafkacompat.storage.log_config import LogConfig

__all__ = ["batch_validator", "record_rules", "to_writable_v2", "writable"]


def record_rules(
    config: LogConfig, now_ms: int, topic_partition: str, *, producer_rules: bool = True
) -> RecordRules:
    """The record validation rules of a topic's ``config`` at ``now_ms``."""
    return RecordRules(
        now_ms=now_ms,
        topic_partition=topic_partition,
        log_append_time=config.log_append_time,
        timestamp_before_max_ms=config.message_timestamp_before_max_ms,
        timestamp_after_max_ms=config.message_timestamp_after_max_ms,
        compacted="compact" in config.cleanup_policy.split(","),
        max_decompressed=decompression_limit(config.max_message_bytes),
        producer_rules=producer_rules,
    )


def batch_validator(rules: RecordRules, now_ms: int) -> BatchValidator:
    """``rules`` at ``now_ms`` as the record-level check `records.assign_offsets` calls per
    batch; the decompression limit holds for all the batches it checks together (one set)."""
    left = rules.max_decompressed

    def validate(buf: memoryview, pos: int, header: BatchHeader) -> int:
        nonlocal left
        checked = validate_batch(buf, header, rules, pos, max_decompressed=left, now_ms=now_ms)
        left -= checked.decompressed_size
        return checked.max_timestamp

    return validate


def writable(records: bytes | bytearray | memoryview) -> bytearray | memoryview:
    """``records`` as a buffer that offsets can be patched into: itself when writable, else
    a copy."""
    if isinstance(records, bytearray):
        return records
    if isinstance(records, memoryview) and not records.readonly and records.c_contiguous:
        return records.cast("B")
    return bytearray(records)


def to_writable_v2(
    records: bytes | bytearray | memoryview,
    config: LogConfig,
    rules: RecordRules | None = None,
) -> tuple[bytearray | memoryview, bool]:
    """The slow path: legacy v0/v1 message sets converted to one v2 batch, batches recompressed
    unless ``compression.type`` is ``producer``; also whether a legacy set was converted.

    Produced v2 batches about to be recompressed are first CRC-checked and, with ``rules``,
    record-checked as sent, so their faults get the codes the stored-as-sent path gives.
    """
    converted = len(records) > MAGIC_OFFSET and records[MAGIC_OFFSET] in (0, 1)
    if converted:
        max_bytes = config.max_message_bytes
        limit = decompression_limit(max_bytes)
        records = bytearray(
            legacy_to_v2(records, max_message_bytes=max_bytes, max_decompressed=limit)
        )
    if config.compression_type != "producer":
        if rules is not None and not converted:
            validate = batch_validator(rules, rules.now_ms)
            with memoryview(records) as view:
                for pos, header in iter_batches(view):
                    verify_crc(view, pos, header)
                    validate(view, pos, header)
        codec = codec_from_name(config.compression_type)
        records = bytearray(recompress_batches(records, codec))
    return writable(records), converted
