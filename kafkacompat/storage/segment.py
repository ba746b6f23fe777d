"""One log segment: a ``.log`` file of record batches plus its ``.index`` and ``.timeindex``.

The ``.log`` descriptor comes from the log manager's `FileCache`: it is opened on demand, pinned
for each system call sequence and may be closed by the cache between calls (the index files are
held in memory and opened only for a moment to write).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from kafkacompat.errors import ErrorCode, KafkaError
from kafkacompat.protocol.record_codec import decode_batch
from kafkacompat.protocol.records import HEADER_SIZE, BatchHeader, PreparedAppend, read_header
from kafkacompat.storage.file_cache import FileCache
from kafkacompat.storage.file_slice import FileSlice
from kafkacompat.storage.fsutil import write_all
from kafkacompat.storage.index import OffsetIndex, TimeIndex
from kafkacompat.storage.recovery import scan_log

__all__ = ["LogSegment", "segment_name"]

_READ_CHUNK = 16 * 1024


def segment_name(base_offset: int) -> str:
    """File stem of a segment: its base offset zero-padded to 20 digits."""
    return f"{base_offset:020d}"


class LogSegment:
    """Appends batches to a ``.log`` file and serves reads through its sparse indexes."""

    def __init__(
        self,
        directory: Path,
        base_offset: int,
        *,
        index_interval: int,
        index_bytes: int,
        created_ms: int,
        files: FileCache,
    ) -> None:
        """Open the segment's files, creating an empty ``.log`` when there is none."""
        stem = directory / segment_name(base_offset)
        self.base_offset = base_offset
        self.log_path = stem.with_suffix(".log")
        self.offset_index = OffsetIndex(stem.with_suffix(".index"), base_offset, index_bytes // 8)
        self.time_index = TimeIndex(stem.with_suffix(".timeindex"), base_offset, index_bytes // 12)
        self._file = files.file(self.log_path, create=True)
        try:
            stat = os.stat(self.log_path)
        except BaseException:
            self._file.close()
            raise
        self.size = stat.st_size
        #: The file's identity: a read handed out before compaction replaced it must not be
        #: served from the new file at the old positions.
        self.inode = stat.st_ino
        self._dirty = False  # written or truncated since the last fsync
        self.next_offset = base_offset
        self.max_timestamp = -1
        self.offset_of_max_timestamp = base_offset
        self.first_timestamp: int | None = None  # max timestamp of the first batch
        self.created_ms = created_ms
        self.index_interval = index_interval
        self._since_index = 0

    # --- opening -------------------------------------------------------------------------------

    def load(self) -> bool:
        """Trust the index files after a clean shutdown; False when they look damaged."""
        if not (self.offset_index.load() and self.time_index.load()):
            return False
        if not (self.offset_index.is_sane(self.size) and self.time_index.is_sane()):
            return False
        self.next_offset, start = self.offset_index.lookup(2**63 - 1)
        if self.time_index.last_timestamp >= 0:
            self.max_timestamp = self.time_index.last_timestamp
            self.offset_of_max_timestamp = self.time_index.lookup(2**63 - 1)
        end = start
        try:
            for pos, header in self.iter_headers(start):
                if header.base_offset < self.next_offset:
                    return False
                if header.max_timestamp > self.max_timestamp:
                    self.max_timestamp = header.max_timestamp
                    self.offset_of_max_timestamp = header.base_offset
                self.next_offset = header.last_offset + 1
                end = pos + header.size
        except KafkaError:
            return False
        if end != self.size:
            return False
        self._since_index = self.size - start
        self._load_first_timestamp()
        return True

    def recover(self) -> int:
        """Verify the whole file, rebuild both indexes, drop a bad tail; return bytes dropped."""
        fd = self._file.acquire()
        try:
            result = scan_log(fd, self.base_offset, self.size, self.index_interval)
            dropped = self.size - result.valid_size
            if dropped:
                os.ftruncate(fd, result.valid_size)
                self.size = result.valid_size
        finally:
            self._file.release()
        self._dirty = True
        self.offset_index.clear()
        self.time_index.clear()
        for offset, position in result.offset_entries:
            self.offset_index.append(offset, position)
        for timestamp, offset in result.time_entries:
            self.time_index.maybe_append(timestamp, offset)
        self.next_offset = result.next_offset
        self.max_timestamp = result.max_timestamp
        self.offset_of_max_timestamp = result.offset_of_max_timestamp
        self._since_index = result.bytes_since_index
        self.offset_index.rewrite()
        self.time_index.rewrite()
        self._load_first_timestamp()
        return dropped

    def _load_first_timestamp(self) -> None:
        self.first_timestamp = None
        if self.size >= HEADER_SIZE:
            self.first_timestamp = read_header(self._pread(HEADER_SIZE, 0)).max_timestamp

    # --- writing -------------------------------------------------------------------------------

    def append(self, data: bytes | bytearray | memoryview, prepared: PreparedAppend) -> None:
        """Write validated, offset-patched batches with one write and index them."""
        start, file = self.size, self._file
        try:
            fd = file.acquire()
        except OSError as exc:
            raise KafkaError(ErrorCode.KAFKA_STORAGE_ERROR, f"append failed: {exc}") from exc
        try:
            written = os.write(fd, data)
            if written < len(data):  # a regular file may accept a short write
                write_all(fd, memoryview(data)[written:])
        except OSError as exc:
            os.ftruncate(fd, start)
            raise KafkaError(ErrorCode.KAFKA_STORAGE_ERROR, f"append failed: {exc}") from exc
        finally:
            file.release()
        self.size = start + len(data)
        self._dirty = True
        if self.first_timestamp is None:
            self.first_timestamp = prepared.batches[0][3]
        interval, since = self.index_interval, self._since_index
        for pos, size, base, max_ts in prepared.batches:
            if max_ts > self.max_timestamp:
                self.max_timestamp, self.offset_of_max_timestamp = max_ts, base
            if since > interval:
                self.offset_index.append(base, start + pos)
                self.time_index.maybe_append(self.max_timestamp, self.offset_of_max_timestamp)
                since = 0
            since += size
        self._since_index = since
        self.next_offset = prepared.last_offset + 1

    def time_waited_for_roll(self, now_ms: int, max_timestamp: int) -> int:
        """Age for ``segment.ms``: record time since the first batch, else wall time since
        the segment was created (batches without timestamps)."""
        if self.first_timestamp is not None and self.first_timestamp >= 0:
            return max_timestamp - self.first_timestamp
        return now_ms - self.created_ms

    def flush_indexes(self) -> None:
        self.offset_index.flush()
        self.time_index.flush()

    def sync(self) -> None:
        """Write buffered index entries and fsync the log data written since the last sync."""
        self.flush_indexes()
        if self._dirty:
            self.datasync()

    def datasync(self) -> None:
        """fsync the log data (reopening the file if the cache closed it: the kernel flushes
        the file's dirty pages whichever descriptor wrote them)."""
        self._dirty = False
        fd = self._file.acquire()
        try:
            os.fdatasync(fd)
        except BaseException:
            self._dirty = True
            raise
        finally:
            self._file.release()

    def seal(self) -> None:
        """Called when the segment stops being active: final time index entry, indexes written
        and the descriptor given back (reads reopen it)."""
        self.time_index.maybe_append(self.max_timestamp, self.offset_of_max_timestamp)
        self.flush_indexes()
        self.evict()

    def evict(self) -> None:
        """Give the descriptor back until the file is next used."""
        self._file.evict()

    def truncate_to(self, offset: int) -> None:
        """Remove every batch whose last offset is >= ``offset`` and rebuild the indexes."""
        found = self.find_batch(offset)
        if found is None:
            return
        fd = self._file.acquire()
        try:
            os.ftruncate(fd, found[0])
        finally:
            self._file.release()
        self.size = found[0]
        self.recover()

    @property
    def closed(self) -> bool:
        return self._file.closed

    @property
    def fd(self) -> int:
        """An open descriptor of the ``.log`` file, -1 once closed. Not pinned: use it at
        once; the methods (`datasync`, `read_batch_bytes`) pin it for their call."""
        if self._file.closed:
            return -1
        fd = self._file.acquire()
        self._file.release()
        return fd

    def close(self) -> None:
        """Seal and give the descriptor back for good."""
        if not self._file.closed:
            self.seal()
            self._file.close()

    def close_file(self) -> None:
        """Give the descriptor back for good, writing nothing."""
        self._file.close()

    def delete(self) -> None:
        """Close and remove the segment's files (indexes first: a lone log is rebuilt)."""
        self._file.close()
        self.offset_index.delete()
        self.time_index.delete()
        self.log_path.unlink(missing_ok=True)

    # --- reading -------------------------------------------------------------------------------

    @property
    def largest_timestamp(self) -> int:
        """Max batch timestamp, or the file's modification time when batches carry none."""
        if self.max_timestamp >= 0:
            return self.max_timestamp
        return int(os.stat(self.log_path).st_mtime * 1000)

    def iter_headers(self, pos: int) -> Iterator[tuple[int, BatchHeader]]:
        """Yield ``(position, header)`` of consecutive batches from ``pos`` to the end."""
        buf, buf_start, end = b"", 0, self.size
        while pos + HEADER_SIZE <= end:
            rel = pos - buf_start
            if rel + HEADER_SIZE > len(buf):
                buf, buf_start, rel = self._pread(_READ_CHUNK, pos), pos, 0
            header = read_header(buf, rel)
            yield pos, header
            pos += header.size

    def find_batch(self, offset: int) -> tuple[int, BatchHeader] | None:
        """Position and header of the first batch whose last offset is >= ``offset``."""
        _, start = self.offset_index.lookup(offset)
        for pos, header in self.iter_headers(start):
            if header.last_offset >= offset:
                return pos, header
        return None

    def read(
        self, offset: int, max_bytes: int, *, min_one: bool, end_position: int | None = None
    ) -> FileSlice | None:
        """Whole batches from the one holding ``offset``: at most ``max_bytes`` (unless
        ``min_one`` lets a larger first batch through) and none past ``end_position``."""
        found = self.find_batch(offset)
        bound = self.size if end_position is None else min(end_position, self.size)
        if found is None or found[0] + found[1].size > bound:
            return None
        start, header = found
        end, limit = start + header.size, min(start + max(max_bytes, 0), bound)
        if end > limit:
            return FileSlice(self.log_path, start, header.size, self.inode) if min_one else None
        if end < limit:
            end = max(end, self.offset_index.lookup_position(limit))
            for pos, header in self.iter_headers(end):
                if pos + header.size > limit:
                    break
                end = pos + header.size
        return FileSlice(self.log_path, start, end - start, self.inode)

    def find_timestamp(self, timestamp: int, min_offset: int) -> tuple[int, int] | None:
        """``(timestamp, offset)`` of the first record at or after ``min_offset`` whose
        timestamp is >= ``timestamp``, if this segment holds one."""
        scan_from = max(self.time_index.lookup(timestamp), min_offset)
        _, start = self.offset_index.lookup(scan_from)
        for pos, header in self.iter_headers(start):
            if header.max_timestamp < timestamp or header.last_offset < min_offset:
                continue
            _, records = decode_batch(self._pread(header.size, pos))
            for record in records:
                if record.timestamp >= timestamp and record.offset >= min_offset:
                    return record.timestamp, record.offset
        return None

    def read_batch_bytes(self, pos: int, size: int) -> bytes:
        return self._pread(size, pos)

    def _pread(self, size: int, pos: int) -> bytes:
        fd = self._file.acquire()
        try:
            return os.pread(fd, size, pos)
        finally:
            self._file.release()
