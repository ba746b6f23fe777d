"""The timing metrics of a live broker under real clients: request queue, local, send and total
times per API (one request in 16 timed, every one counted), partition flush times and
per-cleaning statistics, counted exactly and read with the Prometheus client's own parser."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from kafkacompat.broker.dispatch import TIME_ONE_REQUEST_IN
from kafkacompat.testing import BrokerThread, dev_config, local_config, running_broker
from tests.integration.test_metrics import (
    Samples,
    get,
    produce_confluent,
    sampled,
    series,
    value,
)
from tests.internals import internals

pytestmark = pytest.mark.integration

REQUEST_TIMES = (
    "kafka_network_requestmetrics_request_queue_time_seconds",
    "kafka_network_requestmetrics_local_time_seconds",
    "kafka_network_requestmetrics_response_send_time_seconds",
    "kafka_network_requestmetrics_total_time_seconds",
)
FLUSH = "kafka_log_logflushstats_logflush_seconds"
CLEAN = "kafkacompat_log_cleaner_clean_time_seconds"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[BrokerThread]:
    """A `--dev` broker whose background cleaner only runs when a test asks it to."""
    config = dev_config(tmp_path / "data", **{"log.cleaner.backoff.ms": 3_600_000})
    with running_broker(config) as running:
        yield running


def scrape_typed(broker: BrokerThread) -> tuple[Samples, dict[str, str]]:
    """The samples and each family's type, as the Prometheus parser reads them."""
    status, body = get(broker, "/metrics")
    assert status == 200
    samples: Samples = {}
    types: dict[str, str] = {}
    for family in text_string_to_metric_families(body):
        types[family.name] = family.type
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples, types


def test_queue_local_send_and_total_times_cover_the_sampled_requests(broker: BrokerThread) -> None:
    topic = "timed"
    internals(broker).create_topic(topic, 2)
    produce_confluent(broker.bootstrap, topic, {0: 300, 1: 200}, size=1024)
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=0)
    for i in range(5):
        producer.send(topic, value=b"x" * 10, partition=0, key=str(i).encode()).get(timeout=10)
    producer.close()
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=broker.bootstrap,
        group_id="timed-group",
        auto_offset_reset="earliest",
        fetch_max_wait_ms=100,
    )
    received = 0
    deadline = time.monotonic() + 30
    while received < 505 and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=500).values():
            received += len(records)
    consumer.close()  # every request answered before the scrape
    assert received == 505

    samples, types = scrape_typed(broker)
    for name in REQUEST_TIMES:
        assert types[name] == "histogram"
    requests = series(samples, "kafka_network_requestmetrics_requests_total")
    assert {"Produce", "Fetch", "Metadata", "ApiVersions", "JoinGroup"} <= {
        dict(labels)["request"] for labels in requests
    }
    for labels, handled in requests.items():
        request = dict(labels)["request"]
        timed = sampled(handled)
        for name in REQUEST_TIMES:
            assert value(samples, f"{name}_count", request=request) == timed, (name, request)
            assert value(samples, f"{name}_bucket", request=request, le="+Inf") == timed
    for request in ("Produce", "Fetch"):
        queue, local, send, total = (
            value(samples, f"{name}_sum", request=request) for name in REQUEST_TIMES
        )
        assert queue > 0 and local > 0 and send > 0
        # Total time covers the queue, the handling (decode to encode) and the send.
        assert total == pytest.approx(queue + local + send)


def test_every_request_is_counted_and_one_in_sixteen_timed(broker: BrokerThread) -> None:
    topic = "sampled"
    internals(broker).create_topic(topic, 1)
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=0)
    for _ in range(40):  # one Produce request each
        producer.send(topic, value=b"x" * 10, partition=0).get(timeout=10)
    producer.close()
    samples, types = scrape_typed(broker)
    assert types["kafka_network_requestmetrics_requests"] == "counter"
    assert value(samples, "kafka_network_requestmetrics_requests_total", request="Produce") == 40
    labels = {"topic": topic, "partition": "0"}
    assert value(samples, "kafka_server_brokertopicmetrics_messagesin_total", **labels) == 40
    assert TIME_ONE_REQUEST_IN == 16
    for name in REQUEST_TIMES:
        # Requests 1, 17 and 33 of the 40.
        assert value(samples, f"{name}_count", request="Produce") == 3, name
        assert value(samples, f"{name}_bucket", request="Produce", le="+Inf") == 3, name


