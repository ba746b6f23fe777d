"""Limits that keep one client from hurting the others: partitions per request and per broker,
descriptors as a budget, and a client that stops reading its responses."""

from __future__ import annotations

import logging
import os
import resource
import socket
import struct
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from kafkacompat.errors import ErrorCode
from kafkacompat.protocol.messages import fetch_request, request_header
from kafkacompat.protocol.messages.create_partitions_request import (
    CreatePartitionsRequest,
    CreatePartitionsTopic,
)
from kafkacompat.protocol.messages.create_topics_request import CreatableTopic, CreateTopicsRequest
from kafkacompat.protocol.messages.delete_topics_request import DeleteTopicsRequest
from kafkacompat.protocol.messages.fetch_request import FetchPartition, FetchRequest, FetchTopic
from kafkacompat.protocol.messages.find_coordinator_request import FindCoordinatorRequest
from kafkacompat.protocol.messages.request_header import RequestHeader
from kafkacompat.testing import BrokerProcess, BrokerThread, local_config, running_broker
from tests.integration.raw import RawClient
from tests.integration.test_produce import produce, v2_batch
from tests.internals import internals

pytestmark = pytest.mark.integration

CREATE_TOPICS, DELETE_TOPICS, CREATE_PARTITIONS, FETCH = 19, 20, 37, 1
EXCESSIVE = "Excessively large number of partitions per request."


def create_topics(client: RawClient, *topics: tuple[str, int]) -> dict[str, tuple[int, str | None]]:
    request = CreateTopicsRequest(
        topics=[CreatableTopic(name, count, 1) for name, count in topics], timeout_ms=60_000
    )
    response = client.call(CREATE_TOPICS, 5, request)
    return {t.name: (t.error_code, t.error_message) for t in response.topics}


def test_a_request_for_over_10000_partitions_is_refused_whole(broker: BrokerThread) -> None:
    with RawClient(broker.port, timeout=30) as client:
        refused = create_topics(client, ("a", 6000), ("b", 4001))
        assert refused == {
            "a": (ErrorCode.POLICY_VIOLATION, EXCESSIVE),
            "b": (ErrorCode.POLICY_VIOLATION, EXCESSIVE),
        }
        assert create_topics(client, ("small", 2)) == {"small": (ErrorCode.NONE, None)}
        request = CreatePartitionsRequest(
            topics=[CreatePartitionsTopic("small", 10_003, None)], timeout_ms=60_000
        )
        response = client.call(CREATE_PARTITIONS, 3, request)
        assert [(r.name, r.error_code, r.error_message) for r in response.results] == [
            ("small", ErrorCode.POLICY_VIOLATION, EXCESSIVE)
        ]
    view = internals(broker)
    assert [t.name for t in view.list_topics()] == ["small"]
    assert view.find_topic("small").partitions == 2  # type: ignore[union-attr]
    assert sorted(p.name for p in view.data_dir.glob("*-*")) == ["small-0", "small-1"]


def test_max_broker_partitions_caps_creation_and_growth(tmp_path: Path) -> None:
    config = local_config(tmp_path / "data", settings={"max.broker.partitions": 10})
    with running_broker(config) as broker, RawClient(broker.port) as client:
        assert create_topics(client, ("eight", 8)) == {"eight": (ErrorCode.NONE, None)}
        (code, message) = create_topics(client, ("three", 3))["three"]
        assert code == ErrorCode.POLICY_VIOLATION
        assert message is not None and "max.broker.partitions (10)" in message
        request = CreatePartitionsRequest(
            topics=[CreatePartitionsTopic("eight", 11, None)], timeout_ms=60_000
        )
        (result,) = client.call(CREATE_PARTITIONS, 3, request).results
        assert result.error_code == ErrorCode.POLICY_VIOLATION
        assert create_topics(client, ("two", 2)) == {"two": (ErrorCode.NONE, None)}
        assert [t.name for t in internals(broker).list_topics()] == ["eight", "two"]


