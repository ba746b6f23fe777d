"""Kafka's record formats for __consumer_offsets and __transaction_state: the bytes Kafka's own
readers expect, and back."""

from __future__ import annotations

import json
import struct

from kafkacompat.coordinators.group_offsets import (
    OffsetAndMetadata,
    StoredGroup,
    StoredMember,
    encode_group,
    encode_offset,
    group_key,
    offset_key,
)
from kafkacompat.coordinators.internal_records import (
    GROUP_RECORDS,
    TRANSACTION_RECORDS,
    java_string_hash,
    partition_for,
)
from kafkacompat.coordinators.transaction_state import TxnMetadata, TxnState


def test_java_string_hash_and_kafkas_partition_choice() -> None:
    assert java_string_hash("") == 0
    assert java_string_hash("hello") == 99162322
    assert java_string_hash("Aa") == java_string_hash("BB") == 2112
    # Integer.MIN_VALUE: Kafka's Utils.abs makes it 0.
    assert java_string_hash("polygenelubricants") == -(2**31)
    assert partition_for("polygenelubricants", 50) == 0
    assert partition_for("hello", 50) == 22
    # UTF-16 code units, as Java counts them (a character outside the BMP is two).
    assert java_string_hash("\U0001f600") == 0xD83D * 31 + 0xDE00


def test_an_offset_commit_is_key_v1_and_value_v3() -> None:
    key, value = GROUP_RECORDS.to_record(
        offset_key("g1", "t", 3), encode_offset(OffsetAndMetadata(42, 7, "meta", 1000, -1))
    )
    assert key == b"\x00\x01" + b"\x00\x02g1" + b"\x00\x01t" + struct.pack(">i", 3)
    assert value == (struct.pack(">hqi", 3, 42, 7) + b"\x00\x04meta" + struct.pack(">q", 1000))
    assert GROUP_RECORDS.from_record(key, value) == (
        offset_key("g1", "t", 3),
        encode_offset(OffsetAndMetadata(42, 7, "meta", 1000, -1)),
    )


def test_an_offset_with_an_expiry_time_is_value_v1_and_a_tombstone_stays_one() -> None:
    ours = encode_offset(OffsetAndMetadata(5, -1, "", 10, 99))
    key, value = GROUP_RECORDS.to_record(offset_key("g", "t", 0), ours)
    assert value == struct.pack(">hq", 1, 5) + b"\x00\x00" + struct.pack(">qq", 10, 99)
    assert GROUP_RECORDS.from_record(key, value) == (offset_key("g", "t", 0), ours)
    assert GROUP_RECORDS.to_record(offset_key("g", "t", 0), None)[1] is None
    assert GROUP_RECORDS.from_record(key, None) == (offset_key("g", "t", 0), None)


def test_a_classic_group_is_group_metadata_value_v3() -> None:
    stored = StoredGroup(
        "consumer",
        4,
        "range",
        "m1",
        1234,
        [StoredMember("m1", None, "cid", "/127.0.0.1", 300, 100, [("range", b"sub")], b"asg")],
    )
    key, value = GROUP_RECORDS.to_record(group_key("g1"), encode_group(stored))
    assert key == b"\x00\x02\x00\x02g1"
    assert value is not None
    expected = (
        struct.pack(">h", 3)
        + b"\x00\x08consumer"
        + struct.pack(">i", 4)
        + b"\x00\x05range"
        + b"\x00\x02m1"
        + struct.pack(">q", 1234)
        + struct.pack(">i", 1)
        + b"\x00\x02m1"
        + b"\xff\xff"  # no group instance id
        + b"\x00\x03cid"
        + b"\x00\x0a/127.0.0.1"
        + struct.pack(">ii", 300, 100)
        + struct.pack(">i", 3)
        + b"sub"
        + struct.pack(">i", 3)
        + b"asg"
    )
    assert value == expected
    back = GROUP_RECORDS.from_record(key, value)
    assert back is not None and back[0] == group_key("g1")
    assert back[1] == encode_group(stored)


def test_records_of_other_kinds_are_skipped() -> None:
    assert GROUP_RECORDS.from_record(b"\x00\x09\x00\x01g", b"\x00\x00") is None
    assert GROUP_RECORDS.from_record(b"\x00", b"") is None
    assert TRANSACTION_RECORDS.from_record(b"\x00\x01\x00\x01t", b"") is None


def test_transaction_state_is_transaction_log_value_v1() -> None:
    txn = TxnMetadata(
        "tx",
        1000,
        3,
        60000,
        TxnState.ONGOING,
        last_producer_id=999,
        last_producer_epoch=2,
        partitions={("a", 1), ("a", 0), ("b", 2)},
        groups={"g"},
        start_ms=50,
        last_update_ms=60,
    )
    key, value = TRANSACTION_RECORDS.to_record(b"tx", txn.to_json())
    assert key == b"\x00\x00\x00\x02tx"
    assert value is not None
    head = struct.pack(">hqhib", 1, 1000, 3, 60000, 1)
    partitions = b"\x03" + b"\x02a" + b"\x03" + struct.pack(">ii", 0, 1) + b"\x00"
    partitions += b"\x02b" + b"\x02" + struct.pack(">i", 2) + b"\x00"
    assert value.startswith(head + partitions + struct.pack(">qq", 60, 50))
    back = TRANSACTION_RECORDS.from_record(key, value)
    assert back is not None and back[0] == b"tx"
    assert TxnMetadata.from_json("tx", back[1] or b"") == txn
    assert json.loads(back[1] or b"")["state"] == "Ongoing"