def test_every_flush_is_timed(broker: BrokerThread) -> None:
    topic = "flushed"
    internals(broker).create_topic(topic, 1, {"flush.messages": "1"})
    internals(broker).create_topic("unflushed", 1)
    before, types = scrape_typed(broker)
    assert types[FLUSH] == "histogram"
    assert value(before, f"{FLUSH}_count") == 0
    # One message per request: each Produce appends once and flush.messages=1 flushes each.
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=0, acks="all")
    for i in range(9):
        producer.send(topic, value=b"v" * 100, key=str(i).encode()).get(timeout=10)
        producer.send("unflushed", value=b"v" * 100).get(timeout=10)
    producer.close()
    after, _ = scrape_typed(broker)
    assert value(after, f"{FLUSH}_count") == 9
    assert value(after, f"{FLUSH}_bucket", le="+Inf") == 9
    assert value(after, f"{FLUSH}_sum") > 0
    # Batched by librdkafka: one flush per Produce request, however many records it holds.
    produce_before = value(after, "kafka_network_requestmetrics_requests_total", request="Produce")
    produce_confluent(broker.bootstrap, topic, {0: 2000}, size=200)
    final, _ = scrape_typed(broker)
    produced = (
        value(final, "kafka_network_requestmetrics_requests_total", request="Produce")
        - produce_before
    )
    assert 1 <= produced < 2000
    assert value(final, f"{FLUSH}_count") == 9 + produced
    assert value(final, f"{FLUSH}_sum") > value(after, f"{FLUSH}_sum")


def compacted_topic(broker: BrokerThread, topic: str, messages: int) -> None:
    configs = {
        "cleanup.policy": "compact",
        "segment.bytes": "2048",
        "min.cleanable.dirty.ratio": "0.01",
    }
    internals(broker).create_topic(topic, 1, configs)
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=0)
    for i in range(messages):
        producer.send(topic, key=f"key-{i % 5}".encode(), value=b"v" * 100, partition=0)
        producer.flush()
    producer.close()


def test_cleaning_statistics_match_the_cleanings(broker: BrokerThread) -> None:
    compacted_topic(broker, "compacted", 60)
    before, types = scrape_typed(broker)
    assert types[CLEAN] == "histogram"
    assert types["kafka_log_logcleaner_max_clean_time_secs"] == "gauge"
    assert types["kafka_log_logcleaner_cleaner_recopy_percent"] == "gauge"
    assert types["kafkacompat_log_cleaner_bytes_read"] == "counter"
    assert value(before, f"{CLEAN}_count") == 0
    assert value(before, "kafka_log_logcleaner_max_clean_time_secs") == 0

    cleaned = broker.call(broker.running.broker.cleaner.clean_now)
    assert len(cleaned) == 1
    stats = cleaned[0]
    after, _ = scrape_typed(broker)
    assert value(after, f"{CLEAN}_count") == 1
    assert value(after, f"{CLEAN}_sum") == stats.seconds > 0
    assert value(after, "kafka_log_logcleaner_max_clean_time_secs") == stats.seconds
    assert value(after, "kafkacompat_log_cleaner_bytes_read_total") == stats.bytes_read > 0
    assert value(after, "kafkacompat_log_cleaner_bytes_written_total") == stats.bytes_written
    assert 0 < stats.bytes_written < stats.bytes_read
    assert value(after, "kafkacompat_log_cleaner_records_read_total") == stats.records_read
    assert value(after, "kafkacompat_log_cleaner_records_kept_total") == stats.records_kept
    recopy = value(after, "kafka_log_logcleaner_cleaner_recopy_percent")
    assert recopy == pytest.approx(100 * stats.bytes_written / stats.bytes_read)
    assert 0 < recopy < 100


def test_the_background_cleaner_reports_each_cleaning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="kafkacompat.cleaner")
    config = dev_config(tmp_path / "data", **{"log.cleaner.backoff.ms": 100})
    with running_broker(config) as broker:
        compacted_topic(broker, "compacted-bg", 80)
        deadline = time.monotonic() + 30
        while True:
            # The hook and the log line come from one step on the loop: a scrape between two
            # counts of the log lines sees as many cleanings as both when they agree.
            logged = _cleanings_logged(caplog, "compacted-bg-0")
            samples, _ = scrape_typed(broker)
            counted = value(samples, f"{CLEAN}_count")
            settled = counted >= 1 and logged == counted == _cleanings_logged(
                caplog, "compacted-bg-0"
            )
            if settled or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert settled, (logged, counted)
        assert value(samples, f"{CLEAN}_sum") > 0
        assert value(samples, "kafka_log_logcleaner_max_clean_time_secs") > 0
        assert value(samples, "kafkacompat_log_cleaner_bytes_read_total") > value(
            samples, "kafkacompat_log_cleaner_bytes_written_total"
        )


def _cleanings_logged(caplog: pytest.LogCaptureFixture, name: str) -> int:
    return sum(
        1
        for record in caplog.records
        if record.name == "kafkacompat.cleaner"
        and record.getMessage().startswith(f"cleaned {name}:")
    )


def test_no_hook_is_set_without_the_http_listener(tmp_path: Path) -> None:
    with running_broker(local_config(tmp_path / "data")) as plain:
        broker = plain.running.broker
        assert broker.pipeline.observe_hooks == []
        assert broker.pipeline.connection_hooks == []
        assert broker.partitions.flush_hooks == []
        assert broker.cleaner.on_cleaned is None
