"""Frames, request headers and response headers, parsed one byte at a time where it matters."""

from __future__ import annotations

import struct
from collections.abc import Iterator

import pytest

from kafkacompat.errors import ProtocolError
from kafkacompat.protocol.framing import FrameReader, FrameTooLarge, frame
from kafkacompat.protocol.headers import (
    ANSWER_UNSUPPORTED_AT_V0_APIS,
    RESPONSE_HEADER_V0_APIS,
    UnknownApiKey,
    encode_response_header,
    parse_request,
    request_header_version,
    response_header_version,
)
from kafkacompat.protocol.messages import APIS, metadata_request
from kafkacompat.protocol.primitives import DECODE_ERRORS
from tests.unit._message_values import Message, all_messages, populate


def frames_fed_bytewise(reader: FrameReader, data: bytes) -> Iterator[bytes]:
    for i in range(len(data)):
        reader.feed(data[i : i + 1])
        while (got := reader.next_frame()) is not None:
            yield got


# -- FrameReader --------------------------------------------------------------------------------


def test_frames_fed_one_byte_at_a_time() -> None:
    bodies = [b"first", b"", b"\x00" * 300, b"x", b""]
    stream = b"".join(frame(body) for body in bodies)
    reader = FrameReader(max_frame_size=1024)
    assert list(frames_fed_bytewise(reader, stream)) == bodies
    assert reader.buffered == 0
    assert reader.next_frame() is None


def test_frames_fed_all_at_once() -> None:
    bodies = [b"a", b"", b"bcd"]
    reader = FrameReader(max_frame_size=16)
    reader.feed(b"".join(frame(b) for b in bodies) + b"\x00\x00")
    assert [reader.next_frame() for _ in range(3)] == bodies
    assert reader.next_frame() is None
    assert reader.buffered == 2
    assert reader.wanted() == 2


def test_wanted_counts_down_to_the_end_of_the_frame() -> None:
    reader = FrameReader(max_frame_size=100)
    assert reader.wanted() == 4
    reader.feed(b"\x00\x00")
    assert reader.wanted() == 2
    reader.feed(b"\x00\x05")
    assert reader.next_frame() is None
    assert reader.wanted() == 5
    reader.feed(b"abc")
    assert reader.next_frame() is None
    assert reader.wanted() == 2
    reader.feed(b"de")
    assert reader.next_frame() == b"abcde"
    assert reader.wanted() == 4


def test_frame_of_exactly_the_max_size_is_accepted() -> None:
    reader = FrameReader(max_frame_size=10)
    reader.feed(frame(b"0123456789"))
    assert reader.next_frame() == b"0123456789"


def test_oversized_frame_is_refused_from_its_size_prefix() -> None:
    reader = FrameReader(max_frame_size=10)
    for byte in b"\x00\x00\x00":
        reader.feed(bytes([byte]))
        assert reader.next_frame() is None
    reader.feed(b"\x0b")  # 11: the body is never waited for
    with pytest.raises(FrameTooLarge, match="11 bytes"):
        reader.next_frame()
    assert reader.buffered == 4
    assert issubclass(FrameTooLarge, ProtocolError)


def test_oversized_frame_after_a_good_one() -> None:
    reader = FrameReader(max_frame_size=4)
    stream = frame(b"ok") + struct.pack(">i", 2**31 - 1)
    frames = frames_fed_bytewise(reader, stream)
    assert next(frames) == b"ok"
    with pytest.raises(FrameTooLarge):
        next(frames)


def test_negative_frame_size_is_a_protocol_error() -> None:
    reader = FrameReader(max_frame_size=100)
    reader.feed(b"\xff\xff\xff")
    assert reader.next_frame() is None
    reader.feed(b"\xfe")
    with pytest.raises(ProtocolError, match="negative frame size -2") as info:
        reader.next_frame()
    assert not isinstance(info.value, FrameTooLarge)


def test_frame_helper_joins_parts() -> None:
    assert frame(b"ab", bytearray(b"c"), memoryview(b"d")) == b"\x00\x00\x00\x04abcd"
    assert frame() == b"\x00\x00\x00\x00"


