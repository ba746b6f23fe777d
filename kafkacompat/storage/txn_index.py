"""The aborted-transaction index of a partition: Kafka's ``.txnindex`` file per segment.

An entry names an aborted transaction: producer id, first offset of its data, last offset (the
offset of its abort marker) and the last stable offset after the abort. It lives in the file of
the segment holding the abort marker. A read_committed fetch asks for the entries that overlap
the range it returns, so the consumer can drop that producer's records from the first offset
on. Entries are derived data: producer state replay re-adds any lost in a crash.
"""

from __future__ import annotations

import os
import struct
from bisect import bisect_left
from dataclasses import dataclass
from pathlib import Path

__all__ = ["TXN_INDEX_SUFFIX", "AbortedTxn", "TransactionIndex"]

TXN_INDEX_SUFFIX = ".txnindex"
_ENTRY = struct.Struct(">hqqqq")  # version, producer id, first offset, last offset, LSO
_VERSION = 0


@dataclass(frozen=True, slots=True)
class AbortedTxn:
    producer_id: int
    first_offset: int
    last_offset: int
    last_stable_offset: int


def index_path(directory: Path, segment_base: int) -> Path:
    return directory / f"{segment_base:020d}{TXN_INDEX_SUFFIX}"


def _read_entries(path: Path) -> list[AbortedTxn]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    entries = []
    for pos in range(0, len(data) - _ENTRY.size + 1, _ENTRY.size):
        version, pid, first, last, lso = _ENTRY.unpack_from(data, pos)
        if version != _VERSION:
            break
        entries.append(AbortedTxn(pid, first, last, lso))
    return entries


class TransactionIndex:
    """Every aborted transaction of one partition, ordered by last offset, in segment files."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._entries: list[AbortedTxn] = []
        self._lasts: list[int] = []
        self._segment_of: list[int] = []

    def load(self, segment_bases: list[int], log_end_offset: int) -> None:
        """Read the files of the given segments; drop files of other segments and entries at
        or past the log end (their markers were lost with a torn tail)."""
        wanted = set(segment_bases)
        for path in self.directory.glob(f"*{TXN_INDEX_SUFFIX}"):
            stem = path.name[: -len(TXN_INDEX_SUFFIX)]
            if not (stem.isdigit() and int(stem) in wanted):
                path.unlink(missing_ok=True)
        self._entries, self._lasts, self._segment_of = [], [], []
        for base in sorted(wanted):
            path = index_path(self.directory, base)
            entries = _read_entries(path)
            kept = [e for e in entries if e.last_offset < log_end_offset]
            if len(kept) != len(entries) or (path.exists() and not kept):
                self._rewrite(path, kept)
            for entry in kept:
                self._insert(entry, base)

    def _insert(self, entry: AbortedTxn, segment_base: int) -> None:
        i = bisect_left(self._lasts, entry.last_offset)
        self._entries.insert(i, entry)
        self._lasts.insert(i, entry.last_offset)
        self._segment_of.insert(i, segment_base)

    @staticmethod
    def _rewrite(path: Path, entries: list[AbortedTxn]) -> None:
        if not entries:
            path.unlink(missing_ok=True)
            return
        data = b"".join(
            _ENTRY.pack(
                _VERSION, e.producer_id, e.first_offset, e.last_offset, e.last_stable_offset
            )
            for e in entries
        )
        path.write_bytes(data)

    def contains(self, producer_id: int, last_offset: int) -> bool:
        i = bisect_left(self._lasts, last_offset)
        while i < len(self._lasts) and self._lasts[i] == last_offset:
            if self._entries[i].producer_id == producer_id:
                return True
            i += 1
        return False

    def append(self, entry: AbortedTxn, segment_base: int) -> None:
        """Record an aborted transaction whose marker lies in segment ``segment_base``
        (no-op when it is already recorded, as after a replay)."""
        if self.contains(entry.producer_id, entry.last_offset):
            return
        path = index_path(self.directory, segment_base)
        record = _ENTRY.pack(
            _VERSION, entry.producer_id, entry.first_offset, entry.last_offset,
            entry.last_stable_offset,
        )  # fmt: skip
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, record)
        finally:
            os.close(fd)
        self._insert(entry, segment_base)

    def collect(self, start_offset: int, upper_offset: int) -> list[AbortedTxn]:
        """Aborted transactions overlapping [start_offset, upper_offset): those whose marker is
        at or after ``start_offset`` and whose data starts before ``upper_offset``."""
        i = bisect_left(self._lasts, start_offset)
        return [e for e in self._entries[i:] if e.first_offset < upper_offset]

    def truncate_to(self, offset: int) -> None:
        """Drop entries whose marker is at or past ``offset``."""
        i = bisect_left(self._lasts, offset)
        if i == len(self._lasts):
            return
        touched = set(self._segment_of[i:])
        del self._entries[i:], self._lasts[i:], self._segment_of[i:]
        for base in touched:
            kept = [e for e, s in zip(self._entries, self._segment_of, strict=True) if s == base]
            self._rewrite(index_path(self.directory, base), kept)

    def drop_segments_before(self, base_offset: int) -> None:
        """Forget the files of segments below ``base_offset`` (deleted by retention)."""
        keep = [i for i, s in enumerate(self._segment_of) if s >= base_offset]
        gone = {s for s in self._segment_of if s < base_offset}
        self._entries = [self._entries[i] for i in keep]
        self._lasts = [self._lasts[i] for i in keep]
        self._segment_of = [self._segment_of[i] for i in keep]
        for base in gone:
            index_path(self.directory, base).unlink(missing_ok=True)

    def clear(self) -> None:
        for base in set(self._segment_of):
            index_path(self.directory, base).unlink(missing_ok=True)
        self._entries, self._lasts, self._segment_of = [], [], []

    def __len__(self) -> int:
        return len(self._entries)
