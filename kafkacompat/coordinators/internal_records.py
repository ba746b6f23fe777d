"""Kafka's own record formats for ``__consumer_offsets`` and ``__transaction_state``.

Every record key and value starts with an int16 schema version, as Kafka writes them:

- ``__consumer_offsets``: key version 0/1 is an offset commit (group, topic, partition) with an
  ``OffsetCommitValue`` (v3: offset, leader epoch, metadata, commit time; v1 when an explicit
  expiry time is kept); key version 2 is a classic group (``GroupMetadataValue`` v3); key
  versions 3 to 8 are a KIP-848 consumer group's records (`consumer_group_records`), kept in
  memory as ``kind | key fields`` (the kind byte is the key version) with the value as is.
  Consumer groups written before in our own JSON, under key version
  ``CONSUMER_GROUP_KEY_VERSION`` (Kafka's readers skip it as an unknown record type), are read
  as kind `LEGACY_CONSUMER_GROUP_KIND` (and such a JSON value under kind 3, from an older state
  store, is written back in that form).
- ``__transaction_state``: key version 0 is a transactional id, its value a
  ``TransactionLogValue`` v1 (flexible; the previous producer id in tagged field 0, and the
  groups of the transaction's offsets in tagged field ``GROUPS_TAG``, which Kafka ignores).

The coordinators' stores keep their own compact forms in memory (`group_offsets`,
`transaction_state`); the codecs here translate both ways. A record these codecs do not know is
skipped on load (``None``), never an error.
"""

from __future__ import annotations

import base64
import json
import struct
from dataclasses import dataclass
from typing import Any, Protocol

from kafkacompat.coordinators.consumer_group_records import RECORD_KINDS, decode_value, read_key
from kafkacompat.java_hash import java_string_hash
from kafkacompat.protocol.primitives import (
    DECODE_ERRORS,
    INT16,
    INT32,
    INT64,
    read_bytes,
    read_compact_array_length,
    read_compact_string,
    read_nullable_string,
    read_string,
    read_tagged_fields,
    read_uvarint,
    write_bytes,
    write_compact_array_length,
    write_compact_string,
    write_string,
    write_tagged_fields,
    write_uvarint,
)

__all__ = [
    "CONSUMER_GROUP_KEY_VERSION",
    "GROUPS_TAG",
    "GROUP_RECORDS",
    "LEGACY_CONSUMER_GROUP_KIND",
    "TRANSACTION_RECORDS",
    "RecordCodec",
    "java_string_hash",
    "partition_for",
]

CONSUMER_GROUP_KEY_VERSION = 0x7F03
#: The in-memory kind of a ``CONSUMER_GROUP_KEY_VERSION`` record (a group's JSON of before).
LEGACY_CONSUMER_GROUP_KIND = 0x7F
GROUPS_TAG = 0x7F00

_OFFSET_VALUE = struct.Struct(">bqiqqh")  # group_offsets' in-memory offset value
_TXN_HEAD = struct.Struct(">qhib")  # producer id, epoch, timeout, status
_TWO_I64 = struct.Struct(">qq")

# Kafka's TransactionState ids, by our state names.
_TXN_STATUS = {
    "Empty": 0,
    "Ongoing": 1,
    "PrepareCommit": 2,
    "PrepareAbort": 3,
    "CompleteCommit": 4,
    "CompleteAbort": 5,
    "Dead": 6,
    "PrepareEpochFence": 7,
}
_TXN_STATUS_NAME = {v: k for k, v in _TXN_STATUS.items()}


def partition_for(key_id: str, partitions: int) -> int:
    """The internal-topic partition of a group or transactional id, as Kafka picks it
    (``Utils.abs(hashCode) % partitions``, where abs of the minimum int is 0)."""
    h = java_string_hash(key_id)
    return (0 if h == -(1 << 31) else abs(h)) % partitions


