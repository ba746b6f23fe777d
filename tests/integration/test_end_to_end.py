"""Produce with one stock client, consume with every other: exact keys, values, headers and
contiguous offsets, for every codec, across a broker restart too."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from kafkacompat.testing import BrokerThread, local_config, running_broker
from tests.integration.clients import (
    Consumed,
    Message,
    consume_aiokafka,
    consume_confluent,
    consume_kafka_python,
    consume_kcat,
    produce_aiokafka,
    produce_confluent,
    produce_kafka_python,
    produce_kcat,
)
from tests.integration.test_produce import BIG_VALUE, CODECS, MESSAGES
from tests.internals import internals

pytestmark = pytest.mark.integration

PRODUCERS: dict[str, Callable[[str, str, list[Message], str], object]] = {
    "kafka-python": produce_kafka_python,
    "aiokafka": produce_aiokafka,
    "confluent-kafka": produce_confluent,
}
CONSUMERS: dict[str, Callable[[str, str, int], list[Consumed]]] = {
    "kafka-python": consume_kafka_python,
    "aiokafka": consume_aiokafka,
    "confluent-kafka": consume_confluent,
}


def as_consumed(messages: list[Message]) -> list[Consumed]:
    return [(offset, k, v, list(h)) for offset, (k, v, h) in enumerate(messages)]


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("producer", list(PRODUCERS))
def test_every_client_reads_what_every_client_wrote(
    broker: BrokerThread, producer: str, codec: str
) -> None:
    topic = f"e2e-{producer}-{codec}"
    internals(broker).create_topic(topic, 1)
    PRODUCERS[producer](broker.bootstrap, topic, MESSAGES, codec)
    for name, consume in CONSUMERS.items():
        got = consume(broker.bootstrap, topic, len(MESSAGES))
        assert got == as_consumed(MESSAGES), f"{name} reading what {producer} wrote ({codec})"


@pytest.mark.parametrize("codec", CODECS)
def test_kcat_round_trip(broker: BrokerThread, codec: str) -> None:
    topic = f"kcat-{codec}"
    internals(broker).create_topic(topic, 1)
    # kcat -Z turns empty keys and values into nulls; its JSON output is text.
    messages: list[Message] = [
        (b"k1", b"first value", []),
        (None, b"no key", []),
        (b"tombstone", None, []),
        (b"big", BIG_VALUE, []),
        ("ключ".encode(), "значение".encode(), []),
    ]
    produce_kcat(broker.bootstrap, topic, messages, codec, headers=[("source", b"kcat")])
    expected = [(o, k, v, [("source", b"kcat")]) for o, k, v, _ in as_consumed(messages)]
    assert consume_kcat(broker.bootstrap, topic, len(messages)) == expected
    assert consume_confluent(broker.bootstrap, topic, len(messages)) == expected


def test_nothing_is_lost_across_a_restart(tmp_path: Path) -> None:
    config = local_config(tmp_path / "data")
    with running_broker(config) as broker:
        internals(broker).create_topic("durable", 1)
        produce_confluent(broker.bootstrap, "durable", MESSAGES, "lz4")
        produce_kafka_python(broker.bootstrap, "durable", MESSAGES[:2], "none")
    with running_broker(config) as broker:
        expected = as_consumed(MESSAGES + MESSAGES[:2])
        assert consume_kafka_python(broker.bootstrap, "durable", len(expected)) == expected
        assert consume_aiokafka(broker.bootstrap, "durable", len(expected)) == expected
        produce_aiokafka(broker.bootstrap, "durable", MESSAGES[:1], "gzip")
        expected += [(len(expected), *MESSAGES[0][:2], list(MESSAGES[0][2]))]
        assert consume_confluent(broker.bootstrap, "durable", len(expected)) == expected
