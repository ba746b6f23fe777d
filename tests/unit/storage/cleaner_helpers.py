"""Shared helpers for the log cleaner tests: keyed batches, transactional writes, log views."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from kafkacompat.protocol.control_records import control_batch
from kafkacompat.protocol.record_codec import Record, decode_batch, encode_batch
from kafkacompat.protocol.records import BatchHeader, iter_batches
from kafkacompat.storage.log_config import LogConfig
from kafkacompat.storage.partition_log import PartitionLog
from kafkacompat.storage.txn_index import AbortedTxn

KV = tuple[bytes | None, bytes | None]
Row = tuple[int, bytes | None, bytes | None]


def compact_config(**overrides: str) -> LogConfig:
    """A compacted topic with small segments (each test batch of 3 rolls every ~4 batches)."""
    settings = {
        "cleanup.policy": "compact",
        "segment.bytes": "1000",
        "index.interval.bytes": "100",
        "delete.retention.ms": "1000",
    }
    settings.update({k.replace("_", "."): v for k, v in overrides.items()})
    return LogConfig.from_overrides(settings)


def kv_batch(
    pairs: Sequence[KV],
    *,
    ts: int = 1000,
    codec: int = 0,
    producer_id: int = -1,
    producer_epoch: int = -1,
    base_sequence: int = -1,
    transactional: bool = False,
) -> bytes:
    """One batch of ``pairs`` (key, value), padded values so batches have some weight."""
    records = [Record(i, ts + i, k, v) for i, (k, v) in enumerate(pairs)]
    return encode_batch(
        records,
        codec=codec,
        producer_id=producer_id,
        producer_epoch=producer_epoch,
        base_sequence=base_sequence,
        transactional=transactional,
    )


def value(tag: str) -> bytes:
    return tag.encode().ljust(60, b".")


def rows(log: PartitionLog, start: int | None = None) -> list[Row]:
    return [(r.offset, r.key, r.value) for r in log.iter_records(start)]


def latest(rows_: list[Row]) -> dict[bytes | None, Row]:
    out: dict[bytes | None, Row] = {}
    for row in rows_:
        out[row[1]] = row
    return out


def headers(log: PartitionLog) -> list[BatchHeader]:
    """Every batch header of the log, in order."""
    data = log.read(log.log_start_offset, 1 << 30).read_bytes()
    return [h for _, h in iter_batches(data)]


def raw_batches(log: PartitionLog) -> dict[int, bytes]:
    """Batch bytes by base offset."""
    data = log.read(log.log_start_offset, 1 << 30).read_bytes()
    return {h.base_offset: data[pos : pos + h.size] for pos, h in iter_batches(data)}


def fill(log: PartitionLog, batches: int, keys: int, *, ts: int = 1000, tag: str = "v") -> None:
    """``batches`` batches of 3 records cycling over ``keys`` keys."""
    for i in range(batches):
        pairs: list[KV] = [
            (f"k{(3 * i + j) % keys}".encode(), value(f"{tag}{i}-{j}")) for j in range(3)
        ]
        log.append(kv_batch(pairs, ts=ts + i), now_ms=0)


def write_txn(
    log: PartitionLog,
    producer_id: int,
    pairs: Sequence[KV],
    *,
    commit: bool,
    ts: int = 1000,
    epoch: int = 0,
    sequence: int = 0,
) -> tuple[int, int]:
    """A transaction of one batch and its marker; returns (first offset, marker offset)."""
    batch = kv_batch(
        pairs,
        ts=ts,
        producer_id=producer_id,
        producer_epoch=epoch,
        base_sequence=sequence,
        transactional=True,
    )
    first = log.append(batch, now_ms=0).base_offset
    lso = first
    marker = control_batch(producer_id, epoch, commit=commit, timestamp=ts)
    marker_offset = log.append(marker, now_ms=0, allow_control=True).base_offset
    if not commit:
        log.record_aborted(AbortedTxn(producer_id, first, marker_offset, lso))
    return first, marker_offset


def batch_records(data: bytes) -> list[Record]:
    return decode_batch(data)[1]


def cleaned_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith((".cleaned", ".swap")))
