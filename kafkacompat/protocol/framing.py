"""Size-prefixed frames: a sans-IO buffer that hands back whole frames, capped in size."""

from __future__ import annotations

from kafkacompat.errors import ProtocolError
from kafkacompat.protocol.primitives import INT32


class FrameTooLarge(ProtocolError):
    """A frame whose declared size exceeds the limit; its body is never buffered."""


#: A frame still missing at least this many bytes is better received straight into its own
#: buffer (`FrameReader.receive_buffer`) than gathered from chunks and copied.
DIRECT_RECEIVE_MIN = 16 * 1024


class FrameReader:
    """Accumulates received bytes and yields complete frames (without the 4-byte size).

    Frames are handed out as memoryviews, not copies: a frame that arrived within one received
    chunk is a view of that chunk, and a frame assembled from several chunks is a view of the
    buffer it was assembled in (which is then left to the frame; new bytes go to a fresh one).
    A large frame can be received directly into a buffer of its exact size: `receive_buffer`
    gives the room left in it, `received` records what arrived there.
    """

    def __init__(self, max_frame_size: int) -> None:
        self.max_frame_size = max_frame_size
        self._data: bytes | bytearray = b""
        self._pos = 0
        #: Views of `_data` were handed out, so it must not be resized in place.
        self._shared = False
        self._needed: int | None = None
        #: The frame in progress, size prefix included, when it is received directly.
        self._direct: bytearray | None = None
        self._filled = 0

    @property
    def buffered(self) -> int:
        return len(self._data) - self._pos + self._filled

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        if self._direct is not None:
            take = min(len(data), len(self._direct) - self._filled)
            self._direct[self._filled : self._filled + take] = data[:take]
            self._filled += take
            data = data[take:]
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

    def receive_buffer(self) -> memoryview | None:
        """Room for the rest of a large frame in progress, to receive into; None otherwise.

        Bytes received there must be reported with `received` before anything else is fed.
        """
        if self._direct is None:
            if self._needed is None:
                return None
            unread = len(self._data) - self._pos
            if 4 + self._needed - unread < DIRECT_RECEIVE_MIN:
                return None
            direct = bytearray(4 + self._needed)
            direct[:unread] = memoryview(self._data)[self._pos :]
            self._direct, self._filled = direct, unread
            self._data, self._pos, self._shared = b"", 0, False
        return memoryview(self._direct)[self._filled :]

    def received(self, count: int) -> None:
        """``count`` bytes were written at the start of the last `receive_buffer`."""
        assert self._direct is not None and 0 <= count <= len(self._direct) - self._filled
        self._filled += count

    def next_frame(self) -> memoryview | None:
        """The next whole frame, or None when more data is needed.

        Raises `FrameTooLarge` or `ProtocolError` as soon as the size prefix is known to be bad.
        """
        if self._direct is not None:
            if self._filled < len(self._direct):
                return None
            frame = memoryview(self._direct)[4:]
            self._direct, self._filled, self._needed = None, 0, None
            return frame
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
