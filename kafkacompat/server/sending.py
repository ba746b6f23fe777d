"""Writing a response: one buffer, or a buffer with record data spliced in from stored files.

A response whose records were given as a `RecordSource` (see `SplicedBuffer`) is sent in
pieces: the encoded bytes around each hole with ``send_all``, and each hole's data with
``os.sendfile`` straight from the segment file when the source is made of file slices
(anything with ``path``, ``position`` and ``size``), so stored batches are never copied
through Python. Other sources are read into memory and sent.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Protocol

from kafkacompat.protocol.primitives import RecordSource, SplicedBuffer
from kafkacompat.server.socket_io import ClientSocket

#: Bytes per sendfile call: large enough to amortise the call, small enough to interleave.
SENDFILE_CHUNK = 1024 * 1024


class FileRange(Protocol):
    @property
    def path(self) -> str | os.PathLike[str]: ...

    @property
    def position(self) -> int: ...

    @property
    def size(self) -> int: ...


class ResponseTruncated(Exception):
    """Stored data shrank between the read and the send (retention, truncation): the frame
    already announced its size, so the connection has to be closed."""


async def send_response(client: ClientSocket, response: bytes | bytearray) -> None:
    if not isinstance(response, SplicedBuffer) or not response.holes:
        await client.send_all(response)
        return
    view = memoryview(response)
    pos = 0
    for at, source in response.holes:
        if at > pos:
            await client.send_all(view[pos:at])
            pos = at
        await _send_source(client, source)
    if pos < len(view):
        await client.send_all(view[pos:])


async def _send_source(client: ClientSocket, source: RecordSource) -> None:
    slices: Sequence[FileRange] | None = getattr(source, "slices", None)
    if slices is None:
        raw = source.read_bytes()
        if len(raw) != source.size:
            raise ResponseTruncated(f"record source gave {len(raw)} of {source.size} bytes")
        await client.send_all(raw)
        return
    for file_range in slices:
        await sendfile(client, file_range)


async def sendfile(client: ClientSocket, file_range: FileRange) -> None:
    """Send ``size`` bytes of the file from ``position``."""
    try:
        fd = os.open(file_range.path, os.O_RDONLY)
    except FileNotFoundError as exc:
        raise ResponseTruncated(f"{file_range.path} is gone") from exc
    try:
        offset, remaining = file_range.position, file_range.size
        while remaining:
            sent = await client.sendfile(fd, offset, min(remaining, SENDFILE_CHUNK))
            if sent == 0:
                raise ResponseTruncated(f"{file_range.path} ends before {offset + remaining}")
            offset += sent
            remaining -= sent
    finally:
        os.close(fd)
