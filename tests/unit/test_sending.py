"""Responses with record data spliced in from files: same bytes as the in-memory encoding."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import trio

from kafkacompat.protocol.headers import finish_response_frame, start_response_frame
from kafkacompat.protocol.messages import fetch_response
from kafkacompat.protocol.messages.fetch_response import (
    FetchableTopicResponse,
    FetchResponse,
    PartitionData,
)
from kafkacompat.server.sending import ResponseTruncated, send_response
from kafkacompat.server.socket_io import ClientSocket
from kafkacompat.storage.file_slice import FileSlice
from kafkacompat.storage.results import ReadResult

FETCH = 1


def _response(records: object) -> FetchResponse:
    data = PartitionData(partition_index=0, high_watermark=3, records=records)  # type: ignore[arg-type]
    return FetchResponse(responses=[FetchableTopicResponse(topic="t", partitions=[data])])


def _encode(version: int, response: FetchResponse) -> bytearray:
    out = start_response_frame(FETCH, version, 7)
    fetch_response.ENCODERS[version](response, out)
    return finish_response_frame(out)


def _slices(tmp_path: Path) -> tuple[ReadResult, bytes]:
    path = tmp_path / "00000000000000000000.log"
    path.write_bytes(b"head" + b"A" * 3000 + b"B" * 5000 + b"tail")
    result = ReadResult((FileSlice(path, 4, 3000), FileSlice(path, 3004, 5000)), 3, 0)
    return result, b"A" * 3000 + b"B" * 5000


async def _sent(response: bytearray) -> bytes:
    left, right = socket.socketpair()
    sender = ClientSocket(left)
    receiver = trio.SocketStream(trio.socket.from_stdlib_socket(right))
    received = bytearray()
    async with trio.open_nursery() as nursery:

        async def send() -> None:
            await send_response(sender, response)
            sender.close()

        nursery.start_soon(send)
        while chunk := await receiver.receive_some(65536):
            received += chunk
    await receiver.aclose()
    return bytes(received)


@pytest.mark.parametrize("version", [4, 11, 12, 16])
async def test_spliced_response_sends_the_bytes_of_the_in_memory_one(
    tmp_path: Path, version: int
) -> None:
    result, raw = _slices(tmp_path)
    spliced = _encode(version, _response(result))
    assert spliced.holes and len(spliced) < len(raw)
    expected = _encode(version, _response(raw))
    assert not expected.holes
    assert await _sent(spliced) == bytes(expected)


def test_plain_buffers_read_record_sources(tmp_path: Path) -> None:
    result, raw = _slices(tmp_path)
    assert fetch_response.encode(_response(result), 12) == fetch_response.encode(_response(raw), 12)


async def test_a_shrunken_file_closes_the_response(tmp_path: Path) -> None:
    result, _raw = _slices(tmp_path)
    spliced = _encode(12, _response(result))
    (tmp_path / "00000000000000000000.log").write_bytes(b"short")
    left, right = socket.socketpair()
    with left, right, pytest.raises(ResponseTruncated):
        await send_response(ClientSocket(left), spliced)
