"""Size-prefixed frames: a sans-IO buffer that hands back whole frames, capped in size."""

from __future__ import annotations

from kafkacompat.errors import ProtocolError
from kafkacompat.protocol.primitives import INT32


class FrameTooLarge(ProtocolError):
    """A frame whose declared size exceeds the limit; its body is never buffered."""


class FrameReader:
    """Accumulates received bytes and yields complete frames (without the 4-byte size)."""

    def __init__(self, max_frame_size: int) -> None:
        self.max_frame_size = max_frame_size
        self._buffer = bytearray()
        self._needed: int | None = None

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        self._buffer += data

    def next_frame(self) -> bytes | None:
        """The next whole frame, or None when more data is needed.

        Raises `FrameTooLarge` or `ProtocolError` as soon as the size prefix is known to be bad.
        """
        if self._needed is None:
            if len(self._buffer) < 4:
                return None
            (size,) = INT32.unpack_from(self._buffer, 0)
            if size < 0:
                raise ProtocolError(f"negative frame size {size}")
            if size > self.max_frame_size:
                raise FrameTooLarge(
                    f"frame of {size} bytes exceeds socket.request.max.bytes={self.max_frame_size}"
                )
            self._needed = size
        end = 4 + self._needed
        if len(self._buffer) < end:
            return None
        frame = bytes(self._buffer[4:end])
        del self._buffer[:end]
        self._needed = None
        return frame

    def wanted(self) -> int:
        """How many more bytes complete the frame in progress (at least 1)."""
        if self._needed is None:
            return max(1, 4 - len(self._buffer))
        return max(1, 4 + self._needed - len(self._buffer))


def frame(*parts: bytes | bytearray | memoryview) -> bytes:
    """Join parts into one frame with its size prefix."""
    body = b"".join(parts)
    return INT32.pack(len(body)) + body
