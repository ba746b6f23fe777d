"""High watermarks kept across restarts, in Kafka's ``replication-offset-checkpoint`` format: a
version line (0), a count line, then ``topic partition offset`` per partition.

A cluster member writes it every ``replica.high.watermark.checkpoint.interval.ms`` and when it
stops; on start each hosted partition's high watermark is the checkpointed one (capped by its
log end) rather than its log end, so a broker that comes back does not show records its
in-sync replicas never confirmed. A single broker is the only replica: it does not need one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from pathlib import Path

from kafkacompat.partitions.partition import Partition
from kafkacompat.storage.fsutil import atomic_write

__all__ = ["CHECKPOINT_NAME", "read_high_watermarks", "restore", "write_high_watermarks"]

log = logging.getLogger("kafkacompat.partitions")

CHECKPOINT_NAME = "replication-offset-checkpoint"
_VERSION = 0


def read_high_watermarks(directory: Path) -> dict[tuple[str, int], int]:
    """The checkpointed high watermarks (empty when there is no readable checkpoint)."""
    path = directory / CHECKPOINT_NAME
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return {}
    try:
        if int(lines[0]) != _VERSION or int(lines[1]) != len(lines) - 2:
            raise ValueError("unexpected version or count")
        found = {}
        for line in lines[2:]:
            topic, partition, offset = line.rsplit(" ", 2)
            found[(topic, int(partition))] = int(offset)
    except (ValueError, IndexError) as exc:
        log.warning("ignoring damaged %s: %s", path, exc)
        return {}
    return found


def write_high_watermarks(directory: Path, partitions: Iterable[Partition]) -> None:
    """Replace the checkpoint with the partitions' current high watermarks."""
    entries = [f"{p.topic} {p.index} {p.high_watermark}" for p in partitions if not p.deleted]
    text = "\n".join([str(_VERSION), str(len(entries)), *entries]) + "\n"
    atomic_write(directory / CHECKPOINT_NAME, text.encode())


def restore(partitions: Iterable[Partition], checkpoint: Mapping[tuple[str, int], int]) -> None:
    """Start each partition at its checkpointed high watermark (0 when it has none: a replica
    that never learnt one), never above its log end."""
    for partition in partitions:
        saved = checkpoint.get((partition.topic, partition.index), 0)
        partition.high_watermark = min(
            max(saved, partition.log_start_offset), partition.log_end_offset
        )
