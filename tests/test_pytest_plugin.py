"""The pytest plugin as our users meet it: their own test files, run by pytest in a subprocess."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

pytestmark = pytest.mark.integration

# A user's test module: create a topic, produce and consume with kafka-python, restart the broker
# and read the same data back.
USER_TESTS = """
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic


def produce(bootstrap, topic, values):
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for value in values:
        producer.send(topic, key=b"k", value=value, headers=[("h", b"1")])
    producer.flush(timeout=20)
    producer.close(timeout=5)


def consume(bootstrap, topic, count):
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    consumer.assign([TopicPartition(topic, 0)])
    consumer.seek_to_beginning()
    out = []
    for _ in range(40):
        for records in consumer.poll(timeout_ms=250).values():
            out += [(r.key, r.value, r.headers) for r in records]
        if len(out) >= count:
            break
    consumer.close()
    return out


def test_round_trip_and_restart(kafka_broker, kafka_bootstrap):
    assert kafka_bootstrap == kafka_broker.bootstrap
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    admin.create_topics([NewTopic("orders", num_partitions=1, replication_factor=1)])
    admin.close()
    produce(kafka_bootstrap, "orders", [b"one", b"two"])
    assert [v for _, v, _ in consume(kafka_bootstrap, "orders", 2)] == [b"one", b"two"]

    port, data_dir = kafka_broker.port, kafka_broker.data_dir
    kafka_broker.restart()
    assert (kafka_broker.port, kafka_broker.data_dir) == (port, data_dir)
    assert (data_dir / "orders-0").is_dir()
    assert consume(kafka_bootstrap, "orders", 2) == [
        (b"k", b"one", [("h", b"1")]),
        (b"k", b"two", [("h", b"1")]),
    ]


@pytest.mark.kafka_broker(mode="subprocess", settings={"num.partitions": 3})
def test_marker_subprocess(kafka_broker):
    assert kafka_broker.mode == "subprocess"
    produce(kafka_broker.bootstrap, "auto", [b"x"])
    consumer = KafkaConsumer(bootstrap_servers=kafka_broker.bootstrap)
    assert consumer.partitions_for_topic("auto") == {0, 1, 2}
    consumer.close()
    kafka_broker.restart()
    consumer = KafkaConsumer(bootstrap_servers=kafka_broker.bootstrap)
    assert consumer.partitions_for_topic("auto") == {0, 1, 2}
    consumer.close()


@pytest.mark.parametrize("kafka_broker", ["inprocess", "subprocess"], indirect=True)
def test_parametrized_mode(kafka_broker, request):
    assert kafka_broker.mode == request.node.callspec.params["kafka_broker"]
    produce(kafka_broker.bootstrap, "p", [b"v"])


def test_session_one(kafka_broker_session, kafka_bootstrap_session):
    produce(kafka_bootstrap_session, "shared", [b"a"])
    pytest.shared_port = kafka_broker_session.port


def test_session_two(kafka_broker_session):
    assert kafka_broker_session.port == pytest.shared_port
    assert [v for _, v, _ in consume(kafka_broker_session.bootstrap, "shared", 1)] == [b"a"]
"""


def test_user_suite_with_kafka_python(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user=USER_TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-v")
    result.assert_outcomes(passed=6)


def test_mode_from_ini_and_command_line(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nkafka_broker_mode = subprocess\n")
    pytester.makepyfile(
        test_mode="""
def test_mode(kafka_broker, pytestconfig):
    expected = pytestconfig.getoption("--kafka-broker-mode") or "subprocess"
    assert kafka_broker.mode == expected
    assert kafka_broker.process.pid > 0 if expected == "subprocess" else kafka_broker.thread
"""
    )
    pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--kafka-broker-mode=inprocess"
    )
    result.assert_outcomes(passed=1)


def test_bad_mode_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_bad="""
import pytest

@pytest.mark.kafka_broker(mode="docker")
def test_x(kafka_broker):
    pass
"""
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*mode must be one of*"])
