"""Large frames received straight into a buffer of their own size."""

from __future__ import annotations

from kafkacompat.protocol.framing import DIRECT_RECEIVE_MIN, FrameReader, frame


def _receive_into(reader: FrameReader, data: bytes, piece: int) -> bytes:
    """Write ``data`` into the reader's receive buffers, ``piece`` bytes at a time."""
    while data:
        room = reader.receive_buffer()
        assert room is not None
        count = min(piece, len(room), len(data))
        room[:count] = data[:count]
        reader.received(count)
        data = data[count:]
    return data


def test_large_frame_received_directly_after_a_partial_chunk() -> None:
    body = bytes(range(256)) * (DIRECT_RECEIVE_MIN // 64)
    small = b"tiny"
    stream = frame(small) + frame(body) + frame(b"next")
    reader = FrameReader(max_frame_size=len(body))
    split = len(frame(small)) + 100
    reader.feed(stream[:split])
    assert reader.receive_buffer() is None  # the size of the first frame is not even read yet
    assert reader.next_frame() == small
    assert reader.next_frame() is None
    direct_part = stream[split : len(frame(small)) + len(frame(body))]
    _receive_into(reader, direct_part, 999)
    assert reader.receive_buffer() is not None and len(reader.receive_buffer() or b"") == 0
    reader.feed(frame(b"next"))
    assert reader.next_frame() == body
    assert reader.next_frame() == b"next"
    assert reader.next_frame() is None
    assert reader.buffered == 0


def test_feeding_during_a_direct_receive_fills_the_frame_and_keeps_the_rest() -> None:
    body = b"x" * (DIRECT_RECEIVE_MIN * 2)
    reader = FrameReader(max_frame_size=len(body))
    reader.feed(frame(body)[:10])
    assert reader.next_frame() is None
    _receive_into(reader, frame(body)[10:1000], 300)
    reader.feed(frame(body)[1000:] + frame(b"after")[:3])
    assert reader.next_frame() == body
    assert reader.next_frame() is None
    reader.feed(frame(b"after")[3:])
    assert reader.next_frame() == b"after"


def test_small_frames_never_use_a_direct_buffer() -> None:
    reader = FrameReader(max_frame_size=1 << 20)
    reader.feed(frame(b"y" * 100)[:20])
    assert reader.next_frame() is None
    assert reader.receive_buffer() is None
    assert reader.wanted() == 84
