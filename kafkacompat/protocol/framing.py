"""Size-prefixed frames: a sans-IO buffer that hands back whole frames, capped in size."""

from __future__ import annotations

from kafkacompat.errors import ProtocolError
from kafkacompat.protocol.primitives import INT32


class FrameTooLarge(ProtocolError):
    """A frame whose declared size exceeds the limit; its body is never buffered."""


class FrameReader:
    """Accumulates received bytes and yields complete frames (without the 4-byte size).

    Frames are handed out as memoryviews, not copies: a frame that arrived within one received
    chunk is a view of that chunk, and a frame assembled from several chunks is a view of the
    buffer it was assembled in (which is then left to the frame; new bytes go to a fresh one).
    """

    def __init__(self, max_frame_size: int) -> None:
        self.max_frame_size = max_frame_size
        self._data: bytes | bytearray = b""
        self._pos = 0
        #: Views of `_data` were handed out, so it must not be resized in place.
        self._shared = False
        self._needed: int | None = None

    @property
    def buffered(self) -> int:
        return len(self._data) - self._pos

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        if self._pos == len(self._data):
            # Nothing unread: keep an immutable chunk as it is, copy anything the caller may reuse.
            self._data = data if isinstance(data, bytes) else bytes(data)
            self._pos = 0
            self._shared = False
            return
        if isinstance(self._data, bytes) or self._shared or self._pos:
            self._data = bytearray(memoryview(self._data)[self._pos :])
            self._pos = 0
            self._shared = False
        self._data += data

    def next_frame(self) -> memoryview | None:
        """The next whole frame, or None when more data is needed.

        Raises `FrameTooLarge` or `ProtocolError` as soon as the size prefix is known to be bad.
        """
        data, pos = self._data, self._pos
        if self._needed is None:
            if len(data) - pos < 4:
                return None
            (size,) = INT32.unpack_from(data, pos)
            if size < 0:
                raise ProtocolError(f"negative frame size {size}")
            if size > self.max_frame_size:
                raise FrameTooLarge(
                    f"frame of {size} bytes exceeds socket.request.max.bytes={self.max_frame_size}"
                )
            self._needed = size
        end = pos + 4 + self._needed
        if len(data) < end:
            return None
        frame = memoryview(data)[pos + 4 : end]
        self._needed = None
        if end == len(data):
            self._data, self._pos, self._shared = b"", 0, False
        else:
            self._pos = end
            self._shared = True
        return frame

    def wanted(self) -> int:
        """How many more bytes complete the frame in progress (at least 1)."""
        if self._needed is None:
            return max(1, 4 - self.buffered)
        return max(1, 4 + self._needed - self.buffered)


def frame(*parts: bytes | bytearray | memoryview) -> bytes:
    """Join parts into one frame with its size prefix."""
    body = b"".join(parts)
    return INT32.pack(len(body)) + body
