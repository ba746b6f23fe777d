"""Parity with an independent implementation: kafka-python's protocol classes.

Requests are encoded by kafka-python and decoded by us; responses are encoded by us and decoded by
kafka-python; both sides must agree on every value and on the exact bytes, at every version both
implementations know (flexible versions included).
"""

from __future__ import annotations

import dataclasses
import io
import uuid
from typing import Any

import pytest

from kafkacompat.codegen.spec import FieldSpec
from kafkacompat.protocol.headers import encode_response_header, parse_request
from kafkacompat.protocol.messages import api_versions_response
from tests.unit._message_values import Message, all_messages, populate

kp_api = pytest.importorskip("kafka.protocol.api_message")
from kafka.protocol.api_header import RequestHeader, ResponseHeader  # noqa: E402
from kafka.protocol.consumer import (  # noqa: E402
    FetchRequest,
    FetchResponse,
    JoinGroupRequest,
    JoinGroupResponse,
    OffsetCommitRequest,
    OffsetCommitResponse,
)
from kafka.protocol.metadata import (  # noqa: E402
    ApiVersionsRequest,
    ApiVersionsResponse,
    MetadataRequest,
    MetadataResponse,
)
from kafka.protocol.producer import ProduceRequest, ProduceResponse  # noqa: E402

REQUESTS = [
    ApiVersionsRequest,
    MetadataRequest,
    ProduceRequest,
    FetchRequest,
    JoinGroupRequest,
    OffsetCommitRequest,
]
RESPONSES = [
    ApiVersionsResponse,
    MetadataResponse,
    ProduceResponse,
    FetchResponse,
    JoinGroupResponse,
    OffsetCommitResponse,
]
#: kafka-python renames these and reads them as a set of bit positions ("bitfield").
BITFIELDS = {
    ("MetadataResponse", "topic_authorized_operations"): "authorized_operations",
    ("MetadataResponse", "cluster_authorized_operations"): "authorized_operations",
}
MESSAGES = {m.spec.name: m for m in all_messages()}


def _shared_versions(kp_cls: Any) -> list[int]:
    ours = MESSAGES[kp_cls.__name__].spec
    low, high = kp_cls.valid_versions
    return [v for v in ours.version_list if low <= v <= high]


def _cases(classes: list[Any]) -> list[tuple[Any, int]]:
    return [(cls, v) for cls in classes for v in _shared_versions(cls)]


def _ids(case: object) -> str:
    return f"v{case}" if isinstance(case, int) else str(getattr(case, "__name__", case))


def _fields(message: Message, struct_name: str) -> list[FieldSpec]:
    for struct in message.spec.structs():
        if struct.name == struct_name:
            return struct.fields
    raise KeyError(struct_name)


def _bits(value: int) -> set[int] | None:
    bits = {i for i in range(32) if value & 0xFFFFFFFF & (1 << i)}
    return None if bits == {31} else bits


def as_plain(message: Message, struct_name: str, obj: Any, version: int) -> dict[str, Any]:
    """Our object as kafka-python's ``to_dict(json=False)`` shows it: the fields of the version."""
    out: dict[str, Any] = {}
    for f in _fields(message, struct_name):
        if version not in f.versions:
            continue
        value = getattr(obj, f.name)
        name = f.name
        if (message.spec.name, f.name) in BITFIELDS:
            name = BITFIELDS[(message.spec.name, f.name)]
            value = _bits(value)
        elif f.is_struct and value is not None:
            if f.is_array:
                value = [as_plain(message, f.element_type, v, version) for v in value]
            else:
                value = as_plain(message, f.element_type, value, version)
        elif isinstance(value, memoryview):
            value = bytes(value)
        out[name] = value
    return out


