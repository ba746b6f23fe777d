"""Request and response headers, and the few places where Kafka bends its own header rules."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from types import ModuleType

from kafkacompat.errors import ProtocolError
from kafkacompat.protocol.messages import APIS, request_header
from kafkacompat.protocol.messages.api_versions_request import API_KEY as API_VERSIONS_KEY
from kafkacompat.protocol.messages.request_header import RequestHeader
from kafkacompat.protocol.primitives import DECODE_ERRORS, INT16, INT32, SplicedBuffer

#: Protocol quirks, in one place:
#: - ApiVersions responses always use header v0: a client reads the response before it knows
#:   which versions the broker speaks, so it cannot rely on the flexible header.
RESPONSE_HEADER_V0_APIS = frozenset({API_VERSIONS_KEY})
#: - A request for an ApiVersions version the broker does not know is answered at version 0
#:   with UNSUPPORTED_VERSION and the supported ranges, so the client can downgrade.
ANSWER_UNSUPPORTED_AT_V0_APIS = frozenset({API_VERSIONS_KEY})


class UnknownApiKey(ProtocolError):
    """A request whose API key this broker has no schema for."""


@dataclass(slots=True)
class RequestFrame:
    """A request split into its header and the undecoded body."""

    header: RequestHeader
    body: memoryview

    @property
    def api_key(self) -> int:
        return self.header.request_api_key

    @property
    def api_version(self) -> int:
        return self.header.request_api_version

    @property
    def correlation_id(self) -> int:
        return self.header.correlation_id


def is_flexible(module: ModuleType, version: int) -> bool:
    first: int | None = module.FIRST_FLEXIBLE_VERSION
    return first is not None and version >= first


#: (api_key, api_version) -> header version; bounded by the number of APIs and versions.
_REQUEST_HEADER_VERSIONS: dict[tuple[int, int], int] = {}
_RESPONSE_HEADER_VERSIONS: dict[tuple[int, int], int] = {}


def request_header_version(api_key: int, api_version: int) -> int:
    key = (api_key, api_version)
    version = _REQUEST_HEADER_VERSIONS.get(key)
    if version is None:
        version = 2 if is_flexible(APIS[api_key][0], api_version) else 1
        if len(_REQUEST_HEADER_VERSIONS) < 4096:
            _REQUEST_HEADER_VERSIONS[key] = version
    return version


def response_header_version(api_key: int, api_version: int) -> int:
    key = (api_key, api_version)
    version = _RESPONSE_HEADER_VERSIONS.get(key)
    if version is None:
        if api_key in RESPONSE_HEADER_V0_APIS:
            version = 0
        else:
            version = 1 if is_flexible(APIS[api_key][1], api_version) else 0
        if len(_RESPONSE_HEADER_VERSIONS) < 4096:
            _RESPONSE_HEADER_VERSIONS[key] = version
    return version


def parse_request(frame: memoryview) -> RequestFrame:
    """Split a request frame (without its size prefix) into header and body."""
    try:
        api_key = INT16.unpack_from(frame, 0)[0]
        api_version = INT16.unpack_from(frame, 2)[0]
        if api_key not in APIS:
            raise UnknownApiKey(f"unknown API key {api_key}")
        version = request_header_version(api_key, api_version)
        header, pos = request_header.DECODERS[version](frame, 0)
    except UnknownApiKey:
        raise
    except DECODE_ERRORS as exc:
        raise ProtocolError(f"malformed request header: {exc}") from exc
    return RequestFrame(header, frame[pos:])


def encode_response_header(api_key: int, api_version: int, correlation_id: int) -> bytes:
    """The response header; the caller prefixes the frame size."""
    if response_header_version(api_key, api_version) == 0:
        return INT32.pack(correlation_id)
    return INT32.pack(correlation_id) + b"\x00"


#: A response frame's size prefix and header v0 / v1 (no tagged fields), to fill in place.
FRAME_AND_HEADER_V0 = struct.Struct(">ii")
FRAME_AND_HEADER_V1 = struct.Struct(">iiB")


def start_response_frame(api_key: int, api_version: int, correlation_id: int) -> SplicedBuffer:
    """A buffer holding a placeholder frame size and the response header, for the body to follow.

    `finish_response_frame` writes the size once the body is encoded, so the response is built
    in one buffer and never copied to add its prefix. Record data given as a `RecordSource` is
    left out of the buffer (see `SplicedBuffer`) for the server to send from its source.
    """
    if response_header_version(api_key, api_version) == 0:
        return SplicedBuffer(FRAME_AND_HEADER_V0.pack(0, correlation_id))
    return SplicedBuffer(FRAME_AND_HEADER_V1.pack(0, correlation_id, 0))


def finish_response_frame(buffer: SplicedBuffer) -> SplicedBuffer:
    INT32.pack_into(buffer, 0, len(buffer) - 4 + buffer.hole_bytes)
    return buffer
