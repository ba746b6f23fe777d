"""Every generated message codec at every valid version: round trips with non-default values,
tagged-field rules, truncated input and nulls where the schema forbids them."""

from __future__ import annotations

import struct
import uuid
from typing import Any

import pytest

from kafkacompat.errors import ProtocolError
from kafkacompat.protocol.messages import (
    APIS,
    api_versions_request,
    api_versions_response,
    fetch_response,
    metadata_response,
)
from kafkacompat.protocol.primitives import DECODE_ERRORS
from tests.unit._message_values import (
    Message,
    all_cases,
    all_messages,
    case_id,
    populate,
    populate_everything,
    strip_to_version,
)

CASES = all_cases()
FLEXIBLE_CASES = [(m, v) for m, v in CASES if v in m.spec.flexible]


def roundtrip(message: Message, version: int, obj: Any) -> bytes:
    encoded = bytes(message.module.encode(obj, version))
    decoded = message.module.decode(memoryview(encoded), version)
    assert decoded == obj
    assert bytes(message.module.encode(decoded, version)) == encoded
    return encoded


@pytest.mark.parametrize(("message", "version"), CASES, ids=case_id)
def test_roundtrip_populated(message: Message, version: int) -> None:
    for seed in range(2):
        roundtrip(message, version, populate(message, version, seed=seed))


@pytest.mark.parametrize(("message", "version"), CASES, ids=case_id)
def test_roundtrip_with_nulls(message: Message, version: int) -> None:
    roundtrip(message, version, populate(message, version, nulls=True))


@pytest.mark.parametrize(("message", "version"), CASES, ids=case_id)
def test_roundtrip_defaults(message: Message, version: int) -> None:
    obj = getattr(message.module, message.spec.name)()
    encoded = roundtrip(message, version, obj)
    if version in message.spec.flexible:
        # nothing tagged is written for default values: the top-level tagged section is empty
        assert encoded.endswith(b"\x00")


@pytest.mark.parametrize(("message", "version"), CASES, ids=case_id)
def test_encoder_writes_only_its_version_fields(message: Message, version: int) -> None:
    everything = populate_everything(message)
    encoded = bytes(message.module.encode(everything, version))
    expected = strip_to_version(message, version, everything)
    assert message.module.decode(memoryview(encoded), version) == expected
    assert bytes(message.module.encode(expected, version)) == encoded


def test_populated_values_are_distinctive() -> None:
    """Every field present at the version differs from the decoded default."""
    for message in all_messages():
        version = message.spec.version_list[-1]
        obj = populate(message, version)
        default = getattr(message.module, message.spec.name)()
        for f in message.spec.fields:
            if version in f.versions:
                assert getattr(obj, f.name) != getattr(default, f.name), (message.id, f.name)


# -- tagged fields ------------------------------------------------------------------------------


@pytest.mark.parametrize(("message", "version"), FLEXIBLE_CASES, ids=case_id)
def test_unknown_tagged_fields_are_preserved(message: Message, version: int) -> None:
    obj = populate(message, version)
    unknown = [(200, b"\x01\x02\x03"), (16383, b""), (16384, b"\xff" * 130)]
    obj.unknown_tagged_fields = list(unknown)
    encoded = roundtrip(message, version, obj)
    decoded = message.module.decode(memoryview(encoded), version)
    assert decoded.unknown_tagged_fields == unknown
    # the unknown tags sit in the top-level tagged section, which is last
    assert encoded.endswith(
        b"\xc8\x01\x03\x01\x02\x03\xff\x7f\x00\x80\x80\x01\x82\x01" + b"\xff" * 130
    )


def test_unknown_tag_in_handcrafted_api_versions_request() -> None:
    body = (
        b"\x07kcat-x"  # client_software_name, compact: length + 1
        b"\x041.0"  # client_software_version
        b"\x02"  # two tagged fields
        b"\x05\x02\xab\xcd"  # tag 5, 2 bytes
        b"\x80\x02\x00"  # tag 256, 0 bytes
    )
    decoded = api_versions_request.decode(memoryview(body), 3)
    assert decoded.client_software_name == "kcat-x"
    assert decoded.client_software_version == "1.0"
    assert decoded.unknown_tagged_fields == [(5, b"\xab\xcd"), (256, b"")]
    assert bytes(api_versions_request.encode(decoded, 3)) == body


def test_unknown_tag_in_nested_struct_is_preserved() -> None:
    resp = metadata_response.MetadataResponse(
        brokers=[
            metadata_response.MetadataResponseBroker(
                node_id=1, host="h", port=9092, unknown_tagged_fields=[(9, b"\x2a")]
            )
        ],
    )
    encoded = bytes(metadata_response.encode(resp, 12))
    decoded = metadata_response.decode(memoryview(encoded), 12)
    assert decoded.brokers[0].unknown_tagged_fields == [(9, b"\x2a")]
    assert bytes(metadata_response.encode(decoded, 12)) == encoded


