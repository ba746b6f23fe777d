"""/metrics, /healthz and /readyz of a live broker under real produce and consume load: exact
counters, read with the Prometheus client's own parser."""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Producer
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import MessageSizeTooLargeError
from kafka.structs import OffsetAndMetadata
from prometheus_client.parser import text_string_to_metric_families

from kafkacompat.broker.dispatch import TIME_ONE_REQUEST_IN
from kafkacompat.protocol.messages.produce_request import (
    PartitionProduceData,
    ProduceRequest,
    TopicProduceData,
)
from kafkacompat.protocol.record_codec import Record, encode_batch
from kafkacompat.testing import (
    BrokerThread,
    KafkaBroker,
    dev_config,
    local_config,
    running_broker,
)
from tests.integration.raw import RawClient
from tests.internals import internals

pytestmark = pytest.mark.integration

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[BrokerThread]:
    """A broker as `--dev` runs it: the HTTP listener on a free loopback port."""
    with running_broker(dev_config(tmp_path / "data")) as running:
        yield running


def get(broker: BrokerThread, path: str) -> tuple[int, str]:
    assert broker.http_address is not None
    try:
        with urllib.request.urlopen(f"http://{broker.http_address}{path}", timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def scrape(broker: BrokerThread) -> Samples:
    status, body = get(broker, "/metrics")
    assert status == 200
    samples: Samples = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def series(samples: Samples, name: str, **labels: str) -> dict[tuple[tuple[str, str], ...], float]:
    """The samples of ``name`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return {k: v for (n, k), v in samples.items() if n == name and wanted <= set(k)}


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def sampled(requests: float) -> int:
    """How many of an API's first ``requests`` requests the request time histograms time."""
    return -(-int(requests) // TIME_ONE_REQUEST_IN)


def produce_confluent(bootstrap: str, topic: str, counts: dict[int, int], size: int) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "acks": "all"})
    failures: list[object] = []
    for partition, count in counts.items():
        for i in range(count):
            producer.produce(
                topic,
                value=bytes([i % 251]) * size,
                key=f"k{i}".encode(),
                partition=partition,
                on_delivery=lambda err, _msg: failures.append(err) if err else None,
            )
        producer.poll(0)
    assert producer.flush(30) == 0
    assert failures == []


def test_healthz_and_readyz_answer_once_the_broker_serves(broker: BrokerThread) -> None:
    assert get(broker, "/healthz") == (200, "ok\n")
    assert get(broker, "/readyz") == (200, "ready\n")


def test_the_http_listener_is_off_unless_configured(tmp_path: Path) -> None:
    with running_broker(local_config(tmp_path / "data")) as plain:
        assert plain.http_address is None
    config = local_config(tmp_path / "other", settings={"http.listener": "127.0.0.1:0"})
    with running_broker(config) as served:
        assert served.http_address is not None and served.http_address.port > 0
        assert get(served, "/healthz")[0] == 200