def to_kafka_python(message: Message, kp_cls: Any, struct_name: str, obj: Any, version: int) -> Any:
    """Build kafka-python's object holding the same values as ours."""
    kwargs: dict[str, Any] = {}
    for f in _fields(message, struct_name):
        if version not in f.versions:
            continue
        value = getattr(obj, f.name)
        name = f.name
        if (message.spec.name, f.name) in BITFIELDS:
            name = BITFIELDS[(message.spec.name, f.name)]
            value = _bits(value)
        elif f.is_struct and value is not None:
            sub = kp_cls.fields[name].data_class
            if f.is_array:
                value = [to_kafka_python(message, sub, f.element_type, v, version) for v in value]
            else:
                value = to_kafka_python(message, sub, f.element_type, value, version)
        kwargs[name] = value
    return kp_cls(version=version, **kwargs)


def populated(kp_cls: Any, version: int, seed: int = 0) -> Any:
    message = MESSAGES[kp_cls.__name__]
    obj = populate(message, version, seed=seed)
    if kp_cls is ApiVersionsResponse:
        # kafka-python reads an ApiVersions body with a non-zero error code as version 0
        obj.error_code = 0
    return obj


# -- requests: kafka-python encodes, we decode --------------------------------------------------


@pytest.mark.parametrize(("kp_cls", "version"), _cases(REQUESTS), ids=_ids)
def test_request_encoded_by_kafka_python_decodes_with_ours(kp_cls: Any, version: int) -> None:
    message = MESSAGES[kp_cls.__name__]
    for seed in range(2):
        ours = populated(kp_cls, version, seed)
        theirs = to_kafka_python(message, kp_cls, message.spec.name, ours, version)
        wire = bytes(theirs.encode(version=version))
        assert message.module.decode(memoryview(wire), version) == ours
        assert bytes(message.module.encode(ours, version)) == wire


@pytest.mark.parametrize(("kp_cls", "version"), _cases(REQUESTS), ids=_ids)
def test_framed_request_from_kafka_python_parses_with_our_header(kp_cls: Any, version: int) -> None:
    message = MESSAGES[kp_cls.__name__]
    ours = populated(kp_cls, version)
    theirs = to_kafka_python(message, kp_cls, message.spec.name, ours, version)
    theirs.with_header(correlation_id=0x7FFF0001, client_id="kafka-python-3")
    wire = bytes(theirs.encode(version=version, header=True, framed=True))
    assert int.from_bytes(wire[:4], "big") == len(wire) - 4
    request = parse_request(memoryview(wire)[4:])
    assert (request.api_key, request.api_version) == (message.spec.api_key, version)
    assert request.correlation_id == 0x7FFF0001
    assert request.header.client_id == "kafka-python-3"
    assert message.module.decode(request.body, version) == ours


# -- responses: we encode, kafka-python decodes -------------------------------------------------


@pytest.mark.parametrize(("kp_cls", "version"), _cases(RESPONSES), ids=_ids)
def test_response_encoded_by_us_decodes_with_kafka_python(kp_cls: Any, version: int) -> None:
    message = MESSAGES[kp_cls.__name__]
    for seed in range(2):
        ours = populated(kp_cls, version, seed)
        wire = bytes(message.module.encode(ours, version))
        theirs = kp_cls.decode(wire, version=version)
        assert theirs.to_dict(json=False) == as_plain(message, message.spec.name, ours, version)
        rebuilt = to_kafka_python(message, kp_cls, message.spec.name, ours, version)
        assert bytes(rebuilt.encode(version=version)) == wire


@pytest.mark.parametrize(("kp_cls", "version"), _cases(RESPONSES), ids=_ids)
def test_response_with_our_header_decodes_with_kafka_python(kp_cls: Any, version: int) -> None:
    message = MESSAGES[kp_cls.__name__]
    ours = populated(kp_cls, version)
    api_key = message.spec.api_key
    assert api_key is not None
    wire = encode_response_header(api_key, version, 4242) + message.module.encode(ours, version)
    theirs = kp_cls.decode(wire, version=version, header=True)
    assert theirs.header.correlation_id == 4242
    assert theirs.to_dict(json=False) == as_plain(message, message.spec.name, ours, version)


def test_all_six_apis_cover_flexible_versions() -> None:
    for kp_cls in REQUESTS + RESPONSES:
        versions = _shared_versions(kp_cls)
        spec = MESSAGES[kp_cls.__name__].spec
        assert len(versions) >= 3, kp_cls.__name__
        assert any(v in spec.flexible for v in versions), kp_cls.__name__
        assert any(v not in spec.flexible for v in versions), kp_cls.__name__


