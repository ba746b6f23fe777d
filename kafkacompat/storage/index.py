"""Sparse segment indexes: ``.index`` (relative offset -> file position) and ``.timeindex``
(max timestamp so far -> relative offset), both big-endian fixed-size entries as in Kafka.

Entries live in compact in-memory arrays for bisection; new entries are buffered and written to
the file on ``flush``. Indexes are derived data: recovery rebuilds them from the log.
"""

from __future__ import annotations

import os
import struct
from array import array
from bisect import bisect_left, bisect_right
from pathlib import Path

from kafkacompat.storage.fsutil import atomic_write, write_all

__all__ = ["OffsetIndex", "TimeIndex"]


class _SparseIndex:
    """Sorted (key, value) pairs persisted as fixed-size big-endian entries."""

    ENTRY: struct.Struct
    KEY_TYPE: str

    def __init__(self, path: Path, base_offset: int, max_entries: int) -> None:
        self.path = path
        self.base_offset = base_offset
        self.max_entries = max(1, max_entries)
        self._keys: array[int] = array(self.KEY_TYPE)
        self._values: array[int] = array("i")
        self._pending = bytearray()
        self._created = False

    def __len__(self) -> int:
        return len(self._keys)

    @property
    def is_full(self) -> bool:
        return len(self._keys) >= self.max_entries

    def _add(self, key: int, value: int) -> None:
        self._keys.append(key)
        self._values.append(value)
        self._pending += self.ENTRY.pack(key, value)

    def load(self) -> bool:
        """Read the index file; False when it is missing or not a whole number of entries."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return False
        if len(data) % self.ENTRY.size:
            return False
        self._keys = array(self.KEY_TYPE)
        self._values = array("i")
        for key, value in self.ENTRY.iter_unpack(data):
            self._keys.append(key)
            self._values.append(value)
        self._pending.clear()
        self._created = True
        return True

    def flush(self) -> None:
        """Append buffered entries to the file (creating it, so a clean reopen finds it)."""
        if self._pending or not self._created:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                write_all(fd, self._pending)
            finally:
                os.close(fd)
            self._pending.clear()
            self._created = True

    def rewrite(self) -> None:
        """Replace the file with the in-memory entries (after truncation or rebuild)."""
        data = b"".join(
            self.ENTRY.pack(k, v) for k, v in zip(self._keys, self._values, strict=True)
        )
        atomic_write(self.path, data, durable=False)
        self._pending.clear()
        self._created = True

    def clear(self) -> None:
        del self._keys[:]
        del self._values[:]
        self._pending.clear()

    def delete(self) -> None:
        self.path.unlink(missing_ok=True)


class OffsetIndex(_SparseIndex):
    """Maps a batch's base offset (relative to the segment) to its file position."""

    ENTRY = struct.Struct(">ii")
    KEY_TYPE = "i"

    def append(self, offset: int, position: int) -> None:
        self._add(offset - self.base_offset, position)

    def lookup(self, offset: int) -> tuple[int, int]:
        """Largest entry with offset <= ``offset`` as (absolute offset, position), else (base, 0)."""
        i = bisect_right(self._keys, offset - self.base_offset) - 1
        if i < 0:
            return self.base_offset, 0
        return self.base_offset + self._keys[i], self._values[i]

    def lookup_position(self, position: int) -> int:
        """Largest indexed batch position <= ``position`` (0 when none)."""
        i = bisect_right(self._values, position) - 1
        return self._values[i] if i >= 0 else 0

    def is_sane(self, log_size: int) -> bool:
        """Entries strictly increasing in offset and position, all inside the log."""
        keys, values = self._keys, self._values
        if any(keys[i] >= keys[i + 1] or values[i] >= values[i + 1] for i in range(len(keys) - 1)):
            return False
        return not values or (keys[0] >= 0 and values[0] >= 0 and values[-1] < log_size)


class TimeIndex(_SparseIndex):
    """Maps the max timestamp seen so far to the base offset (relative) of the batch holding it."""

    ENTRY = struct.Struct(">qi")
    KEY_TYPE = "q"

    @property
    def last_timestamp(self) -> int:
        return self._keys[-1] if self._keys else -1

    def maybe_append(self, timestamp: int, offset: int) -> None:
        """Add an entry when ``timestamp`` is newer than the last one."""
        if timestamp > self.last_timestamp:
            self._add(timestamp, offset - self.base_offset)

    def lookup(self, timestamp: int) -> int:
        """Offset from which a scan for the first timestamp >= ``timestamp`` can start.

        Every record before the returned offset has a timestamp below ``timestamp``.
        """
        i = bisect_left(self._keys, timestamp) - 1
        return self.base_offset + (self._values[i] if i >= 0 else 0)

    def is_sane(self) -> bool:
        keys, values = self._keys, self._values
        return all(
            keys[i] < keys[i + 1] and values[i] <= values[i + 1] for i in range(len(keys) - 1)
        ) and (not values or values[0] >= 0)
