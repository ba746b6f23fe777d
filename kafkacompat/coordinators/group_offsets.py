"""Durable committed offsets and group metadata, kept in one state-store namespace.

The namespace plays the part of Kafka's ``__consumer_offsets``: one key per committed partition
and one per group, the latest value wins, deletions are tombstones, and the store compacts the
file when it grows past the live data. Opening replays it.

Keys: ``0x01 | group | topic | partition`` for an offset, ``0x02 | group`` for group metadata
(strings as u16 length + UTF-8). An offset value is a fixed struct plus nullable metadata; group
metadata is JSON (member metadata and assignments base64), read only at start-up.
"""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kafkacompat.storage.state_store import KeyValueSource, KeyValueState

NAMESPACE = "__consumer_offsets"

_OFFSET_KEY = 1
_GROUP_KEY = 2
_U16 = struct.Struct(">H")
_I32 = struct.Struct(">i")
_OFFSET_VALUE = struct.Struct(">bqiqqh")  # version, offset, leader epoch, commit ts, expire ts, len
_VALUE_VERSION = 0

TopicPartition = tuple[str, int]


@dataclass(frozen=True, slots=True)
class OffsetAndMetadata:
    offset: int
    leader_epoch: int = -1
    metadata: str | None = ""
    commit_timestamp: int = -1
    #: Set only by OffsetCommit v2-v4 with an explicit retention time; -1 otherwise.
    expire_timestamp: int = -1


@dataclass(slots=True)
class StoredMember:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    rebalance_timeout_ms: int
    session_timeout_ms: int
    protocols: list[tuple[str, bytes]]
    assignment: bytes


@dataclass(slots=True)
class StoredGroup:
    protocol_type: str | None
    generation_id: int
    protocol_name: str | None
    leader_id: str | None
    state_timestamp: int
    members: list[StoredMember] = field(default_factory=list)


def _string(text: str) -> bytes:
    raw = text.encode()
    return _U16.pack(len(raw)) + raw


def _read_string(data: bytes, pos: int) -> tuple[str, int]:
    (n,) = _U16.unpack_from(data, pos)
    pos += _U16.size
    return data[pos : pos + n].decode(), pos + n


def offset_key(group: str, topic: str, partition: int) -> bytes:
    return bytes([_OFFSET_KEY]) + _string(group) + _string(topic) + _I32.pack(partition)


def group_key(group: str) -> bytes:
    return bytes([_GROUP_KEY]) + _string(group)


def encode_offset(value: OffsetAndMetadata) -> bytes:
    metadata = None if value.metadata is None else value.metadata.encode()
    head = _OFFSET_VALUE.pack(
        _VALUE_VERSION,
        value.offset,
        value.leader_epoch,
        value.commit_timestamp,
        value.expire_timestamp,
        -1 if metadata is None else len(metadata),
    )
    return head + (metadata or b"")


def decode_offset(data: bytes) -> OffsetAndMetadata:
    _version, offset, epoch, commit_ts, expire_ts, n = _OFFSET_VALUE.unpack_from(data, 0)
    start = _OFFSET_VALUE.size
    metadata = None if n < 0 else data[start : start + n].decode()
    return OffsetAndMetadata(offset, epoch, metadata, commit_ts, expire_ts)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def encode_group(group: StoredGroup) -> bytes:
    doc: dict[str, Any] = {
        "protocol_type": group.protocol_type,
        "generation_id": group.generation_id,
        "protocol_name": group.protocol_name,
        "leader_id": group.leader_id,
        "state_timestamp": group.state_timestamp,
        "members": [
            {
                "member_id": m.member_id,
                "group_instance_id": m.group_instance_id,
                "client_id": m.client_id,
                "client_host": m.client_host,
                "rebalance_timeout_ms": m.rebalance_timeout_ms,
                "session_timeout_ms": m.session_timeout_ms,
                "protocols": [[name, _b64(data)] for name, data in m.protocols],
                "assignment": _b64(m.assignment),
            }
            for m in group.members
        ],
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def decode_group(data: bytes) -> StoredGroup:
    doc = json.loads(data)
    members = [
        StoredMember(
            member_id=m["member_id"],
            group_instance_id=m["group_instance_id"],
            client_id=m["client_id"],
            client_host=m["client_host"],
            rebalance_timeout_ms=m["rebalance_timeout_ms"],
            session_timeout_ms=m["session_timeout_ms"],
            protocols=[(name, base64.b64decode(blob)) for name, blob in m["protocols"]],
            assignment=base64.b64decode(m["assignment"]),
        )
        for m in doc["members"]
    ]
    return StoredGroup(
        protocol_type=doc["protocol_type"],
        generation_id=doc["generation_id"],
        protocol_name=doc["protocol_name"],
        leader_id=doc["leader_id"],
        state_timestamp=doc["state_timestamp"],
        members=members,
    )


@dataclass(slots=True)
class LoadedState:
    offsets: dict[str, dict[TopicPartition, OffsetAndMetadata]]
    groups: dict[str, StoredGroup]


class GroupOffsetStore:
    """Reads and writes the group namespace; every write is one atomic frame."""

    def __init__(self, namespace: KeyValueState) -> None:
        self.namespace = namespace

    def load(self, source: KeyValueSource | None = None) -> LoadedState:
        """Everything stored (in ``source``, a part of the namespace, when given)."""
        offsets: dict[str, dict[TopicPartition, OffsetAndMetadata]] = {}
        groups: dict[str, StoredGroup] = {}
        for key, value in (source or self.namespace).items():
            if key[0] == _OFFSET_KEY:
                group, pos = _read_string(key, 1)
                topic, pos = _read_string(key, pos)
                (partition,) = _I32.unpack_from(key, pos)
                offsets.setdefault(group, {})[(topic, partition)] = decode_offset(value)
            elif key[0] == _GROUP_KEY:
                group, _ = _read_string(key, 1)
                groups[group] = decode_group(value)
        return LoadedState(offsets, groups)

    def write(
        self,
        group: str,
        offsets: Mapping[TopicPartition, OffsetAndMetadata | None] | None = None,
        metadata: StoredGroup | None = None,
        *,
        delete_group: bool = False,
    ) -> None:
        """Store offsets (None: delete) and/or the group's metadata in one atomic frame."""
        entries: list[tuple[bytes, bytes | None]] = []
        for (topic, partition), value in (offsets or {}).items():
            entries.append(
                (
                    offset_key(group, topic, partition),
                    None if value is None else encode_offset(value),
                )
            )
        if metadata is not None:
            entries.append((group_key(group), encode_group(metadata)))
        elif delete_group:
            entries.append((group_key(group), None))
        self.namespace.put_many(entries)

    def delete_offsets(self, group: str, partitions: Iterable[TopicPartition]) -> None:
        self.write(group, dict.fromkeys(partitions))

    @property
    def file_size(self) -> int:
        return self.namespace.file_size
