"""Shared helpers for storage tests: kafka-python built batches and decoded views."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kafka.record.memory_records import MemoryRecords, MemoryRecordsBuilder

from kafkacompat.storage.partition_log import PartitionLog

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "batches"

Decoded = tuple[int, int, bytes | None, bytes | None, list[tuple[str, bytes | None]]]


def batch(
    count: int = 3,
    *,
    ts: int = 1000,
    codec: int = 0,
    value_size: int = 100,
    start: int = 0,
    magic: int = 2,
) -> bytes:
    """One record set from kafka-python: ``count`` records, timestamps ``ts``, ``ts+1``..."""
    builder = MemoryRecordsBuilder(magic, codec, 1 << 22)
    for i in range(count):
        value = f"{start + i:08d}".encode().ljust(value_size, b"x")
        builder.append(ts + i, f"k{start + i:06d}".encode(), value, [])
    builder.close()
    return bytes(builder.buffer())


def decode(data: bytes) -> list[Decoded]:
    """Decode concatenated batches with kafka-python's reader (validating each CRC)."""
    out: list[Decoded] = []
    for b in MemoryRecords(data):
        assert b.validate_crc()
        for r in b:
            out.append((r.offset, r.timestamp, r.key, r.value, list(r.headers)))
    return out


def fixture(name: str) -> tuple[bytes, list[dict[str, Any]]]:
    """The fixture's record set bytes and its expected records."""
    data = (FIXTURES / f"{name}.bin").read_bytes()
    expected = json.loads((FIXTURES / f"{name}.json").read_text())
    return data, expected


def expected_decoded(expected: list[dict[str, Any]], base_offset: int) -> list[Decoded]:
    """Expected records in ``decode`` form, offsets starting at ``base_offset``."""
    return [
        (
            base_offset + i,
            e["timestamp"],
            None if e["key"] is None else bytes.fromhex(e["key"]),
            None if e["value"] is None else bytes.fromhex(e["value"]),
            [(k, None if v is None else bytes.fromhex(v)) for k, v in e["headers"]],
        )
        for i, e in enumerate(expected)
    ]


def apply_retention(log: PartitionLog, now_ms: int) -> int:
    """Retention as the broker runs it: detach what expired, delete it; how many segments."""
    expired = log.detach_expired_segments(now_ms)
    for segment in expired:
        segment.delete()
    return len(expired)
