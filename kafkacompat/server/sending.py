"""Writing a response: one buffer, or a buffer with record data spliced in from stored files.

A response whose records were given as a `RecordSource` (see `SplicedBuffer`) is sent in
pieces: the encoded bytes around each hole with ``send_all``, and each hole's data with
``os.sendfile`` straight from the segment file when the source names its `FileRegion`s and the
transport can send from files, so stored batches are never copied through Python. Otherwise
the source's bytes are read into memory and sent.
"""

from __future__ import annotations

import os

from kafkacompat.protocol.primitives import FileRegion, RecordSource, SplicedBuffer
from kafkacompat.server.transport import Transport

__all__ = ["SENDFILE_CHUNK", "ResponseTruncated", "send_response", "sendfile"]

#: Bytes per sendfile call: large enough to amortise the call, small enough to interleave.
SENDFILE_CHUNK = 1024 * 1024


class ResponseTruncated(Exception):
    """Stored data shrank between the read and the send (retention, truncation): the frame
    already announced its size, so the connection has to be closed."""


async def send_response(transport: Transport, response: bytes | bytearray) -> None:
    if not isinstance(response, SplicedBuffer) or not response.holes:
        await transport.send_all(response)
        return
    view = memoryview(response)
    pos = 0
    for at, source in response.holes:
        if at > pos:
            await transport.send_all(view[pos:at])
            pos = at
        await _send_source(transport, source)
    if pos < len(view):
        await transport.send_all(view[pos:])


async def _send_source(transport: Transport, source: RecordSource) -> None:
    regions = source.file_regions() if transport.supports_sendfile else ()
    if not regions:
        raw = source.read_bytes()
        if len(raw) != source.size:
            raise ResponseTruncated(f"record source gave {len(raw)} of {source.size} bytes")
        await transport.send_all(raw)
        return
    for region in regions:
        await sendfile(transport, region)


async def sendfile(transport: Transport, region: FileRegion) -> None:
    """Send the region's ``size`` bytes of its file from ``position``."""
    try:
        fd = os.open(region.path, os.O_RDONLY)
    except FileNotFoundError as exc:
        raise ResponseTruncated(f"{region.path} is gone") from exc
    try:
        if region.inode and os.fstat(fd).st_ino != region.inode:
            raise ResponseTruncated(f"{region.path} was replaced (compacted) after the read")
        offset, remaining = region.position, region.size
        while remaining:
            sent = await transport.sendfile(fd, offset, min(remaining, SENDFILE_CHUNK))
            if sent == 0:
                raise ResponseTruncated(f"{region.path} ends before {offset + remaining}")
            offset += sent
            remaining -= sent
    finally:
        os.close(fd)
