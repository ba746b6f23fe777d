"""Putting cleaned segments in place so that a crash at any point leaves the old log or the new
one, never a mix; and the per-partition "first dirty offset" checkpoint of the cleaner.

The protocol, for one cleaning that replaces groups of old segments (each group by one new
segment named after the group's first base offset):

1. Write each new segment as ``<base>.log.cleaned`` with ``.index.cleaned``,
   ``.timeindex.cleaned`` and, when it has entries, ``.txnindex.cleaned``; fsync every file,
   then the directory. A crash here leaves the old log: opening deletes ``*.cleaned``.
2. Commit: write the manifest ``cleaner-swap.json`` (groups, the replaced bases, the new first
   dirty offset) atomically and durably. From here on, opening rolls forward.
3. Per group: delete the files of the merged-away old segments and the old derived files of the
   group's base (indexes, transaction index), then rename ``<base>.log.cleaned`` over
   ``<base>.log`` and the new index files to their names; fsync the directory.
4. Write the cleaner checkpoint, delete the manifest, fsync the directory.

Step 3 is idempotent: recovery (`recover_swap`, called when a partition directory is opened,
before anything else looks at its files) redoes it from the manifest, whatever part of it had
been done. An index file that is missing afterwards is rebuilt by the segment's own recovery.

`STEP_HOOK`, when set, is called with the name of each step as it completes (`STEPS`), so a
test can kill the process there.
"""

from __future__ import annotations

import contextlib
import json
import os
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kafkacompat.errors import ErrorCode, KafkaError
from kafkacompat.storage.fsutil import atomic_write, fsync_dir, write_all
from kafkacompat.storage.index import OffsetIndex, TimeIndex
from kafkacompat.storage.txn_index import TXN_INDEX_SUFFIX, AbortedTxn, TransactionIndex

if TYPE_CHECKING:
    from kafkacompat.storage.segment import LogSegment

__all__ = [
    "CLEANER_CHECKPOINT_FILE",
    "CLEANER_SWAP_FILE",
    "STEPS",
    "STEP_HOOK",
    "CleanedSegmentWriter",
    "CleanedSegments",
    "SwapGroup",
    "discard_cleaned",
    "read_cleaner_checkpoint",
    "recover_swap",
    "replace_segments",
    "swap_in",
    "write_cleaner_checkpoint",
]

CLEANER_CHECKPOINT_FILE = "cleaner-offset.checkpoint"
CLEANER_SWAP_FILE = "cleaner-swap.json"
CLEANED = ".cleaned"
_DERIVED = (".index", ".timeindex")
_FLUSH_BYTES = 1 << 20

#: Step names in order; "cleaned-partial" comes only when there are several groups.
STEPS = (
    "cleaned-partial",
    "cleaned-written",
    "swap-committed",
    "old-deleted",
    "swapped",
    "checkpointed",
    "done",
)
#: Test hook: called with each step name as the step completes.
STEP_HOOK: Callable[[str], None] | None = None


def step(name: str) -> None:
    """Report a completed step to `STEP_HOOK`."""
    if STEP_HOOK is not None:
        STEP_HOOK(name)


def _stem(directory: Path, base: int) -> Path:
    return directory / f"{base:020d}"


@dataclass(frozen=True, slots=True)
class SwapGroup:
    """One new segment at ``base`` replacing ``sources`` (the first one has the same base)."""

    base: int
    sources: tuple[LogSegment, ...]
    source_sizes: tuple[int, ...]
    has_txn_index: bool

    @property
    def replaced_bases(self) -> list[int]:
        return [s.base_offset for s in self.sources]


@dataclass(frozen=True, slots=True)
class CleanedSegments:
    """Cleaned segments written as ``*.cleaned`` files, ready for `replace_segments`."""

    directory: Path
    groups: tuple[SwapGroup, ...]
    first_dirty_offset: int

    def discard(self) -> None:
        """Delete the cleaned files (a cleaning given up, or refused by the log)."""
        discard_cleaned(self.directory, [g.base for g in self.groups])


def discard_cleaned(directory: Path, bases: Sequence[int]) -> None:
    """Delete the ``*.cleaned`` files of the new segments at ``bases``."""
    for base in bases:
        for suffix in (".log", *_DERIVED, TXN_INDEX_SUFFIX):
            (directory / f"{base:020d}{suffix}{CLEANED}").unlink(missing_ok=True)