def test_counters_and_lag_are_exact_under_produce_and_consume(broker: BrokerThread) -> None:
    topic = "metered"
    internals(broker).create_topic(topic, 3)
    counts = {0: 120, 1: 75, 2: 33}
    produce_confluent(broker.bootstrap, topic, counts, size=100)
    # A second producer, kafka-python, adds to partition 1 one request per message.
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=0)
    for i in range(7):
        producer.send(topic, value=b"x" * 10, partition=1, headers=[("n", str(i).encode())])
        producer.flush()
    producer.close()
    counts[1] += 7

    consumer = KafkaConsumer(
        bootstrap_servers=broker.bootstrap,
        group_id="metered-group",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    try:
        consumer.subscribe([topic])
        received = 0
        deadline = time.monotonic() + 30
        while received < sum(counts.values()) and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                received += len(records)
        assert received == sum(counts.values())
        committed = {0: 100, 1: 82, 2: 0}
        consumer.commit(
            {TopicPartition(topic, p): OffsetAndMetadata(o, None) for p, o in committed.items()}
        )

        samples = scrape(broker)
        for partition, count in counts.items():
            labels = {"topic": topic, "partition": str(partition)}
            assert (
                value(samples, "kafka_server_brokertopicmetrics_messagesin_total", **labels)
                == count
            )
            assert value(samples, "kafka_topic_partition_current_offset", **labels) == count
            assert value(samples, "kafka_topic_partition_oldest_offset", **labels) == 0
            # The log keeps produced batches byte for byte: bytes in is the log's size.
            size = value(samples, "kafka_log_log_size", **labels)
            assert size == internals(broker).partition(topic, partition).size_in_bytes
            assert value(samples, "kafka_server_brokertopicmetrics_bytesin_total", **labels) == size
            assert (
                value(samples, "kafka_server_brokertopicmetrics_bytesout_total", **labels) >= size
            )
            group = {"consumergroup": "metered-group", **labels}
            assert (
                value(samples, "kafka_consumergroup_current_offset", **group)
                == committed[partition]
            )
            assert (
                value(samples, "kafka_consumergroup_lag", **group) == count - committed[partition]
            )
        assert value(
            samples, "kafka_consumergroup_lag_sum", consumergroup="metered-group", topic=topic
        ) == sum(counts[p] - committed[p] for p in counts)
        assert value(samples, "kafka_consumergroup_members", consumergroup="metered-group") == 1
        assert value(samples, "kafka_topic_partitions", topic=topic) == 3
        assert value(samples, "kafka_brokers") == 1
        assert value(samples, "kafka_controller_kafkacontroller_activecontrollercount") == 1
        assert value(samples, "kafka_network_requestmetrics_requests_total", request="Produce") >= 7
        assert value(samples, "kafka_network_requestmetrics_requests_total", request="Fetch") >= 1
        assert series(samples, "kafka_network_requestmetrics_errors_total", request="Produce") == {}
        timed = value(
            samples, "kafka_network_requestmetrics_local_time_seconds_count", request="Produce"
        )
        assert timed == sampled(
            value(samples, "kafka_network_requestmetrics_requests_total", request="Produce")
        )
        open_now = value(
            samples, "kafka_server_socket_server_metrics_connection_count", listener="PLAINTEXT"
        )
        accepted = value(
            samples,
            "kafka_server_socket_server_metrics_connection_creation_total",
            listener="PLAINTEXT",
        )
        assert 1 <= open_now <= accepted
    finally:
        consumer.close()


def test_produce_refusals_are_counted_by_error(broker: BrokerThread) -> None:
    topic = "small-messages"
    internals(broker).create_topic(topic, 1, {"max.message.bytes": "200"})
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, retries=0, linger_ms=0)
    try:
        with pytest.raises(MessageSizeTooLargeError):
            producer.send(topic, value=b"y" * 1000).get(timeout=10)
        producer.send(topic, value=b"fits").get(timeout=10)
    finally:
        producer.close()
    samples = scrape(broker)
    assert (
        value(samples, "kafkacompat_produce_validation_refusals_total", error="MESSAGE_TOO_LARGE")
        == 1
    )
    assert (
        value(
            samples,
            "kafka_network_requestmetrics_errors_total",
            request="Produce",
            error="MESSAGE_TOO_LARGE",
        )
        == 1
    )
    labels = {"topic": topic, "partition": "0"}
    assert value(samples, "kafka_server_brokertopicmetrics_messagesin_total", **labels) == 1


def test_records_in_count_every_record_of_a_batch_and_legacy_messages(
    broker: BrokerThread,
) -> None:
    """A batch of 7 records counts 7; kafka-python at api_version 0.10 sends magic-1 message
    sets, each message counted once."""
    internals(broker).create_topic("counted", 2)
    now = int(time.time() * 1000)
    seven = encode_batch([Record(i, now, None, b"a") for i in range(7)])
    request = ProduceRequest(
        acks=1,
        timeout_ms=5000,
        topic_data=[TopicProduceData("counted", [PartitionProduceData(0, seven)])],
    )
    with RawClient(broker.port) as client:
        answer = client.call(0, 9, request)
    assert answer.responses[0].partition_responses[0].error_code == 0
    legacy = KafkaProducer(
        bootstrap_servers=broker.bootstrap, api_version=(0, 10, 1), linger_ms=50, batch_size=1 << 16
    )
    try:
        for i in range(5):
            legacy.send("counted", value=b"m%d" % i, partition=1)
        legacy.flush(10)
    finally:
        legacy.close()
    samples = scrape(broker)
    messages = "kafka_server_brokertopicmetrics_messagesin_total"
    assert value(samples, messages, topic="counted", partition="0") == 7
    assert value(samples, messages, topic="counted", partition="1") == 5
    assert value(
        samples, "kafka_server_brokertopicmetrics_bytesin_total", topic="counted", partition="0"
    ) == len(seven)


