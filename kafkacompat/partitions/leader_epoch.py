"""A partition's leader epochs and where each began, kept as Kafka's ``leader-epoch-checkpoint``.

The file is Kafka's text format: a version line (0), a count line, then one ``epoch offset``
line per epoch, oldest first. OffsetForLeaderEpoch answers from it (KIP-101/279): an epoch ends
where the next one starts, the latest one at the log end.
"""

from __future__ import annotations

import logging
from bisect import bisect_right
from pathlib import Path

from kafkacompat.storage.fsutil import atomic_write

__all__ = ["CHECKPOINT_NAME", "UNDEFINED_EPOCH", "UNDEFINED_EPOCH_OFFSET", "LeaderEpochCache"]

log = logging.getLogger("kafkacompat.partitions")

CHECKPOINT_NAME = "leader-epoch-checkpoint"
UNDEFINED_EPOCH = -1
UNDEFINED_EPOCH_OFFSET = -1
_VERSION = 0


class LeaderEpochCache:
    """Epoch -> start offset for one partition, persisted on every change."""

    def __init__(self, directory: Path, *, durable: bool = True) -> None:
        self.path = directory / CHECKPOINT_NAME
        self._durable = durable
        self._epochs: list[int] = []
        self._starts: list[int] = []
        self._load()

    def _load(self) -> None:
        try:
            lines = self.path.read_text().split()
        except FileNotFoundError:
            return
        try:
            if int(lines[0]) != _VERSION or int(lines[1]) * 2 != len(lines) - 2:
                raise ValueError("unexpected version or count")
            pairs = [(int(lines[i]), int(lines[i + 1])) for i in range(2, len(lines), 2)]
        except (ValueError, IndexError) as exc:
            log.warning("ignoring damaged %s: %s", self.path, exc)
            return
        for epoch, start in pairs:
            self._epochs.append(epoch)
            self._starts.append(start)

    def _write(self) -> None:
        lines = [str(_VERSION), str(len(self._epochs))]
        lines += [f"{e} {s}" for e, s in zip(self._epochs, self._starts, strict=True)]
        atomic_write(self.path, ("\n".join(lines) + "\n").encode(), durable=self._durable)

    @property
    def latest_epoch(self) -> int:
        return self._epochs[-1] if self._epochs else UNDEFINED_EPOCH

    def entries(self) -> list[tuple[int, int]]:
        """``(epoch, start offset)`` pairs, oldest first."""
        return list(zip(self._epochs, self._starts, strict=True))

    def assign(self, epoch: int, start_offset: int) -> None:
        """Record that ``epoch`` begins at ``start_offset`` (no-op for a known or older epoch).

        As Kafka's cache, earlier epochs starting at or after ``start_offset`` go: they hold no
        batch (a leadership that wrote nothing), and starts stay increasing."""
        if self._epochs and epoch <= self._epochs[-1]:
            return
        while self._starts and self._starts[-1] >= start_offset:
            self._epochs.pop()
            self._starts.pop()
        self._epochs.append(epoch)
        self._starts.append(start_offset)
        self._write()

    def end_offset_for(self, requested: int, log_end_offset: int) -> tuple[int, int]:
        """``(epoch, end offset)`` as Kafka's cache answers OffsetForLeaderEpoch.

        An unknown epoch (above the latest, or -1) answers (-1, -1); the latest ends at the log
        end; an older one ends where the next larger epoch starts, answered with the largest
        epoch not above it; one below the first answers itself with the first start offset.
        """
        if requested == UNDEFINED_EPOCH or not self._epochs or requested > self._epochs[-1]:
            return UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET
        if requested == self._epochs[-1]:
            return requested, log_end_offset
        at = bisect_right(self._epochs, requested)
        if at == 0:
            return requested, self._starts[0]
        return self._epochs[at - 1], self._starts[at]

    def truncate_from_start(self, start_offset: int) -> None:
        """The log now starts at ``start_offset``: drop epochs wholly before it."""
        keep = bisect_right(self._starts, start_offset) - 1
        if keep <= 0:
            return
        del self._epochs[:keep], self._starts[:keep]
        self._starts[0] = max(self._starts[0], start_offset)
        self._write()

    def truncate_from_end(self, end_offset: int) -> None:
        """The log now ends at ``end_offset``: drop epochs that start at or after it."""
        keep = bisect_right(self._starts, end_offset - 1)
        if keep == len(self._epochs):
            return
        del self._epochs[keep:], self._starts[keep:]
        self._write()

    def clear(self) -> None:
        """Forget every epoch (the log restarted empty: its batches will tell them again)."""
        if self._epochs:
            del self._epochs[:], self._starts[:]
            self._write()