class CleanedSegmentWriter:
    """Writes one cleaned segment: ``<base>.log.cleaned`` and its index files.

    Index entries follow the append rule (`recovery.scan_log`): a batch is indexed once more
    than ``index_interval`` bytes were written since the previous entry.
    """

    def __init__(self, directory: Path, base: int, index_interval: int) -> None:
        self.directory = directory
        self.base = base
        self.stem = _stem(directory, base)
        self.index_interval = index_interval
        self.size = 0
        self.max_timestamp = -1
        self._offset_of_max = base
        self._since = 0
        self._offsets: array[int] = array("q")
        self._positions: array[int] = array("q")
        self._times: array[int] = array("q")
        self._time_offsets: array[int] = array("q")
        self._pending = bytearray()
        self._fd = os.open(
            self._path(".log"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644
        )

    def _path(self, suffix: str) -> Path:
        return self.stem.with_name(f"{self.stem.name}{suffix}{CLEANED}")

    def append(self, data: bytes | memoryview, base_offset: int, max_timestamp: int) -> None:
        """Add one batch."""
        if max_timestamp > self.max_timestamp:
            self.max_timestamp, self._offset_of_max = max_timestamp, base_offset
        if self._since > self.index_interval:
            self._offsets.append(base_offset - self.base)
            self._positions.append(self.size)
            self._maybe_time_entry()
            self._since = 0
        self._since += len(data)
        self.size += len(data)
        self._pending += data
        if len(self._pending) >= _FLUSH_BYTES:
            write_all(self._fd, self._pending)
            self._pending.clear()

    def _maybe_time_entry(self) -> None:
        if self.max_timestamp > (self._times[-1] if self._times else -1):
            self._times.append(self.max_timestamp)
            self._time_offsets.append(self._offset_of_max - self.base)

    def finish(self, mtime_ns: int, txn_entries: Sequence[AbortedTxn]) -> None:
        """Write what is buffered and the index files, fsync them all; the log file gets
        ``mtime_ns`` (its age for time rules when batches carry no timestamps)."""
        try:
            write_all(self._fd, self._pending)
            self._pending.clear()
            os.fsync(self._fd)
        finally:
            os.close(self._fd)
            self._fd = -1
        self._maybe_time_entry()  # as a segment gets when it is sealed
        offsets = b"".join(
            OffsetIndex.ENTRY.pack(o, p)
            for o, p in zip(self._offsets, self._positions, strict=True)
        )
        times = b"".join(
            TimeIndex.ENTRY.pack(t, o) for t, o in zip(self._times, self._time_offsets, strict=True)
        )
        _write_durably(self._path(".index"), offsets)
        _write_durably(self._path(".timeindex"), times)
        if txn_entries:
            txn_path = self._path(TXN_INDEX_SUFFIX)
            TransactionIndex._rewrite(txn_path, list(txn_entries))
            _fsync_file(txn_path)
        os.utime(self._path(".log"), ns=(mtime_ns, mtime_ns))

    def close(self) -> None:
        """Give the descriptor back (on failure; `finish` closes it otherwise)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _write_durably(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --- commit and roll forward -------------------------------------------------------------------


def swap_in(
    segments: Sequence[LogSegment],
    cleaned: CleanedSegments,
    open_segment: Callable[[int, int], LogSegment],
) -> list[LogSegment] | None:
    """The segment list with ``cleaned`` in place of the segments it replaces, files swapped
    (`replace_segments`) and new segments opened by ``open_segment(base, created_ms)``.

    None, with the cleaned files deleted, when a replaced segment is no longer in ``segments``
    as planned (same object, same size, not the active one).
    """
    position = {id(s): i for i, s in enumerate(segments[:-1])}
    for group in cleaned.groups:
        i = position.get(id(group.sources[0]), -1)
        planned = zip(group.sources, group.source_sizes, strict=True)
        if i < 0 or any(
            i + k >= len(segments) - 1 or segments[i + k] is not source or source.size != size
            for k, (source, size) in enumerate(planned)
        ):
            cleaned.discard()
            return None
    replace_segments(cleaned)
    out = list(segments)
    for group in reversed(cleaned.groups):  # later groups first: earlier positions hold
        i = position[id(group.sources[0])]
        for source in group.sources:
            source.close_file()
        new = open_segment(group.base, group.sources[0].created_ms)
        if not new.load():
            new.recover()
        new.evict()
        out[i : i + len(group.sources)] = [new]
    return out


def replace_segments(cleaned: CleanedSegments) -> None:
    """Steps 2 to 4 of the protocol: commit, put the new files in place, checkpoint.

    An OSError after the commit leaves the directory for `recover_swap` to finish when the
    partition is next opened; the caller must stop using the log then. Without groups (no
    segment changed) only the checkpoint moves.
    """
    if not cleaned.groups:
        write_cleaner_checkpoint(cleaned.directory, cleaned.first_dirty_offset)
        return
    manifest: dict[str, Any] = {
        "version": 1,
        "first_dirty_offset": cleaned.first_dirty_offset,
        "groups": [
            {"base": g.base, "replaces": g.replaced_bases, "txn_index": g.has_txn_index}
            for g in cleaned.groups
        ],
    }
    atomic_write(cleaned.directory / CLEANER_SWAP_FILE, json.dumps(manifest).encode())
    step("swap-committed")
    _roll_forward(cleaned.directory, manifest)


def recover_swap(directory: Path) -> bool:
    """Finish a committed swap found in ``directory`` (True), else do nothing (False).

    Uncommitted ``*.cleaned`` files are left for the caller's sweep of temporary files.
    """
    path = directory / CLEANER_SWAP_FILE
    try:
        manifest: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        return False
    except ValueError as exc:  # written atomically: it cannot be torn, only damaged
        raise KafkaError(ErrorCode.KAFKA_STORAGE_ERROR, f"unreadable {path}: {exc}") from exc
    _roll_forward(directory, manifest)
    return True


def _roll_forward(directory: Path, manifest: dict[str, Any]) -> None:
    for i, group in enumerate(manifest["groups"]):
        base = int(group["base"])
        stem = _stem(directory, base)
        for old in group["replaces"]:
            if int(old) != base:
                old_stem = _stem(directory, int(old))
                for suffix in (*_DERIVED, TXN_INDEX_SUFFIX, ".log"):
                    old_stem.with_name(old_stem.name + suffix).unlink(missing_ok=True)
        new_log = stem.with_name(f"{stem.name}.log{CLEANED}")
        if new_log.exists():
            # The old log is still in place: its derived files go before it is replaced.
            for suffix in _DERIVED:
                stem.with_name(stem.name + suffix).unlink(missing_ok=True)
            txn = stem.with_name(stem.name + TXN_INDEX_SUFFIX)
            if not group["txn_index"]:
                txn.unlink(missing_ok=True)
        if group["txn_index"]:
            _rename_if_present(stem.with_name(f"{stem.name}{TXN_INDEX_SUFFIX}{CLEANED}"), stem)
        if i == 0:
            step("old-deleted")
        if new_log.exists():
            os.replace(new_log, stem.with_name(stem.name + ".log"))
        for suffix in _DERIVED:
            _rename_if_present(stem.with_name(f"{stem.name}{suffix}{CLEANED}"), stem)
    fsync_dir(directory)
    step("swapped")
    write_cleaner_checkpoint(directory, int(manifest["first_dirty_offset"]))
    step("checkpointed")
    (directory / CLEANER_SWAP_FILE).unlink()
    fsync_dir(directory)
    step("done")


def _rename_if_present(cleaned: Path, stem: Path) -> None:
    """``<stem>.<kind>.cleaned`` -> ``<stem>.<kind>``, when it is still there."""
    with contextlib.suppress(FileNotFoundError):
        os.replace(cleaned, stem.with_name(cleaned.name[: -len(CLEANED)]))


# --- the cleaner checkpoint ------------------------------------------------------------------


def read_cleaner_checkpoint(directory: Path) -> int | None:
    """The first dirty offset recorded by the last cleaning, or None (never cleaned)."""
    try:
        data = json.loads((directory / CLEANER_CHECKPOINT_FILE).read_text())
        return int(data["first_dirty_offset"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_cleaner_checkpoint(directory: Path, first_dirty_offset: int) -> None:
    """Atomically and durably record the first offset the next cleaning has to look at."""
    text = json.dumps({"version": 1, "first_dirty_offset": first_dirty_offset})
    atomic_write(directory / CLEANER_CHECKPOINT_FILE, text.encode())