def test_a_client_that_does_not_read_is_closed_with_one_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="kafkacompat.server")
    config = local_config(tmp_path / "data", settings={"connections.send.timeout.ms": 300})
    with running_broker(config) as broker:
        internals(broker).create_topic("big", 1)
        with RawClient(broker.port) as writer:
            # More than loopback's socket buffers hold, so the send has to wait for the client.
            for _ in range(24):
                assert produce(writer, "big", v2_batch([b"x" * 900_000])).error_code == 0
        stalled = socket.socket()
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.connect(("127.0.0.1", broker.port))
        fetch = bytearray()
        request = FetchRequest(
            replica_id=-1,
            max_wait_ms=0,
            min_bytes=1,
            max_bytes=64 << 20,
            topics=[
                FetchTopic(
                    topic="big",
                    partitions=[
                        FetchPartition(partition=0, fetch_offset=0, partition_max_bytes=64 << 20)
                    ],
                )
            ],
        )
        request_header.ENCODERS[1](RequestHeader(FETCH, 4, 1, "stalled"), fetch)
        fetch_request.ENCODERS[4](request, fetch)
        stalled.sendall(struct.pack(">i", len(fetch)) + fetch)
        started = time.monotonic()
        # Others are served meanwhile, and the stalled client is cut off after the timeout.
        deadline = started + 5
        while time.monotonic() < deadline:
            lines = [r.getMessage() for r in caplog.records if "read nothing" in r.getMessage()]
            if lines:
                break
            with RawClient(broker.port) as other:
                assert produce(other, "big", v2_batch([b"y"])).error_code == 0
            time.sleep(0.05)
        closed_after = time.monotonic() - started
        stalled.close()
    assert len(lines) == 1, lines
    assert lines[0].startswith("closing connection from 127.0.0.1:")
    assert 0.3 <= closed_after < 3


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_ten_thousand_partitions_fit_a_4096_descriptor_limit(tmp_path: Path) -> None:
    with BrokerProcess(tmp_path / "data") as broker:
        resource.prlimit(broker.pid, resource.RLIMIT_NOFILE, (4096, 4096))
        with RawClient(broker.port) as client:
            # The group below needs __consumer_offsets: created first, its files counted in
            # the baseline.
            found = client.call(10, 3, FindCoordinatorRequest("sample", 0))
            assert found.error_code == ErrorCode.NONE
        start = open_fds(broker.pid)
        with RawClient(broker.port, timeout=120) as client:
            assert create_topics(client, ("wide", 10_000)) == {"wide": (ErrorCode.NONE, None)}
        sample = list(range(0, 10_000, 397))
        producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all"})
        for index in sample:
            producer.produce("wide", value=f"v{index}".encode(), key=b"k", partition=index)
        assert producer.flush(30) == 0
        consumer = Consumer(
            {
                "bootstrap.servers": broker.bootstrap,
                "group.id": "sample",
                "enable.auto.commit": False,
                "check.crcs": True,
            }
        )
        consumer.assign([TopicPartition("wide", i, 0) for i in sample])
        got: dict[int, bytes] = {}
        deadline = time.monotonic() + 60
        while len(got) < len(sample) and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                got[message.partition()] = message.value()
        consumer.close()
        assert got == {i: f"v{i}".encode() for i in sample}
        # New connections are still accepted and answered with 10,000 partitions hosted.
        clients = [RawClient(broker.port) for _ in range(500)]
        try:
            for n, client in enumerate(clients):
                client.send_frame(struct.pack(">hhih", 18, 0, n, -1))
            for n, client in enumerate(clients):
                assert struct.unpack_from(">i", client.read_frame())[0] == n
            assert open_fds(broker.pid) < 4096 - 64
        finally:
            for client in clients:
                client.close()
        with RawClient(broker.port, timeout=120) as client:
            response = client.call(DELETE_TOPICS, 4, DeleteTopicsRequest(topic_names=["wide"]))
            assert [r.error_code for r in response.responses] == [0]
        deadline = time.monotonic() + 10
        while open_fds(broker.pid) > start + 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert open_fds(broker.pid) <= start + 2
        assert "Traceback" not in broker.log_path.read_text()


def test_running_out_of_descriptors_anyway_is_one_clear_line(tmp_path: Path) -> None:
    with BrokerProcess(tmp_path / "data") as broker:
        with RawClient(broker.port) as client:
            assert create_topics(client, ("t", 1)) == {"t": (ErrorCode.NONE, None)}
            assert produce(client, "t", v2_batch([b"before"])).error_code == 0
        limit = open_fds(broker.pid) + 8
        resource.prlimit(broker.pid, resource.RLIMIT_NOFILE, (limit, 4096))
        crowd = [socket.create_connection(("127.0.0.1", broker.port)) for _ in range(30)]
        time.sleep(0.5)  # the accept loop meets EMFILE and retries
        for sock in crowd:
            sock.close()
        resource.prlimit(broker.pid, resource.RLIMIT_NOFILE, (4096, 4096))
        deadline = time.monotonic() + 10
        while True:
            try:
                with RawClient(broker.port, timeout=2) as client:
                    assert produce(client, "t", v2_batch([b"after"])).error_code == 0
                break
            except OSError:
                assert time.monotonic() < deadline
                time.sleep(0.2)
        log = broker.log_path.read_text()
    assert "accept returned EMFILE" in log
    assert "Traceback" not in log