def test_metadata_response_values_seen_by_kafka_python() -> None:
    """A hand-built response, read back field by field through kafka-python's own objects."""
    m = MESSAGES["MetadataResponse"].module
    topic_id = uuid.UUID("0123456789abcdef0123456789abcdef")
    resp = m.MetadataResponse(
        throttle_time_ms=5,
        brokers=[m.MetadataResponseBroker(1, "broker-1", 9092, "rack-a")],
        cluster_id="cluster-x",
        controller_id=1,
        topics=[
            m.MetadataResponseTopic(
                error_code=0,
                name="orders",
                topic_id=topic_id,
                partitions=[
                    m.MetadataResponsePartition(0, 0, 1, 7, [1, 2], [1], [2]),
                ],
                topic_authorized_operations=0b1010,
            )
        ],
    )
    decoded = MetadataResponse.decode(bytes(m.encode(resp, 12)), version=12)
    assert decoded.throttle_time_ms == 5
    assert (decoded.brokers[0].node_id, decoded.brokers[0].host) == (1, "broker-1")
    assert (decoded.brokers[0].port, decoded.brokers[0].rack) == (9092, "rack-a")
    assert (decoded.cluster_id, decoded.controller_id) == ("cluster-x", 1)
    topic = decoded.topics[0]
    assert (topic.name, topic.topic_id, topic.is_internal) == ("orders", topic_id, False)
    assert topic.authorized_operations == {1, 3}
    partition = topic.partitions[0]
    assert (partition.partition_index, partition.leader_id, partition.leader_epoch) == (0, 1, 7)
    assert (partition.replica_nodes, partition.isr_nodes) == ([1, 2], [1])
    assert partition.offline_replicas == [2]


def test_api_versions_error_response_is_read_as_v0_by_kafka_python() -> None:
    """Why an ApiVersions error is answered at v0: kafka-python reads any error body as v0."""
    resp = api_versions_response.ApiVersionsResponse(
        error_code=35, api_keys=[api_versions_response.ApiVersion(18, 0, 4)]
    )
    wire = bytes(api_versions_response.encode(resp, 0))
    decoded = ApiVersionsResponse.decode(wire, version=3)
    assert decoded.error_code == 35
    assert [(k.api_key, k.min_version, k.max_version) for k in decoded.api_keys] == [(18, 0, 4)]


# -- request header -----------------------------------------------------------------------------


@pytest.mark.parametrize("client_id", ["kafka-python", "", "ünïcode-client", None])
@pytest.mark.parametrize(("api_key", "version", "flexible"), [(3, 8, False), (3, 12, True)])
def test_request_header_parity(
    api_key: int, version: int, flexible: bool, client_id: str | None
) -> None:
    header = RequestHeader(
        request_api_key=api_key,
        request_api_version=version,
        correlation_id=-123456,
        client_id=client_id,
    )
    raw = bytes(header.encode(flexible=flexible))
    request = parse_request(memoryview(raw + b"BODY"))
    assert request.api_key == api_key
    assert request.api_version == version
    assert request.correlation_id == -123456
    assert request.header.client_id == client_id
    assert bytes(request.body) == b"BODY"
    if flexible:
        assert raw.endswith(b"\x00")  # header v2: an empty tagged section after client_id
    back = RequestHeader.decode(io.BytesIO(raw), flexible=flexible)
    assert dataclasses.astuple(request.header)[:4] == (
        back.request_api_key,
        back.request_api_version,
        back.correlation_id,
        back.client_id,
    )


@pytest.mark.parametrize(("api_key", "version"), [(3, 8), (3, 12), (18, 3), (0, 9)])
def test_response_header_parity(api_key: int, version: int) -> None:
    flexible = api_key != 18 and version >= 9
    ours = encode_response_header(api_key, version, 77)
    assert ours == bytes(ResponseHeader(correlation_id=77).encode(flexible=flexible))
