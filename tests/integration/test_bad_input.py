"""Bad input gets Kafka's answer (an error response, or the connection closed with one log line)
and the broker keeps serving everyone else."""

from __future__ import annotations

import logging
import struct

import pytest

from kafkacompat.errors import ErrorCode
from kafkacompat.protocol.messages import api_versions_response, metadata_request, metadata_response
from kafkacompat.protocol.messages.metadata_request import MetadataRequest
from kafkacompat.testing import BrokerThread, local_config, running_broker
from tests.integration.raw import RawClient
from tests.internals import internals

pytestmark = pytest.mark.integration


def api_versions_roundtrip(port: int) -> api_versions_response.ApiVersionsResponse:
    """A healthy client's request on a fresh connection: proves the broker still serves."""
    with RawClient(port) as client:
        client.request(18, 0, b"", correlation_id=99)
        frame = client.read_frame()
    assert struct.unpack_from(">i", frame)[0] == 99
    return api_versions_response.decode(memoryview(frame)[4:], 0)


def closed_log_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "kafkacompat.server" and r.getMessage().startswith("closing connection")
    ]


@pytest.mark.parametrize(
    ("description", "payload", "reason"),
    [
        ("oversize frame", struct.pack(">i", 104857601), "exceeds socket.request.max.bytes"),
        ("negative size", struct.pack(">i", -5), "negative frame size"),
        ("garbage header", struct.pack(">i", 3) + b"\x00\x03\x00", "malformed request header"),
        (
            "unknown api key",
            struct.pack(">i", 10) + struct.pack(">hhih", 999, 0, 1, -1),
            "unknown API key 999",
        ),
        (
            "schema known but not served",
            struct.pack(">i", 10) + struct.pack(">hhih", 40, 1, 1, -1),  # RenewDelegationToken
            "API key 40 is not served",
        ),
        (
            "unsupported metadata version",
            struct.pack(">i", 11) + struct.pack(">hhihb", 3, 99, 1, -1, 0),
            "version 99 is not supported",
        ),
        (
            "truncated metadata body",
            struct.pack(">i", 12) + struct.pack(">hhih", 3, 1, 1, -1) + b"\x00\x00",
            "malformed",
        ),
        (
            "lying array count",
            struct.pack(">i", 14) + struct.pack(">hhih", 3, 1, 1, -1) + struct.pack(">i", 1000),
            "array count exceeds the frame",
        ),
    ],
)
def test_connection_closed_with_one_log_line(
    broker: BrokerThread,
    caplog: pytest.LogCaptureFixture,
    description: str,
    payload: bytes,
    reason: str,
) -> None:
    caplog.set_level(logging.WARNING, logger="kafkacompat.server")
    with RawClient(broker.port) as bystander, RawClient(broker.port) as offender:
        offender.send_raw(payload)
        assert offender.is_closed_by_peer(), description
        # The broker keeps serving a connection opened before and one opened after.
        bystander.request(18, 0, b"", correlation_id=5)
        assert struct.unpack_from(">i", bystander.read_frame())[0] == 5
    assert api_versions_roundtrip(broker.port).error_code == ErrorCode.NONE
    lines = closed_log_lines(caplog)
    assert len(lines) == 1, lines
    assert reason in lines[0]


def test_oversize_frame_is_refused_before_its_body_is_read(tmp_path) -> None:  # type: ignore[no-untyped-def]
    config = local_config(tmp_path).with_settings(settings={"socket.request.max.bytes": 1000})
    with running_broker(config) as broker, RawClient(broker.port) as client:
        client.send_raw(struct.pack(">i", 1001) + b"x" * 100)
        assert client.is_closed_by_peer()
        with RawClient(broker.port) as ok:
            body = bytearray()
            metadata_request.ENCODERS[1](MetadataRequest(topics=None), body)
            ok.request(3, 1, bytes(body), correlation_id=3)
            frame = ok.read_frame()
        response = metadata_response.decode(memoryview(frame)[4:], 1)
        assert [b.node_id for b in response.brokers] == [1]


def test_api_versions_unsupported_version_answers_v0(broker: BrokerThread) -> None:
    with RawClient(broker.port) as client:
        # A future ApiVersions version: header v2 (flexible) and a body we do not know.
        client.request(18, 77, b"\x00", correlation_id=42, header_version=2)
        frame = client.read_frame()
        assert struct.unpack_from(">i", frame)[0] == 42
        response = api_versions_response.decode(memoryview(frame)[4:], 0)
        assert response.error_code == ErrorCode.UNSUPPORTED_VERSION
        served = {
            h.api_key: (h.min_version, h.max_version)
            for h in broker.running.broker.pipeline.handlers.values()
        }
        assert {k.api_key: (k.min_version, k.max_version) for k in response.api_keys} == served
        # The connection stays usable: the client retries at a version it now knows.
        client.request(18, 0, b"", correlation_id=43)
        assert struct.unpack_from(">i", client.read_frame())[0] == 43


def test_api_versions_rejects_bad_client_software_name(broker: BrokerThread) -> None:
    from kafkacompat.protocol.messages import api_versions_request

    body = bytearray()
    api_versions_request.ENCODERS[3](
        api_versions_request.ApiVersionsRequest("bad name!", "1.0"), body
    )
    with RawClient(broker.port) as client:
        client.request(18, 3, bytes(body), correlation_id=8, header_version=2)
        frame = client.read_frame()
    response = api_versions_response.decode(memoryview(frame)[4:], 3)
    assert response.error_code == ErrorCode.INVALID_REQUEST
    assert response.api_keys == []


def test_metadata_for_unknown_and_invalid_topics(broker: BrokerThread) -> None:
    from kafkacompat.protocol.messages.metadata_request import MetadataRequestTopic

    request = MetadataRequest(
        topics=[MetadataRequestTopic(name="no-such-topic"), MetadataRequestTopic(name="bad/name")],
        allow_auto_topic_creation=False,
    )
    body = bytearray()
    metadata_request.ENCODERS[9](request, body)
    with RawClient(broker.port) as client:
        client.request(3, 9, bytes(body), correlation_id=11, header_version=2)
        frame = client.read_frame()
    # Metadata v9 uses response header v1: correlation id, then empty tagged fields.
    assert frame[4] == 0
    response = metadata_response.decode(memoryview(frame)[5:], 9)
    assert [(t.name, t.error_code) for t in response.topics] == [
        ("no-such-topic", ErrorCode.UNKNOWN_TOPIC_OR_PARTITION),
        ("bad/name", ErrorCode.INVALID_TOPIC_EXCEPTION),
    ]
    assert internals(broker).find_topic("no-such-topic") is None
