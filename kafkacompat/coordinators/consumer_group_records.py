"""A KIP-848 consumer group's records in ``__consumer_offsets``, in Kafka's formats.

Kafka keeps such a group as several record types, the key's int16 version naming the type:

====  ==========================================  ===========================================
key   key fields                                  value (version 0, flexible)
====  ==========================================  ===========================================
3     ConsumerGroupMetadataKey: group             Epoch (the group epoch)
4     ConsumerGroupPartitionMetadataKey: group    the subscribed topics: id, name, partitions
5     ConsumerGroupMemberMetadataKey: group,      a member's ids, subscription, rebalance
      member                                      timeout, assignor; tag 0: classic metadata
6     ConsumerGroupTargetAssignmentMetadataKey    AssignmentEpoch
7     ConsumerGroupTargetAssignmentMemberKey      the member's target partitions
8     ConsumerGroupCurrentMemberAssignmentKey     epochs, state, assigned and pending partitions
====  ==========================================  ===========================================

Keys are non-flexible (int16-length strings); values are flexible (compact strings and arrays,
tagged fields). What Kafka's records lack — the group's assignor name and state timestamp — is
kept in the metadata value's tagged field `CONSUMER_GROUP_TAG`, which Kafka's readers skip.

The encoders take the group's own objects; the decoders raise one of ``DECODE_ERRORS`` on
bytes they cannot read (an unknown value version too).
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from kafkacompat.coordinators.assignors import Assignment
from kafkacompat.coordinators.consumer_group_state import (
    ClassicMemberMetadata,
    ConsumerMember,
    MemberState,
)
from kafkacompat.protocol.primitives import (
    INT8,
    INT16,
    INT32,
    INT64,
    read_compact_array_length,
    read_compact_bytes,
    read_compact_nullable_string,
    read_compact_string,
    read_tagged_fields,
    read_uuid,
    read_uvarint,
    write_compact_array_length,
    write_compact_bytes,
    write_compact_string,
    write_tagged_fields,
    write_uvarint,
)

__all__ = [
    "CONSUMER_GROUP_TAG",
    "CURRENT_ASSIGNMENT",
    "GROUP_METADATA",
    "MEMBER_KINDS",
    "MEMBER_METADATA",
    "PARTITION_METADATA",
    "RECORD_KINDS",
    "TARGET_MEMBER",
    "TARGET_METADATA",
    "CurrentAssignment",
    "GroupMetadata",
    "decode_value",
    "read_key",
    "write_key",
]

GROUP_METADATA = 3
PARTITION_METADATA = 4
MEMBER_METADATA = 5
TARGET_METADATA = 6
TARGET_MEMBER = 7
CURRENT_ASSIGNMENT = 8
RECORD_KINDS = frozenset(range(GROUP_METADATA, CURRENT_ASSIGNMENT + 1))
#: The kinds keyed by group and member (the others by group alone).
MEMBER_KINDS = frozenset({MEMBER_METADATA, TARGET_MEMBER, CURRENT_ASSIGNMENT})

#: Our tagged field on ConsumerGroupMetadataValue: assignor name, state timestamp.
CONSUMER_GROUP_TAG = 0x7F03

_CLASSIC_TAG = 0
_U16 = struct.Struct(">H")
#: Kafka's MemberState ids.
_STATE_ID = {
    MemberState.STABLE: 0,
    MemberState.UNREVOKED_PARTITIONS: 1,
    MemberState.UNRELEASED_PARTITIONS: 2,
}
_STATE = {v: k for k, v in _STATE_ID.items()}


# -- keys (without their version) ----------------------------------------------------------------


def write_key(group_id: str, member_id: str | None = None) -> bytes:
    """A key's fields: the group id, then the member id for a member's record."""
    out = bytearray()
    for text in (group_id,) if member_id is None else (group_id, member_id):
        raw = text.encode()
        out += _U16.pack(len(raw)) + raw
    return bytes(out)


def read_key(kind: int, data: bytes, pos: int = 0) -> tuple[str, str | None]:
    """(group id, member id or None) of a key of this kind, its fields from ``pos``."""
    fields: list[str] = []
    for _ in range(2 if kind in MEMBER_KINDS else 1):
        (n,) = _U16.unpack_from(data, pos)
        if pos + 2 + n > len(data):
            raise ValueError("key string runs past the end")
        fields.append(data[pos + 2 : pos + 2 + n].decode())
        pos += 2 + n
    if pos != len(data):
        raise ValueError("bytes after the key")
    return fields[0], fields[1] if len(fields) == 2 else None


# -- value helpers -------------------------------------------------------------------------------


def _head(data: bytes) -> int:
    (version,) = INT16.unpack_from(data, 0)
    if version != 0:
        raise ValueError(f"value version {version} is not read here")
    return 2


def _end(data: bytes, pos: int) -> None:
    """Read the value's own tagged fields (ignored) and check nothing follows."""
    _, pos = read_tagged_fields(data, pos)
    if pos != len(data):
        raise ValueError("bytes after the value")


