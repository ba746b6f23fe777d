"""Behaving like an older Kafka: the versions of an emulated release, capped per API, are what is
advertised and what is accepted, and stock clients negotiate down to them."""

from __future__ import annotations

import logging
import struct
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from kafkacompat.broker.api_versions import EMULATE_SETTING, MAX_VERSIONS_SETTING
from kafkacompat.broker.context import RequestContext
from kafkacompat.broker.kafka_releases import ADVERTISED_MIN, RELEASES
from kafkacompat.broker.router import registered_handlers
from kafkacompat.errors import ErrorCode
from kafkacompat.protocol.messages import api_versions_response
from kafkacompat.testing import BrokerThread, local_config, running_broker
from tests.integration.clients import (
    Message,
    consume_confluent,
    consume_kafka_python,
    produce_confluent,
)
from tests.integration.raw import RawClient
from tests.internals import internals

pytestmark = pytest.mark.integration

Ranges = dict[int, tuple[int, int]]


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Any]:
    """Starts a broker with the given settings; every one started is stopped after the test."""
    started: list[BrokerThread] = []

    def run(**settings: str) -> BrokerThread:
        data_dir = tmp_path / f"data{len(started)}"
        config = local_config(data_dir).with_settings(settings=settings)
        broker = BrokerThread(config).start()
        started.append(broker)
        return broker

    yield run
    for broker in started:
        broker.stop()


def advertised(port: int) -> Ranges:
    with RawClient(port) as client:
        client.request(18, 0, b"", correlation_id=3)
        frame = client.read_frame()
    response = api_versions_response.decode(memoryview(frame)[4:], 0)
    assert response.error_code == ErrorCode.NONE
    return {k.api_key: (k.min_version, k.max_version) for k in response.api_keys}


def accepted(broker: BrokerThread) -> Ranges:
    handlers = broker.running.broker.pipeline.handlers
    return {key: (h.min_version, h.max_version) for key, h in handlers.items()}


def served() -> Ranges:
    """What this broker serves without emulation (every registered handler)."""
    return {key: (h.min_version, h.max_version) for key, h in registered_handlers().items()}


def intersect(ours: Ranges, theirs: Mapping[int, tuple[int, int]]) -> Ranges:
    both = {
        key: (max(low, theirs[key][0]), min(high, theirs[key][1]))
        for key, (low, high) in ours.items()
        if key in theirs
    }
    return {key: (low, high) for key, (low, high) in both.items() if low <= high}


def api_requests_seen(broker: BrokerThread) -> list[tuple[int, int]]:
    """(API key, version) of every request the broker answers from now on."""
    seen: list[tuple[int, int]] = []

    def observe(context: RequestContext, request: Any, response: Any, elapsed: float) -> None:
        seen.append((context.header.request_api_key, context.api_version))

    broker.running.broker.pipeline.observe_hooks.append(observe)
    return seen


def closed_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "kafkacompat.server" and r.getMessage().startswith("closing connection")
    ]


@pytest.mark.parametrize("release", list(RELEASES))
def test_each_release_advertises_its_versions_that_we_serve(start: Any, release: str) -> None:
    broker = start(**{EMULATE_SETTING: release})
    expected = intersect(served(), RELEASES[release])
    assert accepted(broker) == expected
    shown = dict(expected)
    for key, low in ADVERTISED_MIN.get(release, {}).items():
        if key in shown:
            shown[key] = (max(low, served()[key][0]), shown[key][1])
    assert advertised(broker.port) == shown


def test_no_topic_ids_before_2_8(start: Any) -> None:
    """Metadata v10 (topic ids) arrives with 2.8, Fetch v13 (topic ids) with 3.1."""
    ranges = {release: advertised(start(**{EMULATE_SETTING: release}).port) for release in RELEASES}
    assert (ranges["2.7"][3], ranges["2.8"][3]) == ((0, 9), (0, 11))
    assert (ranges["3.0"][1], ranges["3.1"][1]) == ((0, 12), (0, 13))


def test_kafka_python_infers_2_8(start: Any) -> None:
    from kafka import KafkaAdminClient, KafkaConsumer

    broker = start(**{EMULATE_SETTING: "2.8"})
    internals(broker).create_topic("events", 1)
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        assert admin._client.check_version() == (2, 8)
        assert {int(k): tuple(v) for k, v in admin.api_versions().items()} == advertised(
            broker.port
        )
    finally:
        admin.close()
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap)
    try:
        assert consumer.config["api_version"] == (2, 8)
        assert consumer.topics() == {"events"}
    finally:
        consumer.close()


def test_confluent_produces_and_consumes_against_2_8(start: Any) -> None:
    broker = start(**{EMULATE_SETTING: "2.8"})
    internals(broker).create_topic("orders", 1)
    seen = api_requests_seen(broker)
    messages: list[Message] = [(f"k{i}".encode(), f"v{i}".encode(), []) for i in range(10)]
    reports = produce_confluent(broker.bootstrap, "orders", messages, "gzip")
    assert reports == [(0, i) for i in range(10)]
    consumed = consume_confluent(broker.bootstrap, "orders", 10)
    assert [(o, k, v) for o, k, v, _h in consumed] == [
        (i, f"k{i}".encode(), f"v{i}".encode()) for i in range(10)
    ]
    table = RELEASES["2.8"]
    assert {key for key, _v in seen} <= set(table)
    assert all(table[key][0] <= version <= table[key][1] for key, version in seen)