class RecordCodec(Protocol):
    """Translates between a store's in-memory entries and Kafka's record keys and values."""

    def owner(self, key: bytes) -> str:
        """The group or transactional id an in-memory key belongs to (picks the partition)."""
        ...

    def to_record(self, key: bytes, value: bytes | None) -> tuple[bytes, bytes | None]: ...

    def from_record(self, key: bytes, value: bytes | None) -> tuple[bytes, bytes | None] | None: ...


def _u16_string(data: bytes, pos: int) -> tuple[str, int]:
    (n,) = struct.unpack_from(">H", data, pos)
    return data[pos + 2 : pos + 2 + n].decode(), pos + 2 + n


# -- __consumer_offsets --------------------------------------------------------------------------


def _offset_value(ours: bytes) -> bytes:
    _v, offset, epoch, commit_ts, expire_ts, n = _OFFSET_VALUE.unpack_from(ours, 0)
    metadata = "" if n < 0 else ours[_OFFSET_VALUE.size : _OFFSET_VALUE.size + n].decode()
    out = bytearray()
    if expire_ts != -1:
        out += INT16.pack(1) + INT64.pack(offset)
        write_string(out, metadata)
        out += INT64.pack(commit_ts) + INT64.pack(expire_ts)
    else:
        out += INT16.pack(3) + INT64.pack(offset) + INT32.pack(epoch)
        write_string(out, metadata)
        out += INT64.pack(commit_ts)
    return bytes(out)


def _read_offset_value(kafka: bytes) -> bytes:
    (version,) = INT16.unpack_from(kafka, 0)
    (offset,) = INT64.unpack_from(kafka, 2)
    pos, epoch, expire_ts = 10, -1, -1
    if version >= 3:
        (epoch,) = INT32.unpack_from(kafka, pos)
        pos += 4
    metadata, pos = read_string(kafka, pos)
    (commit_ts,) = INT64.unpack_from(kafka, pos)
    pos += 8
    if version == 1:
        (expire_ts,) = INT64.unpack_from(kafka, pos)
    raw = metadata.encode()
    return _OFFSET_VALUE.pack(0, offset, epoch, commit_ts, expire_ts, len(raw)) + raw


def _group_value(ours: bytes) -> bytes:
    doc = json.loads(ours)
    out = bytearray(INT16.pack(3))
    write_string(out, doc["protocol_type"] or "")
    out += INT32.pack(doc["generation_id"])
    write_string(out, doc["protocol_name"])
    write_string(out, doc["leader_id"])
    out += INT64.pack(doc["state_timestamp"])
    out += INT32.pack(len(doc["members"]))
    for m in doc["members"]:
        protocols = dict(m["protocols"])
        chosen = protocols.get(doc["protocol_name"] or "")
        if chosen is None:
            chosen = next(iter(protocols.values()), "")
        write_string(out, m["member_id"])
        write_string(out, m["group_instance_id"])
        write_string(out, m["client_id"])
        write_string(out, m["client_host"])
        out += INT32.pack(m["rebalance_timeout_ms"]) + INT32.pack(m["session_timeout_ms"])
        write_bytes(out, _unb64(chosen))
        write_bytes(out, _unb64(m["assignment"]))
    return bytes(out)