def _write_partitions(out: bytearray, assignment: Assignment) -> None:
    """``[]{TopicId uuid, Partitions []int32}``, topics and partitions in order."""
    write_compact_array_length(out, len(assignment))
    for topic, parts in sorted(assignment.items()):
        out += topic.bytes
        write_compact_array_length(out, len(parts))
        for p in sorted(parts):
            out += INT32.pack(p)
        write_uvarint(out, 0)


def _read_partitions(data: bytes, pos: int) -> tuple[Assignment, int]:
    count, pos = read_compact_array_length(data, pos)
    assignment: Assignment = {}
    for _ in range(max(count, 0)):
        topic, pos = read_uuid(data, pos)
        n, pos = read_compact_array_length(data, pos)
        parts = struct.unpack_from(f">{max(n, 0)}i", data, pos)
        pos += 4 * max(n, 0)
        _, pos = read_tagged_fields(data, pos)
        assignment[topic] = frozenset(parts)
    return assignment, pos


# -- 3: ConsumerGroupMetadataValue ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GroupMetadata:
    epoch: int
    #: Ours (`CONSUMER_GROUP_TAG`); None and -1 when the record has no such field.
    assignor_name: str | None = None
    state_timestamp: int = -1


def encode_group_metadata(value: GroupMetadata) -> bytes:
    out = bytearray(INT16.pack(0) + INT32.pack(value.epoch))
    ours = bytearray()
    write_compact_string(ours, value.assignor_name)
    ours += INT64.pack(value.state_timestamp)
    write_uvarint(ours, 0)
    write_tagged_fields(out, [(CONSUMER_GROUP_TAG, bytes(ours))])
    return bytes(out)


def decode_group_metadata(data: bytes) -> GroupMetadata:
    (epoch,) = INT32.unpack_from(data, _head(data))
    tags, pos = read_tagged_fields(data, 6)
    if pos != len(data):
        raise ValueError("bytes after the value")
    ours = tags.get(CONSUMER_GROUP_TAG)
    if ours is None:
        return GroupMetadata(epoch)
    assignor, p = read_compact_nullable_string(ours, 0)
    (timestamp,) = INT64.unpack_from(ours, p)
    return GroupMetadata(epoch, assignor, timestamp)


# -- 4: ConsumerGroupPartitionMetadataValue ------------------------------------------------------


def encode_partition_metadata(topics: Mapping[str, tuple[uuid.UUID, int]]) -> bytes:
    out = bytearray(INT16.pack(0))
    write_compact_array_length(out, len(topics))
    for name, (topic_id, partitions) in sorted(topics.items()):
        out += topic_id.bytes
        write_compact_string(out, name)
        out += INT32.pack(partitions)
        write_compact_array_length(out, 0)  # PartitionMetadata: racks, not kept
        write_uvarint(out, 0)
    write_uvarint(out, 0)
    return bytes(out)


def decode_partition_metadata(data: bytes) -> dict[str, tuple[uuid.UUID, int]]:
    count, pos = read_compact_array_length(data, _head(data))
    topics: dict[str, tuple[uuid.UUID, int]] = {}
    for _ in range(max(count, 0)):
        topic_id, pos = read_uuid(data, pos)
        name, pos = read_compact_string(data, pos)
        (partitions,) = INT32.unpack_from(data, pos)
        n, pos = read_compact_array_length(data, pos + 4)
        for _ in range(max(n, 0)):
            pos += 4  # Partition
            racks, pos = read_compact_array_length(data, pos)
            for _ in range(max(racks, 0)):
                _, pos = read_compact_string(data, pos)
            _, pos = read_tagged_fields(data, pos)
        _, pos = read_tagged_fields(data, pos)
        topics[name] = (topic_id, partitions)
    _end(data, pos)
    return topics


# -- 5: ConsumerGroupMemberMetadataValue ---------------------------------------------------------


def encode_member_metadata(member: ConsumerMember) -> bytes:
    out = bytearray(INT16.pack(0))
    write_compact_string(out, member.instance_id)
    write_compact_string(out, member.rack_id)
    write_compact_string(out, member.client_id)
    write_compact_string(out, member.client_host)
    write_compact_array_length(out, len(member.subscribed_topic_names))
    for name in member.subscribed_topic_names:
        write_compact_string(out, name)
    write_compact_string(out, member.subscribed_topic_regex)
    out += INT32.pack(member.rebalance_timeout_ms)
    write_compact_string(out, member.server_assignor)
    tags: list[tuple[int, bytes]] = []
    if member.classic is not None:
        classic = bytearray(b"\x01")  # a nullable struct's presence mark
        classic += INT32.pack(member.classic.session_timeout_ms)
        write_compact_array_length(classic, len(member.classic.protocols))
        for name, metadata in member.classic.protocols:
            write_compact_string(classic, name)
            write_compact_bytes(classic, metadata)
            write_uvarint(classic, 0)
        write_uvarint(classic, 0)
        tags.append((_CLASSIC_TAG, bytes(classic)))
    write_tagged_fields(out, tags)
    return bytes(out)


