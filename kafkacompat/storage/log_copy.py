"""A partition log copied into another log directory while appends go on (AlterReplicaLogDirs).

The copy lives in ``<target>/<topic>-<partition>.<uuid>-future/`` until it is swapped in, as
Kafka's future replica. `copy_round` copies what the segments hold now and may run on a worker
thread while the log is appended to; `finish`, called while the partition's appends wait
(its lock), copies the tail, the indexes and the small files and makes the copy durable.

Bytes already copied are reused only while the source still holds them: the same segment object
(compaction and retention replace or drop segments), no shorter, and the header of the last
batch copied still in place (a follower that truncated and appended again wrote other batches).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import struct
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kafkacompat.protocol.records import HEADER_SIZE, LOG_OVERHEAD
from kafkacompat.storage.fsutil import fsync_dir
from kafkacompat.storage.partition_log import DELETED_SUFFIX, PartitionLog
from kafkacompat.storage.recovery import CHECKPOINT_FILE, PartitionCheckpoint, write_checkpoint
from kafkacompat.storage.segment import LogSegment

__all__ = ["FUTURE_DIR", "FUTURE_SUFFIX", "LogCopy", "SegmentPlan"]

FUTURE_SUFFIX = "-future"
#: ``<topic>-<partition>.<uuid hex>-future``: a log being moved into this directory.
FUTURE_DIR = re.compile(r"^(.+)-(\d+)\.[0-9a-f]{32}-future$")
_SEGMENT_FILE = re.compile(r"^\d{20}\.(log|index|timeindex)$")
_STRAY_SUFFIXES = (".tmp", ".deleted", ".cleaned", ".swap")
_CHUNK = 1 << 20
_LENGTH = struct.Struct(">i")
LENGTH_OFFSET = 8  # batchLength, after the base offset

#: A segment and its size when a copy round was planned (read on the loop).
SegmentPlan = list[tuple[LogSegment, int]]


@dataclass(slots=True)
class _Copied:
    segment: LogSegment
    size: int  # bytes of the ``.log`` file copied
    last_batch: int  # position of the last batch copied (-1: none)
    last_header: bytes  # its header, as copied


class LogCopy:
    """The future log of one partition in ``target`` (see the module docstring)."""

    def __init__(self, source: PartitionLog, target: Path) -> None:
        self.source = source
        name = source.directory.name
        self.directory = target / f"{name}.{uuid.uuid4().hex}{FUTURE_SUFFIX}"
        self.final_directory = target / name
        self._copied: dict[int, _Copied] = {}
        self.directory.mkdir()

    @property
    def copied_bytes(self) -> int:
        """Bytes of log data copied so far (DescribeLogDirs' size of the future replica)."""
        return sum(c.size for c in self._copied.values())

    def plan(self) -> SegmentPlan:
        """The source's segments and sizes now; call it where the log is appended (the loop)."""
        return [(segment, segment.size) for segment in self.source.segments]

    def copy_round(self, plan: SegmentPlan) -> int:
        """Copy what ``plan`` holds beyond what is copied already; returns the bytes copied.
        A segment that vanished meanwhile (retention, compaction, deletion) is skipped."""
        total = 0
        for segment, size in plan:
            try:
                total += self._copy_segment(segment, size)
            except FileNotFoundError:
                self._forget(segment.base_offset)
        return total

    def finish(self) -> None:
        """Bring the copy level with the source and make it durable. Call it while appends
        wait: the source is flushed (indexes written), then whatever changed is copied."""
        source = self.source
        source.flush()
        plan = self.plan()
        bases = {segment.base_offset for segment, _ in plan}
        for base in [b for b in self._copied if b not in bases]:
            self._forget(base)
        for segment, size in plan:
            self._copy_segment(segment, size)
            # Retention of batches without timestamps goes by the file's modification time.
            stat = os.stat(segment.log_path)
            os.utime(
                self.directory / segment.log_path.name, ns=(stat.st_atime_ns, stat.st_mtime_ns)
            )
            for index in (segment.offset_index.path, segment.time_index.path):
                if index.exists():
                    shutil.copyfile(index, self.directory / index.name)
        self.copy_small_files()
        write_checkpoint(
            self.directory,
            PartitionCheckpoint(source.log_end_offset, source.log_start_offset),
        )
        for path in self.directory.iterdir():
            _fsync_file(path)
        fsync_dir(self.directory)

    def copy_small_files(self) -> None:
        """Copy every file other than segments and their indexes (leader epochs, producer
        snapshots, transaction indexes), durably; quick enough to repeat at the swap."""
        for path in self.source.directory.iterdir():
            name = path.name
            if (
                _SEGMENT_FILE.match(name)
                or name == CHECKPOINT_FILE
                or name.endswith(_STRAY_SUFFIXES)
                or not path.is_file()
            ):
                continue
            shutil.copyfile(path, self.directory / name)
            _fsync_file(self.directory / name)

    def swap_in(self, open_log: Callable[[Path], PartitionLog]) -> tuple[PartitionLog, Path]:
        """Put the finished copy in place of the source (appends still held off): the source
        directory is set aside first (the commit: a copy without a current log is promoted at
        start), then the copy is renamed to its final name and opened with ``open_log``.
        Returns it and the set-aside directory; on failure the source is put back, still in
        use. The source's descriptors are the caller's to close."""
        source, final = self.source.directory, self.final_directory
        aside = source.with_name(f"{source.name}.{uuid.uuid4().hex}{DELETED_SUFFIX}")
        self.copy_small_files()  # a leader epoch may have been assigned without the lock
        fsync_dir(self.directory)
        os.rename(source, aside)
        try:
            fsync_dir(source.parent)
            os.rename(self.directory, final)
            try:
                fsync_dir(final.parent)
                log = open_log(final)
            except BaseException:
                os.rename(final, self.directory)
                raise
        except BaseException:
            os.rename(aside, source)
            with contextlib.suppress(OSError):
                fsync_dir(source.parent)
            raise
        return log, aside

    def discard(self) -> None:
        """Remove the copy (best effort)."""
        shutil.rmtree(self.directory, ignore_errors=True)

    # -- one segment -----------------------------------------------------------------------------

    def _forget(self, base: int) -> None:
        self._copied.pop(base, None)
        stem = f"{base:020d}"
        for suffix in (".log", ".index", ".timeindex"):
            (self.directory / (stem + suffix)).unlink(missing_ok=True)

    def _copy_segment(self, segment: LogSegment, size: int) -> int:
        base = segment.base_offset
        done = self._copied.get(base)
        if done is not None and not self._still_holds(done, size):
            self._forget(base)
            done = None
        if done is None:
            done = self._copied[base] = _Copied(segment, 0, -1, b"")
        start = done.size
        target = self.directory / segment.log_path.name
        if size <= start:
            target.touch()  # an empty segment is copied too: it may be where the log ends
            return 0
        src = os.open(segment.log_path, os.O_RDONLY)
        try:
            dst = os.open(target, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                _copy_range(src, dst, start, size)
                done.last_batch, done.last_header = _last_batch(dst, done, size)
            finally:
                os.close(dst)
        finally:
            os.close(src)
        done.size = size
        return size - start

    def _still_holds(self, done: _Copied, size: int) -> bool:
        """Whether the source still holds the bytes copied from it (see the module docstring)."""
        segment = done.segment
        if not any(s is segment for s in self.source.segments) or size < done.size:
            return False
        if done.last_batch < 0:
            return True
        try:
            fd = os.open(segment.log_path, os.O_RDONLY)
        except FileNotFoundError:
            return False
        try:
            return os.pread(fd, HEADER_SIZE, done.last_batch) == done.last_header
        finally:
            os.close(fd)


def _copy_range(src: int, dst: int, start: int, stop: int) -> None:
    """Copy bytes [start, stop) of ``src`` to the same positions of ``dst``."""
    os.ftruncate(dst, start)
    pos = start
    while pos < stop:
        data = os.pread(src, min(_CHUNK, stop - pos), pos)
        if not data:
            raise FileNotFoundError(f"source ended at {pos} before {stop}")
        written = os.pwrite(dst, data, pos)
        pos += written


def _last_batch(fd: int, done: _Copied, size: int) -> tuple[int, bytes]:
    """The last batch copied (position, header bytes): the headers copied since the last known
    batch are walked by their lengths."""
    last, header = done.last_batch, done.last_header
    pos = 0 if last < 0 else last + _batch_size(header)
    while pos + HEADER_SIZE <= size:
        data = os.pread(fd, HEADER_SIZE, pos)
        last, header = pos, data
        pos += _batch_size(data)
    return last, header


def _batch_size(header: bytes) -> int:
    length: int = _LENGTH.unpack_from(header, LENGTH_OFFSET)[0]
    return LOG_OVERHEAD + max(length, HEADER_SIZE - LOG_OVERHEAD)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