def _read_group_value(kafka: bytes) -> bytes:
    (version,) = INT16.unpack_from(kafka, 0)
    if version > 3:
        raise ValueError(f"GroupMetadataValue v{version} is flexible; not read here")
    protocol_type, pos = read_string(kafka, 2)
    (generation,) = INT32.unpack_from(kafka, pos)
    protocol, pos = read_nullable_string(kafka, pos + 4)
    leader, pos = read_nullable_string(kafka, pos)
    state_ts = -1
    if version >= 2:
        (state_ts,) = INT64.unpack_from(kafka, pos)
        pos += 8
    (count,) = INT32.unpack_from(kafka, pos)
    pos += 4
    members: list[dict[str, Any]] = []
    for _ in range(count):
        member_id, pos = read_string(kafka, pos)
        instance: str | None = None
        if version >= 3:
            instance, pos = read_nullable_string(kafka, pos)
        client_id, pos = read_string(kafka, pos)
        host, pos = read_string(kafka, pos)
        rebalance = -1
        if version >= 1:
            (rebalance,) = INT32.unpack_from(kafka, pos)
            pos += 4
        (session,) = INT32.unpack_from(kafka, pos)
        subscription, pos = read_bytes(kafka, pos + 4)
        assignment, pos = read_bytes(kafka, pos)
        members.append(
            {
                "member_id": member_id,
                "group_instance_id": instance,
                "client_id": client_id,
                "client_host": host,
                "rebalance_timeout_ms": session if rebalance < 0 else rebalance,
                "session_timeout_ms": session,
                "protocols": [[protocol or "", _b64(bytes(subscription))]],
                "assignment": _b64(bytes(assignment)),
            }
        )
    doc = {
        "protocol_type": protocol_type or None,
        "generation_id": generation,
        "protocol_name": protocol,
        "leader_id": leader,
        "state_timestamp": state_ts,
        "members": members,
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text)


@dataclass(frozen=True, slots=True)
class GroupRecords:
    """`group_offsets`' keys (``type byte | u16 strings``) and values, as Kafka's records."""

    def owner(self, key: bytes) -> str:
        return _u16_string(key, 1)[0]

    def to_record(self, key: bytes, value: bytes | None) -> tuple[bytes, bytes | None]:
        kind = key[0]
        if kind == 1:
            return b"\x00\x01" + key[1:], None if value is None else _offset_value(value)
        if kind == 2:
            return b"\x00\x02" + key[1:], None if value is None else _group_value(value)
        if kind in RECORD_KINDS and (value is None or value[:1] != b"{"):
            return INT16.pack(kind) + key[1:], value
        # A consumer group's JSON of before (kind 3 from an older state store) or its tombstone.
        head = INT16.pack(CONSUMER_GROUP_KEY_VERSION)
        return head + key[1:], None if value is None else INT16.pack(0) + value

    def from_record(self, key: bytes, value: bytes | None) -> tuple[bytes, bytes | None] | None:
        try:
            (version,) = INT16.unpack_from(key, 0)
            if version in (0, 1):
                ours = b"\x01" + key[2:]
                return ours, None if value is None else _read_offset_value(value)
            if version == 2:
                return b"\x02" + key[2:], None if value is None else _read_group_value(value)
            if version in RECORD_KINDS:
                ours = bytes([version]) + bytes(key[2:])
                read_key(version, ours, 1)
                if value is None:
                    return ours, None
                decode_value(version, bytes(value))
                return ours, bytes(value)
            if version == CONSUMER_GROUP_KEY_VERSION:
                ours = bytes([LEGACY_CONSUMER_GROUP_KIND]) + bytes(key[2:])
                return ours, None if value is None else bytes(value[2:])
        except (*DECODE_ERRORS, KeyError, json.JSONDecodeError):
            return None
        return None


# -- __transaction_state -------------------------------------------------------------------------


def _txn_value(ours: bytes) -> bytes:
    doc = json.loads(ours)
    out = bytearray(INT16.pack(1))
    out += _TXN_HEAD.pack(doc["pid"], doc["epoch"], doc["timeout_ms"], _TXN_STATUS[doc["state"]])
    by_topic: dict[str, list[int]] = {}
    for topic, partition in doc["partitions"]:
        by_topic.setdefault(topic, []).append(partition)
    write_compact_array_length(out, len(by_topic))
    for topic, ids in sorted(by_topic.items()):
        write_compact_string(out, topic)
        write_compact_array_length(out, len(ids))
        for partition in sorted(ids):
            out += INT32.pack(partition)
        write_uvarint(out, 0)  # no tagged fields
    out += _TWO_I64.pack(doc["last_update_ms"], doc["start_ms"])
    tagged: list[tuple[int, bytes]] = []
    if doc["last_pid"] != -1:
        tagged.append((0, INT64.pack(doc["last_pid"])))
    if doc["groups"] or doc["last_epoch"] != -1:
        groups = bytearray()
        write_compact_array_length(groups, len(doc["groups"]))
        for group in doc["groups"]:
            write_compact_string(groups, group)
        groups += INT16.pack(doc["last_epoch"])
        tagged.append((GROUPS_TAG, bytes(groups)))
    write_tagged_fields(out, tagged)
    return bytes(out)