def test_fetch_capped_at_4_clients_negotiate_down(start: Any) -> None:
    broker = start(**{MAX_VERSIONS_SETTING: "Fetch=4"})
    assert advertised(broker.port)[1] == (0, 4)
    assert advertised(broker.port)[0] == served()[0]
    internals(broker).create_topic("capped", 1)
    messages: list[Message] = [(f"k{i}".encode(), f"v{i}".encode(), []) for i in range(10)]
    produce_confluent(broker.bootstrap, "capped", messages, "none")
    seen = api_requests_seen(broker)
    expected = [(i, f"k{i}".encode(), f"v{i}".encode()) for i in range(10)]
    by_kafka_python = consume_kafka_python(broker.bootstrap, "capped", 10)
    assert [(o, k, v) for o, k, v, _h in by_kafka_python] == expected
    by_confluent = consume_confluent(broker.bootstrap, "capped", 10)
    assert [(o, k, v) for o, k, v, _h in by_confluent] == expected
    assert {version for key, version in seen if key == 1} == {4}


def test_request_above_the_cap_is_refused_like_an_unsupported_version(
    start: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="kafkacompat.server")
    broker = start(**{MAX_VERSIONS_SETTING: "fetch=4,ApiVersions=2"})
    with RawClient(broker.port) as client:
        client.request(1, 5, b"", correlation_id=9)
        assert client.is_closed_by_peer()
    lines = closed_lines(caplog)
    assert len(lines) == 1, lines
    assert "fetch version 5 is not supported (0-4)" in lines[0]
    # ApiVersions above its cap: answered at v0 with UNSUPPORTED_VERSION and the capped ranges.
    with RawClient(broker.port) as client:
        client.request(18, 3, b"\x00\x00\x00", correlation_id=42, header_version=2)
        frame = client.read_frame()
        assert struct.unpack_from(">i", frame)[0] == 42
        response = api_versions_response.decode(memoryview(frame)[4:], 0)
        assert response.error_code == ErrorCode.UNSUPPORTED_VERSION
        ranges = {k.api_key: (k.min_version, k.max_version) for k in response.api_keys}
        assert ranges == {**served(), 1: (0, 4), 18: (0, 2)}
        client.request(18, 2, b"", correlation_id=43)
        assert struct.unpack_from(">i", client.read_frame())[0] == 43


def test_kafka_4_0_refuses_produce_v2_but_advertises_v0(
    start: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="kafkacompat.server")
    broker = start(**{EMULATE_SETTING: "4.0"})
    assert advertised(broker.port)[0] == (0, served()[0][1])
    assert advertised(broker.port)[1] == (4, served()[1][1])
    with RawClient(broker.port) as client:
        client.request(0, 2, b"", correlation_id=5)
        assert client.is_closed_by_peer()
    lines = closed_lines(caplog)
    assert len(lines) == 1, lines
    assert f"produce version 2 is not supported (3-{served()[0][1]})" in lines[0]
    # librdkafka, which needs Produce v0 advertised to compress (KAFKA-18659), still works.
    internals(broker).create_topic("modern", 1)
    messages: list[Message] = [(b"k", f"v{i}".encode(), []) for i in range(10)]
    reports = produce_confluent(broker.bootstrap, "modern", messages, "lz4")
    assert reports == [(0, i) for i in range(10)]
    assert [v for _o, _k, v, _h in consume_confluent(broker.bootstrap, "modern", 10)] == [
        f"v{i}".encode() for i in range(10)
    ]


def test_settings_from_the_pytest_plugin_and_the_command_line(tmp_path: Path) -> None:
    from kafkacompat.cli import build_parser, config_from_args
    from kafkacompat.config import ConfigError

    args = build_parser().parse_args(
        ["serve", "--emulate-kafka", "2.8", "--max-version", "Fetch=11", "--max-version", "x=1"]
    )
    with pytest.raises(ConfigError, match="expected API=VERSION"):
        config_from_args(args)
    args = build_parser().parse_args(
        [
            *("serve", "--data-dir", str(tmp_path), "--emulate-kafka", "2.8"),
            *("--max-version", "Fetch=11", "--max-version", "produce=7"),
        ]
    )
    config = config_from_args(args)
    assert config.get(EMULATE_SETTING) == "2.8"
    assert config.get(MAX_VERSIONS_SETTING) == "Fetch=11,produce=7"
    with running_broker(config.with_settings(listen=local_config(tmp_path).listen)) as broker:
        ranges = advertised(broker.port)
    assert (ranges[0], ranges[1], ranges[3]) == ((0, 7), (0, 11), (0, 11))


@pytest.mark.kafka_broker(settings={EMULATE_SETTING: "2.0"})
def test_the_pytest_marker_emulates(kafka_broker: Any) -> None:
    assert advertised(kafka_broker.port)[0] == (0, 6)
