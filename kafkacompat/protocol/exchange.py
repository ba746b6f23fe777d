"""One request/response exchange as bytes: a client's side of the framing, over the generated
codecs (the blocking admin client and the brokers' own client share it)."""

from __future__ import annotations

import struct
from typing import Any

from kafkacompat.protocol.headers import request_header_version, response_header_version
from kafkacompat.protocol.messages import APIS, request_header, response_header
from kafkacompat.protocol.messages.request_header import RequestHeader

__all__ = ["ExchangeError", "decode_response", "encode_request", "highest_version"]

_SIZE = struct.Struct(">i")


class ExchangeError(ConnectionError):
    """A response that does not belong to the request sent (the connection is unusable)."""


def highest_version(api_key: int) -> int:
    """The newest stable version of an API that this code speaks."""
    module = APIS[api_key][0]
    return int(module.MAX_VERSION) - (1 if module.LATEST_VERSION_UNSTABLE else 0)


def encode_request(
    api_key: int, version: int, correlation_id: int, client_id: str | None, request: Any
) -> bytes:
    """The request's frame, size prefix included."""
    body = bytearray()
    header = RequestHeader(api_key, version, correlation_id, client_id)
    request_header.ENCODERS[request_header_version(api_key, version)](header, body)
    APIS[api_key][0].ENCODERS[version](request, body)
    return _SIZE.pack(len(body)) + body


def decode_response(api_key: int, version: int, frame: memoryview, correlation_id: int) -> Any:
    """The response in ``frame`` (without its size prefix), checked to answer
    ``correlation_id``."""
    decode_header = response_header.DECODERS[response_header_version(api_key, version)]
    parsed, pos = decode_header(frame, 0)
    if parsed.correlation_id != correlation_id:
        raise ExchangeError("response does not match the request")
    response, _ = APIS[api_key][1].DECODERS[version](frame, pos)
    return response