def decode_member_metadata(member_id: str, data: bytes) -> ConsumerMember:
    """The member as its metadata record has it (epochs and partitions: `CurrentAssignment`)."""
    instance_id, pos = read_compact_nullable_string(data, _head(data))
    rack_id, pos = read_compact_nullable_string(data, pos)
    client_id, pos = read_compact_string(data, pos)
    client_host, pos = read_compact_string(data, pos)
    count, pos = read_compact_array_length(data, pos)
    names = []
    for _ in range(max(count, 0)):
        name, pos = read_compact_string(data, pos)
        names.append(name)
    regex, pos = read_compact_nullable_string(data, pos)
    (rebalance_timeout_ms,) = INT32.unpack_from(data, pos)
    server_assignor, pos = read_compact_nullable_string(data, pos + 4)
    tags, pos = read_tagged_fields(data, pos)
    if pos != len(data):
        raise ValueError("bytes after the value")
    member = ConsumerMember(
        member_id,
        instance_id,
        rack_id,
        client_id,
        client_host,
        rebalance_timeout_ms,
        tuple(names),
        regex,
        server_assignor,
    )
    classic = tags.get(_CLASSIC_TAG)
    if classic is not None:
        member.classic = _decode_classic(classic)
    return member


def _decode_classic(data: bytes) -> ClassicMemberMetadata | None:
    present, pos = read_uvarint(data, 0)
    if present == 0:
        return None
    (session_timeout_ms,) = INT32.unpack_from(data, pos)
    count, pos = read_compact_array_length(data, pos + 4)
    protocols = []
    for _ in range(max(count, 0)):
        name, pos = read_compact_string(data, pos)
        metadata, pos = read_compact_bytes(data, pos)
        _, pos = read_tagged_fields(data, pos)
        protocols.append((name, bytes(metadata)))
    return ClassicMemberMetadata(session_timeout_ms, protocols)


# -- 6: ConsumerGroupTargetAssignmentMetadataValue -----------------------------------------------


def encode_target_metadata(assignment_epoch: int) -> bytes:
    return INT16.pack(0) + INT32.pack(assignment_epoch) + b"\x00"


def decode_target_metadata(data: bytes) -> int:
    (epoch,) = INT32.unpack_from(data, _head(data))
    _end(data, 6)
    return int(epoch)


# -- 7: ConsumerGroupTargetAssignmentMemberValue -------------------------------------------------


def encode_target_member(assignment: Assignment) -> bytes:
    out = bytearray(INT16.pack(0))
    _write_partitions(out, assignment)
    write_uvarint(out, 0)
    return bytes(out)


def decode_target_member(data: bytes) -> Assignment:
    assignment, pos = _read_partitions(data, _head(data))
    _end(data, pos)
    return assignment


# -- 8: ConsumerGroupCurrentMemberAssignmentValue ------------------------------------------------


@dataclass(frozen=True, slots=True)
class CurrentAssignment:
    member_epoch: int
    previous_member_epoch: int
    state: MemberState
    assigned: Assignment
    pending_revocation: Assignment

    def apply(self, member: ConsumerMember) -> None:
        member.member_epoch = self.member_epoch
        member.previous_member_epoch = self.previous_member_epoch
        member.state = self.state
        member.assigned = self.assigned
        member.pending_revocation = self.pending_revocation


def encode_current_assignment(member: ConsumerMember) -> bytes:
    out = bytearray(INT16.pack(0))
    out += INT32.pack(member.member_epoch) + INT32.pack(member.previous_member_epoch)
    out += INT8.pack(_STATE_ID[member.state])
    _write_partitions(out, member.assigned)
    _write_partitions(out, member.pending_revocation)
    write_uvarint(out, 0)
    return bytes(out)


def decode_current_assignment(data: bytes) -> CurrentAssignment:
    pos = _head(data)
    epoch, previous = struct.unpack_from(">ii", data, pos)
    (state_id,) = INT8.unpack_from(data, pos + 8)
    state = _STATE.get(state_id)
    if state is None:
        raise ValueError(f"unknown member state {state_id}")
    assigned, pos = _read_partitions(data, pos + 9)
    pending, pos = _read_partitions(data, pos)
    _end(data, pos)
    return CurrentAssignment(epoch, previous, state, assigned, pending)


_DECODERS: dict[int, Callable[[bytes], object]] = {
    GROUP_METADATA: decode_group_metadata,
    PARTITION_METADATA: decode_partition_metadata,
    MEMBER_METADATA: lambda data: decode_member_metadata("", data),
    TARGET_METADATA: decode_target_metadata,
    TARGET_MEMBER: decode_target_member,
    CURRENT_ASSIGNMENT: decode_current_assignment,
}


def decode_value(kind: int, data: bytes) -> object:
    """The decoded value of a record of this kind; raises one of ``DECODE_ERRORS`` if it is not
    one Kafka's schema reads."""
    return _DECODERS[kind](data)
