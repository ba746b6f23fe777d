"""Durable internal key/value state (group offsets, producer state, transaction state).

Each namespace is an append-only file ``<namespace>.log`` of frames
``length u32 | crc32c u32 | payload``; a payload is one or more entries
``varint key length | key | varint value length (-1: tombstone) | value``. A frame is applied
whole or not at all, so ``put_many`` is atomic. Opening replays the file and cuts a torn or
corrupt tail; when the file grows well past the live data it is rewritten (compacted).
"""

from __future__ import annotations

import os
import re
import struct
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Protocol

from crc32c import crc32c

from kafkacompat.errors import ErrorCode, KafkaError
from kafkacompat.protocol.record_codec import read_varint, write_varint
from kafkacompat.storage.fsutil import atomic_write, write_all

__all__ = ["KeyValueSource", "KeyValueState", "Namespace", "StateStore"]

_FRAME = struct.Struct(">II")
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,200}$")
_MAX_FRAME = 64 * 1024 * 1024


def _encode_entries(entries: Iterable[tuple[bytes, bytes | None]]) -> bytes:
    payload = bytearray()
    for key, value in entries:
        write_varint(payload, len(key))
        payload += key
        if value is None:
            write_varint(payload, -1)
        else:
            write_varint(payload, len(value))
            payload += value
    return _FRAME.pack(len(payload), crc32c(payload)) + payload


def _decode_entries(payload: bytes) -> Iterator[tuple[bytes, bytes | None]]:
    pos = 0
    while pos < len(payload):
        n, pos = read_varint(payload, pos)
        if n < 0 or pos + n > len(payload):
            raise ValueError("bad key length")
        key, pos = payload[pos : pos + n], pos + n
        n, pos = read_varint(payload, pos)
        if n < 0:
            yield key, None
            continue
        if pos + n > len(payload):
            raise ValueError("bad value length")
        yield key, payload[pos : pos + n]
        pos += n


class KeyValueSource(Protocol):
    """Entries to load from: a whole `KeyValueState` or a part of one."""

    def items(self) -> Iterator[tuple[bytes, bytes]]: ...


class KeyValueState(KeyValueSource, Protocol):
    """What the coordinators keep their state in: a `Namespace` here, or an internal topic
    (`kafkacompat.coordinators.internal_topic`)."""

    def get(self, key: bytes) -> bytes | None: ...

    def __len__(self) -> int: ...

    def __contains__(self, key: object) -> bool: ...

    def put(self, key: bytes, value: bytes | None) -> None: ...

    def delete(self, key: bytes) -> None: ...

    def put_many(self, entries: Iterable[tuple[bytes, bytes | None]]) -> None: ...

    @property
    def file_size(self) -> int: ...


class Namespace:
    """One durable dictionary of bytes to bytes."""

    def __init__(self, path: Path, *, fsync: bool, compact_min_bytes: int) -> None:
        self.path = path
        self.fsync = fsync
        self.compact_min_bytes = compact_min_bytes
        self._data: dict[bytes, bytes] = {}
        self._live_bytes = 0
        self._fd = -1
        self._size = self._replay()
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def _replay(self) -> int:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return 0
        pos = 0
        while pos + _FRAME.size <= len(raw):
            length, crc = _FRAME.unpack_from(raw, pos)
            payload = raw[pos + _FRAME.size : pos + _FRAME.size + length]
            if length > _MAX_FRAME or len(payload) != length or crc32c(payload) != crc:
                break
            try:
                entries = list(_decode_entries(payload))
            except (ValueError, KafkaError):
                break
            for key, value in entries:
                self._apply(key, value)
            pos += _FRAME.size + length
        if pos != len(raw):
            os.truncate(self.path, pos)
        return pos

    def _apply(self, key: bytes, value: bytes | None) -> None:
        old = self._data.pop(key, None)
        if old is not None:
            self._live_bytes -= len(key) + len(old)
        if value is not None:
            self._data[key] = value
            self._live_bytes += len(key) + len(value)

    def get(self, key: bytes) -> bytes | None:
        return self._data.get(key)

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        return iter(list(self._data.items()))

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def put(self, key: bytes, value: bytes | None) -> None:
        """Set ``key`` (``None`` deletes it) durably before returning."""
        self.put_many([(key, value)])

    def delete(self, key: bytes) -> None:
        self.put_many([(key, None)])

    def put_many(self, entries: Iterable[tuple[bytes, bytes | None]]) -> None:
        """Apply several changes as one atomic frame (all survive a crash or none)."""
        items = list(entries)
        if not items:
            return
        frame = _encode_entries(items)
        if len(frame) - _FRAME.size > _MAX_FRAME:
            raise KafkaError(ErrorCode.MESSAGE_TOO_LARGE, "state frame too large")
        try:
            write_all(self._fd, frame)
            if self.fsync:
                os.fdatasync(self._fd)
        except OSError as exc:
            os.ftruncate(self._fd, self._size)
            raise KafkaError(ErrorCode.KAFKA_STORAGE_ERROR, f"state write failed: {exc}") from exc
        self._size += len(frame)
        for key, value in items:
            self._apply(key, value)
        if self._size > max(self.compact_min_bytes, 2 * (self._live_bytes + 16 * len(self._data))):
            self.compact()

    @property
    def file_size(self) -> int:
        return self._size

    def compact(self) -> None:
        """Rewrite the file with only the live entries (atomic replace)."""
        chunks, chunk, chunk_bytes = [], [], 0
        for key, value in self._data.items():
            chunk.append((key, value))
            chunk_bytes += len(key) + len(value)
            if chunk_bytes >= 1 << 20:
                chunks.append(_encode_entries(chunk))
                chunk, chunk_bytes = [], 0
        if chunk:
            chunks.append(_encode_entries(chunk))
        data = b"".join(chunks)
        os.close(self._fd)
        self._fd = -1
        atomic_write(self.path, data)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        self._size = len(data)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class StateStore:
    """Named namespaces of durable key/value state under one directory."""

    def __init__(
        self, directory: Path, *, fsync: bool = True, compact_min_bytes: int = 1 << 20
    ) -> None:
        self.directory = directory
        self.fsync = fsync
        self.compact_min_bytes = compact_min_bytes
        directory.mkdir(parents=True, exist_ok=True)
        for stray in directory.glob("*.tmp"):
            stray.unlink()
        self._namespaces: dict[str, Namespace] = {}

    def namespace(self, name: str) -> Namespace:
        """Open (replaying it on first use) the namespace ``name``."""
        ns = self._namespaces.get(name)
        if ns is None:
            if not _NAME.match(name):
                raise ValueError(f"bad namespace name {name!r}")
            ns = Namespace(
                self.directory / f"{name}.log",
                fsync=self.fsync,
                compact_min_bytes=self.compact_min_bytes,
            )
            self._namespaces[name] = ns
        return ns

    def exists(self, name: str) -> bool:
        """Whether the namespace ``name`` has a file (it may be empty)."""
        return name in self._namespaces or (self.directory / f"{name}.log").exists()

    def remove(self, name: str) -> None:
        """Close and delete the namespace ``name`` (its state moved elsewhere)."""
        ns = self._namespaces.pop(name, None)
        if ns is not None:
            ns.close()
        (self.directory / f"{name}.log").unlink(missing_ok=True)

    def close(self) -> None:
        for ns in self._namespaces.values():
            ns.close()
        self._namespaces.clear()
