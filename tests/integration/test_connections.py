"""Connection handling: idle connections are closed, pipelined requests are answered in order,
and a client that keeps its connection full does not starve the others."""

from __future__ import annotations

import logging
import socket
import struct
import threading
import time
from pathlib import Path

import pytest

from kafkacompat.errors import ErrorCode
from kafkacompat.protocol.messages import produce_request, request_header
from kafkacompat.protocol.messages.create_topics_request import CreatableTopic, CreateTopicsRequest
from kafkacompat.protocol.messages.produce_request import (
    PartitionProduceData,
    ProduceRequest,
    TopicProduceData,
)
from kafkacompat.protocol.messages.request_header import RequestHeader
from kafkacompat.protocol.record_codec import Record, encode_batch
from kafkacompat.testing import BrokerProcess, local_config, running_broker
from tests.integration.raw import RawClient

pytestmark = pytest.mark.integration

API_VERSIONS = 18


def _api_versions_frame(correlation_id: int) -> bytes:
    body = struct.pack(">hhih", API_VERSIONS, 0, correlation_id, -1)
    return struct.pack(">i", len(body)) + body


def _correlation_id(frame: bytes) -> int:
    return int(struct.unpack_from(">i", frame)[0])


def test_idle_connection_is_closed_after_connections_max_idle_ms(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="kafkacompat.server")
    config = local_config(tmp_path / "data", settings={"connections.max.idle.ms": 400})
    with (
        running_broker(config) as broker,
        RawClient(broker.port) as idle,
        RawClient(broker.port) as busy,
    ):
        started = time.monotonic()
        # The busy connection keeps talking for longer than the idle limit and stays open.
        while time.monotonic() - started < 1.0:
            busy.send_raw(_api_versions_frame(5))
            assert _correlation_id(busy.read_frame()) == 5
            time.sleep(0.05)
        assert idle.is_closed_by_peer()
        closed_after = time.monotonic() - started
        busy.send_raw(_api_versions_frame(6))
        assert _correlation_id(busy.read_frame()) == 6
    assert 0.4 <= closed_after <= 1.5
    idle_lines = [r.getMessage() for r in caplog.records if "idle for over" in r.getMessage()]
    assert len(idle_lines) == 1


def test_pipelined_requests_are_answered_in_order(tmp_path: Path) -> None:
    with running_broker(local_config(tmp_path / "data")) as broker, RawClient(broker.port) as c:
        c.send_raw(b"".join(_api_versions_frame(i) for i in range(500)))
        assert [_correlation_id(c.read_frame()) for _ in range(500)] == list(range(500))


def _acks0_produce_frame(topic: str) -> bytes:
    """A Produce v9 request with acks=0 (no response) of one small record."""
    batch = encode_batch([Record(0, 1_700_000_000_000, None, b"flood")])
    request = ProduceRequest(
        transactional_id=None,
        acks=0,
        timeout_ms=30000,
        topic_data=[TopicProduceData(topic, [PartitionProduceData(0, batch)])],
    )
    body = bytearray()
    request_header.ENCODERS[2](RequestHeader(0, 9, 1, "flooder"), body)
    produce_request.ENCODERS[9](request, body)
    return struct.pack(">i", len(body)) + body


def test_a_flooding_client_does_not_starve_another(tmp_path: Path) -> None:
    """A connection whose socket is never empty (acks=0 produce requests, which get no answer,
    sent without pause) must still let another connection be answered. The broker runs as a
    subprocess, so the flooding thread does not share its interpreter lock."""
    with BrokerProcess(tmp_path / "data", dev=False) as broker:
        with RawClient(broker.port) as admin:
            created = admin.call(
                19, 5, CreateTopicsRequest(topics=[CreatableTopic("flood", 1, 1)], timeout_ms=5000)
            )
        assert [t.error_code for t in created.topics] == [ErrorCode.NONE]
        stop = threading.Event()
        closed_early: list[OSError] = []
        burst = _acks0_produce_frame("flood") * 500
        flooder = RawClient(broker.port, timeout=10)

        def send_forever() -> None:
            try:
                while not stop.is_set():
                    flooder.send_raw(burst)
            except OSError as exc:
                if not stop.is_set():
                    closed_early.append(exc)

        thread = threading.Thread(target=send_forever)
        thread.start()
        try:
            time.sleep(0.3)
            latencies = []
            with RawClient(broker.port) as other:
                for n in range(20):
                    sent = time.monotonic()
                    other.send_raw(_api_versions_frame(1000 + n))
                    assert _correlation_id(other.read_frame()) == 1000 + n
                    latencies.append(time.monotonic() - sent)
        finally:
            stop.set()
            flooder.sock.shutdown(socket.SHUT_RDWR)
            thread.join(timeout=10)
            flooder.close()
        assert closed_early == []
        assert max(latencies) < 1.0


def test_a_request_arriving_slowly_is_not_idle(tmp_path: Path) -> None:
    """Idle time counts from the last bytes received, not from the start of the request."""
    config = local_config(tmp_path / "data", settings={"connections.max.idle.ms": 400})
    frame = _api_versions_frame(9)
    with running_broker(config) as broker, RawClient(broker.port) as slow:
        started = time.monotonic()
        for byte in frame:
            slow.send_raw(bytes([byte]))
            time.sleep(0.1)
        assert time.monotonic() - started > 1.0  # well past the idle limit in total
        assert _correlation_id(slow.read_frame()) == 9