def test_long_polling_fetches_are_shown_while_they_wait(broker: BrokerThread) -> None:
    topic = "quiet"
    internals(broker).create_topic(topic, 1)
    consumer = KafkaConsumer(
        bootstrap_servers=broker.bootstrap, fetch_max_wait_ms=30000, request_timeout_ms=40000
    )
    consumer.assign([TopicPartition(topic, 0)])
    consumer.seek(TopicPartition(topic, 0), 0)
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            consumer.poll(timeout_ms=200)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    try:
        waiting = 0.0
        deadline = time.monotonic() + 20
        while waiting < 1 and time.monotonic() < deadline:
            samples = scrape(broker)
            waiting = value(
                samples,
                "kafka_server_delayedoperationpurgatory_purgatorysize",
                delayedOperation="Fetch",
            )
            time.sleep(0.1)
        assert waiting == 1
    finally:
        stop.set()
        poller.join(10)
        consumer.close()


def test_partition_series_are_bounded_by_a_setting(tmp_path: Path) -> None:
    config = dev_config(tmp_path / "data", **{"metrics.max.partitions": 2})
    with running_broker(config) as broker:
        topic = "wide"
        internals(broker).create_topic(topic, 4)
        counts = {0: 5, 1: 6, 2: 7, 3: 8}
        produce_confluent(broker.bootstrap, topic, counts, size=10)
        samples = scrape(broker)
        offsets = series(samples, "kafka_topic_partition_current_offset")
        assert len(offsets) == 2
        assert value(samples, "kafkacompat_metrics_partitions_omitted") == 2
        messages = series(samples, "kafka_server_brokertopicmetrics_messagesin_total")
        assert len(messages) == 3  # two partitions of their own, the rest added up
        assert sum(messages.values()) == sum(counts.values())
        overflow = value(
            samples,
            "kafka_server_brokertopicmetrics_messagesin_total",
            topic="_overflow",
            partition="-1",
        )
        assert overflow in (5 + 6, 5 + 7, 5 + 8, 6 + 7, 6 + 8, 7 + 8)


def test_a_dev_subprocess_broker_logs_and_serves_its_http_listener(tmp_path: Path) -> None:
    with KafkaBroker(tmp_path / "data", mode="subprocess") as broker:
        address = broker.http_address
        assert address is not None
        assert f"http listening on {address}" in broker.process.log_path.read_text()
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap)
        for _ in range(3):
            producer.send("from-cli", value=b"v", partition=0)
        producer.flush()
        producer.close()
        with urllib.request.urlopen(f"http://{address}/metrics", timeout=10) as response:
            body = response.read().decode()
        families = {f.name: f for f in text_string_to_metric_families(body)}
        samples = {
            tuple(sorted(s.labels.items())): s.value
            for s in families["kafka_server_brokertopicmetrics_messagesin"].samples
        }
        assert samples == {(("partition", "0"), ("topic", "from-cli")): 3}


def test_cleaner_progress_of_a_compacted_topic(broker: BrokerThread) -> None:
    topic = "compacted"
    configs = {
        "cleanup.policy": "compact",
        "segment.bytes": "2048",
        "min.cleanable.dirty.ratio": "0.01",
    }
    internals(broker).create_topic(topic, 1, configs)
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=0)
    for i in range(60):
        producer.send(topic, key=f"key-{i % 5}".encode(), value=b"v" * 100, partition=0)
        producer.flush()
    producer.close()
    labels = {"topic": topic, "partition": "0"}
    before = scrape(broker)
    assert value(before, "kafkacompat_log_cleaner_first_dirty_offset", **labels) == 0
    assert value(before, "kafkacompat_log_cleaner_dirty_offsets", **labels) == 60
    cleaned = broker.call(broker.running.broker.cleaner.clean_now)
    assert cleaned, "nothing was cleaned"
    after = scrape(broker)
    first_dirty = value(after, "kafkacompat_log_cleaner_first_dirty_offset", **labels)
    assert first_dirty == cleaned[0].end_offset > 0
    assert value(after, "kafkacompat_log_cleaner_dirty_offsets", **labels) == 60 - first_dirty