def _read_txn_value(kafka: bytes) -> bytes:
    (version,) = INT16.unpack_from(kafka, 0)
    pid, epoch, timeout, status = _TXN_HEAD.unpack_from(kafka, 2)
    pos = 2 + _TXN_HEAD.size
    partitions: list[list[Any]] = []
    if version == 0:
        (count,) = INT32.unpack_from(kafka, pos)
        pos += 4
        for _ in range(max(count, 0)):
            topic, pos = read_string(kafka, pos)
            (n,) = INT32.unpack_from(kafka, pos)
            pos += 4
            for _ in range(n):
                partitions.append([topic, INT32.unpack_from(kafka, pos)[0]])
                pos += 4
    else:
        count, pos = read_compact_array_length(kafka, pos)
        for _ in range(max(count, 0)):
            topic, pos = read_compact_string(kafka, pos)
            n, pos = read_compact_array_length(kafka, pos)
            for _ in range(n):
                partitions.append([topic, INT32.unpack_from(kafka, pos)[0]])
                pos += 4
            pos = read_tagged_fields(kafka, pos)[1]
    last_update, start = _TWO_I64.unpack_from(kafka, pos)
    pos += _TWO_I64.size
    last_pid, last_epoch, groups = -1, -1, []
    if version >= 1:
        tags, pos = read_uvarint(kafka, pos)
        for _ in range(tags):
            tag, pos = read_uvarint(kafka, pos)
            size, pos = read_uvarint(kafka, pos)
            field = kafka[pos : pos + size]
            pos += size
            if tag == 0:
                (last_pid,) = INT64.unpack_from(field, 0)
            elif tag == GROUPS_TAG:
                n, p = read_compact_array_length(field, 0)
                for _ in range(n):
                    group, p = read_compact_string(field, p)
                    groups.append(group)
                (last_epoch,) = INT16.unpack_from(field, p)
    doc = {
        "pid": pid,
        "epoch": epoch,
        "last_pid": last_pid,
        "last_epoch": last_epoch,
        "timeout_ms": timeout,
        "state": _TXN_STATUS_NAME[status],
        "partitions": sorted(partitions),
        "groups": sorted(groups),
        "start_ms": start,
        "last_update_ms": last_update,
    }
    return json.dumps(doc).encode()


@dataclass(frozen=True, slots=True)
class TransactionRecords:
    """`transaction_state`'s entries (UTF-8 id → JSON), as Kafka's transaction log records."""

    def owner(self, key: bytes) -> str:
        return key.decode()

    def to_record(self, key: bytes, value: bytes | None) -> tuple[bytes, bytes | None]:
        out = bytearray(INT16.pack(0))
        write_string(out, key.decode())
        return bytes(out), None if value is None else _txn_value(value)

    def from_record(self, key: bytes, value: bytes | None) -> tuple[bytes, bytes | None] | None:
        try:
            (version,) = INT16.unpack_from(key, 0)
            if version != 0:
                return None
            txn_id, _ = read_string(key, 2)
            return txn_id.encode(), None if value is None else _read_txn_value(value)
        except (*DECODE_ERRORS, KeyError, json.JSONDecodeError):
            return None


GROUP_RECORDS = GroupRecords()
TRANSACTION_RECORDS = TransactionRecords()
