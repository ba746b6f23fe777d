"""A bare socket client for sending hand-made frames to the broker."""

from __future__ import annotations

import socket
import struct
from typing import Any

from kafkacompat.protocol.headers import request_header_version, response_header_version
from kafkacompat.protocol.messages import APIS, request_header
from kafkacompat.protocol.messages.request_header import RequestHeader


class RawClient:
    def __init__(self, port: int, timeout: float = 5.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_frame(self, body: bytes) -> None:
        self.sock.sendall(struct.pack(">i", len(body)) + body)

    def request(
        self,
        api_key: int,
        api_version: int,
        body: bytes,
        correlation_id: int = 7,
        header_version: int = 1,
    ) -> None:
        header = bytearray()
        request_header.ENCODERS[header_version](
            RequestHeader(api_key, api_version, correlation_id, "raw-test"), header
        )
        self.send_frame(bytes(header) + body)

    def call(self, api_key: int, version: int, request: Any, correlation_id: int = 11) -> Any:
        """Send a request with the header its version calls for; decode the whole response."""
        request_module, response_module = APIS[api_key]
        body = bytearray()
        request_module.ENCODERS[version](request, body)
        header_version = request_header_version(api_key, version)
        self.request(api_key, version, bytes(body), correlation_id, header_version)
        frame = memoryview(self.read_frame())
        assert struct.unpack_from(">i", frame)[0] == correlation_id
        pos = 4 + (1 if response_header_version(api_key, version) >= 1 else 0)
        response, end = response_module.DECODERS[version](frame, pos)
        assert end == len(frame), "trailing bytes after the response"
        return response

    def _read_exactly(self, size: int) -> bytes:
        data = bytearray()
        while len(data) < size:
            chunk = self.sock.recv(size - len(data))
            if not chunk:
                raise ConnectionError("closed by the broker")
            data += chunk
        return bytes(data)

    def read_frame(self) -> bytes:
        (size,) = struct.unpack(">i", self._read_exactly(4))
        return self._read_exactly(size)

    def is_closed_by_peer(self) -> bool:
        """True when the broker closed the connection (EOF or reset) before sending anything."""
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True