# -- request headers ----------------------------------------------------------------------------


def header_v1(api_key: int, version: int, correlation_id: int, client_id: str | None) -> bytes:
    out = struct.pack(">hhi", api_key, version, correlation_id)
    if client_id is None:
        return out + b"\xff\xff"
    raw = client_id.encode()
    return out + struct.pack(">h", len(raw)) + raw


def test_parse_request_header_v1() -> None:
    body = b"\x00\x00\x00\x00"  # MetadataRequest v1: an empty topics array
    request = parse_request(memoryview(header_v1(3, 1, 0x01020304, "my-client") + body))
    assert (request.api_key, request.api_version, request.correlation_id) == (3, 1, 0x01020304)
    assert request.header.client_id == "my-client"
    assert request.header.unknown_tagged_fields is None
    assert bytes(request.body) == body
    assert metadata_request.decode(request.body, 1).topics == []


def test_parse_request_header_v1_with_null_client_id() -> None:
    request = parse_request(memoryview(header_v1(12, 3, -7, None) + b"rest"))
    assert (request.api_key, request.api_version, request.correlation_id) == (12, 3, -7)
    assert request.header.client_id is None
    assert bytes(request.body) == b"rest"


def test_parse_request_header_v2_with_tagged_fields() -> None:
    # MetadataRequest v12 is flexible: header v2, client_id stays a non-compact string,
    # followed by a tagged section (here one unknown tag)
    head = header_v1(3, 12, 99, "rdkafka") + b"\x01" + b"\x05\x03abc"
    body = b"\x01\x00\x00\x00"  # no topics, no auto-create, no authorized ops, no tags
    request = parse_request(memoryview(head + body))
    assert (request.api_key, request.api_version, request.correlation_id) == (3, 12, 99)
    assert request.header.client_id == "rdkafka"
    assert request.header.unknown_tagged_fields == [(5, b"abc")]
    assert bytes(request.body) == body
    decoded = metadata_request.decode(request.body, 12)
    assert decoded.topics == []
    assert decoded.allow_auto_topic_creation is False


def test_api_versions_request_header_follows_its_request_version() -> None:
    v2 = parse_request(memoryview(header_v1(18, 2, 1, "c")))
    assert bytes(v2.body) == b""
    v3 = parse_request(memoryview(header_v1(18, 3, 1, "c") + b"\x00" + b"\x02a\x021\x00"))
    assert bytes(v3.body) == b"\x02a\x021\x00"
    # an ApiVersions version past what we know still parses, so it can be answered at v0
    future = parse_request(memoryview(header_v1(18, 99, 5, "c") + b"\x00"))
    assert (future.api_version, future.correlation_id, bytes(future.body)) == (99, 5, b"")


def test_unknown_api_key_raises() -> None:
    with pytest.raises(UnknownApiKey, match="unknown API key 9999"):
        parse_request(memoryview(header_v1(9999, 0, 1, "c")))
    with pytest.raises(UnknownApiKey):
        parse_request(memoryview(header_v1(-1, 0, 1, "c")))
    assert issubclass(UnknownApiKey, ProtocolError)


@pytest.mark.parametrize(
    "garbage",
    [
        b"",
        b"\x00",
        b"\x00\x03\x00",
        b"\x00\x03\x00\x01\x00\x00",  # correlation id cut short
        b"\x00\x03\x00\x01\x00\x00\x00\x01\x00\x09abc",  # client id runs past the end
        b"\x00\x03\x00\x0c\x00\x00\x00\x01\x00\x00",  # flexible: tagged section missing
        b"\x00\x03\x00\x0c\x00\x00\x00\x01\x00\x00\x01\x05\x09",  # tag longer than the frame
        b"\x00\x03\x00\x0c\x00\x00\x00\x01\x00\x00\xff\xff\xff\xff\xff\x01",  # 6-byte varint
        b"\x00\x03\x00\x01\x00\x00\x00\x01\x00\x02\xc3\x28",  # client id is not UTF-8
    ],
)
def test_garbage_request_header_raises_protocol_error(garbage: bytes) -> None:
    with pytest.raises(ProtocolError, match="malformed request header") as info:
        parse_request(memoryview(garbage))
    assert not isinstance(info.value, UnknownApiKey)