def test_tagged_fields_with_default_values_are_not_written() -> None:
    resp = api_versions_response.ApiVersionsResponse(
        error_code=0,
        api_keys=[api_versions_response.ApiVersion(18, 0, 4)],
        throttle_time_ms=0,
        finalized_features_epoch=-1,  # the default: not written
        zk_migration_ready=False,  # the default: not written
    )
    plain = b"\x00\x00" + b"\x02" + b"\x00\x12\x00\x00\x00\x04\x00" + b"\x00\x00\x00\x00"
    assert bytes(api_versions_response.encode(resp, 3)) == plain + b"\x00"

    resp.finalized_features_epoch = 5
    resp.zk_migration_ready = True
    assert bytes(api_versions_response.encode(resp, 3)) == (
        plain
        + b"\x02"  # two tagged fields, in tag order
        + b"\x01\x08"
        + struct.pack(">q", 5)  # tag 1: finalized_features_epoch
        + b"\x03\x01\x01"  # tag 3: zk_migration_ready
    )
    assert (
        api_versions_response.decode(memoryview(api_versions_response.encode(resp, 3)), 3) == resp
    )


def test_tagged_struct_with_default_value_is_not_written() -> None:
    partition = fetch_response.PartitionData(partition_index=3, records=b"")
    topic = fetch_response.FetchableTopicResponse(topic_id=uuid.UUID(int=7), partitions=[partition])
    resp = fetch_response.FetchResponse(responses=[topic])
    base = bytes(fetch_response.encode(resp, 13))
    partition.current_leader = fetch_response.LeaderIdAndEpoch(leader_id=2, leader_epoch=9)
    with_tag = bytes(fetch_response.encode(resp, 13))
    # tag 1, size 8, then two int32 plus the struct's own empty tagged section
    assert len(with_tag) - len(base) == 1 + 1 + 8 + 1
    assert b"\x01\x01\x09\x00\x00\x00\x02\x00\x00\x00\x09\x00" in with_tag
    assert fetch_response.decode(memoryview(with_tag), 13) == resp


# -- malformed input ----------------------------------------------------------------------------


def _sample_cuts(size: int) -> list[int]:
    cuts = set(range(min(size, 12))) | set(range(max(0, size - 12), size))
    cuts |= set(range(0, size, max(1, size // 24)))
    return sorted(c for c in cuts if c < size)


@pytest.mark.parametrize(("message", "version"), CASES, ids=case_id)
def test_truncated_input_raises_decode_errors(message: Message, version: int) -> None:
    encoded = bytes(message.module.encode(populate(message, version), version))
    for cut in _sample_cuts(len(encoded)):
        with pytest.raises(DECODE_ERRORS):
            message.module.decode(memoryview(encoded[:cut]), version)


@pytest.mark.parametrize(("message", "version"), CASES, ids=case_id)
def test_trailing_bytes_raise_protocol_error(message: Message, version: int) -> None:
    encoded = bytes(message.module.encode(populate(message, version), version))
    with pytest.raises(ProtocolError, match="trailing"):
        message.module.decode(memoryview(encoded + b"\x00"), version)


def _nullable_fields_forbidden(message: Message, version: int) -> list[str]:
    return [
        f.name
        for f in message.spec.fields
        if version in f.versions
        and version not in f.nullable
        and f.tag is None
        and (f.is_array or f.type in ("string", "bytes"))
    ]


NON_NULLABLE_CASES = [(m, v, name) for m, v in CASES for name in _nullable_fields_forbidden(m, v)]


@pytest.mark.parametrize(
    ("message", "version", "name"),
    NON_NULLABLE_CASES,
    ids=lambda c: c if isinstance(c, str) else case_id(c),
)
def test_null_in_non_nullable_field_raises_protocol_error(
    message: Message, version: int, name: str
) -> None:
    obj = populate(message, version)
    setattr(obj, name, None)  # the writers emit the null marker; the reader must refuse it
    encoded = bytes(message.module.encode(obj, version))
    with pytest.raises(ProtocolError, match="null"):
        message.module.decode(memoryview(encoded), version)


def test_non_nullable_cases_cover_strings_bytes_and_arrays() -> None:
    types = {
        f.type if not f.is_array else "[]"
        for m, _, name in NON_NULLABLE_CASES
        for f in m.spec.fields
        if f.name == name
    }
    assert {"string", "bytes", "[]"} <= types
    assert len(NON_NULLABLE_CASES) > 500


def test_null_array_in_nested_struct_raises_protocol_error() -> None:
    # MetadataResponse v1: one broker ... one topic whose partitions array is null (-1)
    body = (
        b"\x00\x00\x00\x00"  # no brokers
        b"\x00\x00\x00\x01"  # controller_id
        b"\x00\x00\x00\x01"  # one topic
        b"\x00\x00" + b"\x00\x01t" + b"\x00"  # error_code, name, is_internal
        b"\xff\xff\xff\xff"  # partitions: null
    )
    with pytest.raises(ProtocolError, match="null array in non-nullable field partitions"):
        metadata_response.decode(memoryview(body), 1)
    fixed = body[:-4] + b"\x00\x00\x00\x00"
    decoded = metadata_response.decode(memoryview(fixed), 1)
    assert decoded.topics[0].name == "t"
    assert decoded.topics[0].partitions == []


def test_registry_pairs_every_request_with_its_response() -> None:
    requests = [m for m in all_messages() if m.spec.kind == "request"]
    assert sorted(APIS) == sorted(m.spec.api_key for m in requests)
    for m in requests:
        req, resp = APIS[m.spec.api_key]
        assert req is m.module
        assert m.spec.api_key == resp.API_KEY
        assert (req.MIN_VERSION, req.MAX_VERSION) == (resp.MIN_VERSION, resp.MAX_VERSION)
