"""The pieces of kafkacompat.ops that need no broker: record counting from batch headers, the
observe hook's bounded series, value display, assignments and basic-auth parsing."""

from __future__ import annotations

import base64
import json
import struct
from types import SimpleNamespace
from typing import Any

from kafkacompat.ops.auth import basic_credentials
from kafkacompat.ops.browse import format_timestamp, show_bytes
from kafkacompat.ops.console import decode_assignment
from kafkacompat.ops.html import e, table, url
from kafkacompat.ops.request_metrics import RequestCounters
from kafkacompat.protocol.messages.produce_request import (
    PartitionProduceData,
    ProduceRequest,
    TopicProduceData,
)
from kafkacompat.protocol.messages.produce_response import (
    PartitionProduceResponse,
    ProduceResponse,
    TopicProduceResponse,
)
from kafkacompat.protocol.record_codec import Record, encode_batch


def batch(count: int, base: int = 0) -> bytes:
    return encode_batch([Record(base + i, 1000, b"k", b"v" * 10) for i in range(count)])


class FakeHandler:
    def __init__(self, name: str) -> None:
        self.name = name


def context(api_key: int) -> Any:
    return SimpleNamespace(header=SimpleNamespace(request_api_key=api_key))


def produce(partitions: dict[tuple[str, int], bytes]) -> ProduceRequest:
    topics: dict[str, list[PartitionProduceData]] = {}
    for (topic, index), records in partitions.items():
        topics.setdefault(topic, []).append(PartitionProduceData(index, records))
    return ProduceRequest(acks=1, topic_data=[TopicProduceData(t, p) for t, p in topics.items()])


def response(errors: dict[tuple[str, int], int]) -> ProduceResponse:
    topics: dict[str, list[PartitionProduceResponse]] = {}
    for (topic, index), code in errors.items():
        topics.setdefault(topic, []).append(PartitionProduceResponse(index, code))
    return ProduceResponse(responses=[TopicProduceResponse(t, p) for t, p in topics.items()])


def test_the_hook_counts_produce_errors_and_refusals() -> None:
    counters = RequestCounters({0: FakeHandler("produce")}, max_partitions=10)  # type: ignore[dict-item]
    request = produce({("a", 0): batch(3), ("a", 1): batch(2), ("a", 2): batch(1)})
    answer = response({("a", 0): 0, ("a", 1): 10, ("a", 2): 6})
    counters.observe(context(0), request, answer, 0.002)
    assert [(a.name, a.requests) for a in counters.apis.values()] == [("Produce", 1)]
    assert counters.errors == {("Produce", 10): 1, ("Produce", 6): 1}
    assert counters.refusals == {10: 1}  # NOT_LEADER_OR_FOLLOWER is no validation refusal
    # acks=0: no response, nothing to count but the request.
    counters.observe(context(0), produce({("a", 1): batch(4)}), None, 0.001)
    assert counters.apis[0].requests == 2
    assert counters.errors == {("Produce", 10): 1, ("Produce", 6): 1}


def test_errors_are_found_at_any_depth_of_other_responses() -> None:
    from kafkacompat.protocol.messages.delete_topics_response import (
        DeletableTopicResult,
        DeleteTopicsResponse,
    )

    counters = RequestCounters({20: FakeHandler("delete_topics")}, max_partitions=10)  # type: ignore[dict-item]
    answer = DeleteTopicsResponse(
        responses=[DeletableTopicResult(name="x", error_code=3), DeletableTopicResult(name="y")]
    )
    counters.observe(context(20), None, answer, 0.0)
    assert counters.errors == {("DeleteTopics", 3): 1}


def test_errors_are_found_in_nested_messages_and_not_in_lists_of_numbers() -> None:
    from kafkacompat.protocol.messages.consumer_group_heartbeat_response import (
        Assignment,
        ConsumerGroupHeartbeatResponse,
    )
    from kafkacompat.protocol.messages.metadata_response import (
        MetadataResponse,
        MetadataResponseBroker,
        MetadataResponsePartition,
        MetadataResponseTopic,
    )

    counters = RequestCounters(
        {3: FakeHandler("metadata"), 68: FakeHandler("consumer_group_heartbeat")},  # type: ignore[dict-item]
        max_partitions=10,
    )
    partitions = [
        MetadataResponsePartition(error_code=code, partition_index=i, replica_nodes=[0, 1])
        for i, code in enumerate((0, 9, 9))
    ]
    answer = MetadataResponse(
        brokers=[MetadataResponseBroker(0, "h", 9092)],
        topics=[MetadataResponseTopic(name="a", partitions=partitions), MetadataResponseTopic(3)],
    )
    counters.observe(context(3), None, answer, 0.0)
    assert counters.errors == {("Metadata", 9): 2, ("Metadata", 3): 1}
    counters.observe(context(68), None, ConsumerGroupHeartbeatResponse(error_code=25), 0.0)
    counters.observe(
        context(68), None, ConsumerGroupHeartbeatResponse(assignment=Assignment()), 0.0
    )
    assert counters.errors[("ConsumerGroupHeartbeat", 25)] == 1
    assert counters.apis[68].requests == 2


def test_values_show_as_json_text_or_hex() -> None:
    kind, shown = show_bytes(json.dumps({"a": [1, 2]}).encode())
    assert kind == "json" and json.loads(shown) == {"a": [1, 2]} and "\n" in shown
    assert show_bytes(b"hello world") == ("text", "hello world")
    assert show_bytes(b"\x00\x01\xff") == ("hex", "0001 ff")
    assert show_bytes(b"42") == ("text", "42")
    assert show_bytes(b"42", "json") == ("json", "42")
    assert show_bytes(b"hi", "hex") == ("hex", "6869")
    assert show_bytes(None) == ("null", "null")
    assert format_timestamp(0) == "1970-01-01 00:00:00.000 UTC"
    assert format_timestamp(-1) == "-"


def test_consumer_assignments_are_decoded() -> None:
    data = struct.pack(">hih", 0, 2, 1) + b"a" + struct.pack(">iii", 2, 0, 3)
    data += struct.pack(">h", 2) + b"bb" + struct.pack(">i", 0) + struct.pack(">i", -1)
    assert decode_assignment(data) == {"a": [0, 3], "bb": []}
    assert decode_assignment(b"\x00") == {}


def test_basic_credentials() -> None:
    token = base64.b64encode(b"alice:s3:cret").decode()
    assert basic_credentials(f"Basic {token}") == ("alice", "s3:cret")
    assert basic_credentials("Bearer x") is None
    assert basic_credentials("Basic !!!") is None
    assert basic_credentials("Basic " + base64.b64encode(b"nopassword").decode()) is None


def test_html_escapes_everything() -> None:
    assert e('<a href="x">') == "&lt;a href=&quot;x&quot;&gt;"
    assert url("topics", "a/b c") == "/topics/a%2Fb%20c"
    assert "<td>&lt;b&gt;</td>" in table(("h",), [("<b>",)])


def test_readiness_lists_what_is_missing(tmp_path: Any) -> None:
    from kafkacompat.broker.broker import Broker
    from kafkacompat.ops.health import Readiness
    from kafkacompat.testing import local_config

    broker = Broker(local_config(tmp_path / "data"))
    try:
        readiness = Readiness(broker)
        assert readiness.problems() == ["listeners not bound"]
        readiness.listeners_bound = True
        assert readiness.problems() == []
        readiness.checks["metadata current"] = False
        assert readiness.problems() == ["metadata current failed"]
    finally:
        broker.close()