def test_negative_client_id_length_is_null() -> None:
    # Kafka reads any negative length as a null string
    request = parse_request(memoryview(b"\x00\x03\x00\x01\x00\x00\x00\x01\xff\xfe"))
    assert request.header.client_id is None


def test_request_header_versions() -> None:
    for api_key, (req, _) in APIS.items():
        for version in range(req.MIN_VERSION, req.MAX_VERSION + 1):
            flexible = req.FIRST_FLEXIBLE_VERSION is not None and version >= (
                req.FIRST_FLEXIBLE_VERSION
            )
            assert request_header_version(api_key, version) == (2 if flexible else 1)


def test_response_header_versions() -> None:
    assert {18} == RESPONSE_HEADER_V0_APIS
    assert {18} == ANSWER_UNSUPPORTED_AT_V0_APIS
    for version in range(5):
        assert response_header_version(18, version) == 0
        assert encode_response_header(18, version, 7) == b"\x00\x00\x00\x07"
    assert response_header_version(3, 8) == 0
    assert response_header_version(3, 9) == 1
    assert response_header_version(0, 8) == 0
    assert response_header_version(0, 9) == 1
    assert encode_response_header(3, 8, 7) == b"\x00\x00\x00\x07"
    assert encode_response_header(3, 12, -2) == b"\xff\xff\xff\xfe\x00"
    for api_key, (_, resp) in APIS.items():
        if api_key == 18:
            continue
        for version in range(resp.MIN_VERSION, resp.MAX_VERSION + 1):
            flexible = resp.FIRST_FLEXIBLE_VERSION is not None and version >= (
                resp.FIRST_FLEXIBLE_VERSION
            )
            assert response_header_version(api_key, version) == int(flexible)


# -- generated decoders, byte at a time ---------------------------------------------------------

BYTEWISE = [
    ("MetadataResponse", 12),
    ("MetadataRequest", 4),
    ("ProduceRequest", 9),
    ("ProduceRequest", 3),
    ("FetchResponse", 16),
    ("FetchResponse", 4),
    ("ApiVersionsResponse", 3),
    ("JoinGroupRequest", 9),
    ("OffsetCommitRequest", 2),
    ("DescribeConfigsResponse", 4),
    ("ConsumerProtocolSubscription", 3),
]


def _message(name: str) -> Message:
    (message,) = [m for m in all_messages() if m.spec.name == name]
    return message


@pytest.mark.parametrize(("name", "version"), BYTEWISE)
def test_every_prefix_of_a_message_raises_and_the_whole_decodes(name: str, version: int) -> None:
    message = _message(name)
    obj = populate(message, version)
    encoded = bytes(message.module.encode(obj, version))
    for end in range(len(encoded)):
        with pytest.raises(DECODE_ERRORS):
            message.module.decode(memoryview(encoded[:end]), version)
    assert message.module.decode(memoryview(encoded), version) == obj


def test_request_frames_through_reader_header_and_decoder_bytewise() -> None:
    """A stream of real request frames fed bytewise, then parsed down to message objects."""
    sent = []
    stream = b""
    for correlation_id, (name, version) in enumerate(
        [("MetadataRequest", 12), ("ProduceRequest", 9), ("MetadataRequest", 1)]
    ):
        message = _message(name)
        obj = populate(message, version)
        head = header_v1(message.spec.api_key or 0, version, correlation_id, "cli")
        if version in message.spec.flexible:
            head += b"\x00"
        stream += frame(head, message.module.encode(obj, version))
        sent.append((message, version, obj))
    reader = FrameReader(max_frame_size=1 << 20)
    received = list(frames_fed_bytewise(reader, stream))
    assert len(received) == len(sent)
    for correlation_id, (raw, (message, version, obj)) in enumerate(
        zip(received, sent, strict=True)
    ):
        request = parse_request(memoryview(raw))
        assert (request.api_key, request.api_version) == (message.spec.api_key, version)
        assert request.correlation_id == correlation_id
        assert request.header.client_id == "cli"
        assert message.module.decode(request.body, version) == obj
