"""Consumer groups' durable form, in the group namespace beside the offsets and classic groups.

A group is kept as Kafka keeps it in ``__consumer_offsets`` (`consumer_group_records`): one
entry per record, keyed ``kind | group [| member]`` (the kind is Kafka's key version, 3 to 8;
1 and 2 are the offsets' and classic groups'; then the key's fields) with Kafka's value bytes.
The group has its metadata (epoch), subscribed topics and target assignment epoch; each member
its metadata, target and current assignment. Who owns each partition is derived from the
members on load. A save writes only the entries whose value changed and tombstones the ones
gone (a member's three when it leaves, all of them when the group is deleted), in the order
Kafka writes them.

A group written before in one JSON value (under ``3 | group`` in a state store, or
`LEGACY_CONSUMER_GROUP_KIND` from its ``CONSUMER_GROUP_KEY_VERSION`` record) still loads; its
next save writes the records and a tombstone for the old one.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Mapping
from typing import Any

from kafkacompat.coordinators.assignors import Assignment
from kafkacompat.coordinators.consumer_group_records import (
    CURRENT_ASSIGNMENT,
    GROUP_METADATA,
    MEMBER_METADATA,
    PARTITION_METADATA,
    RECORD_KINDS,
    TARGET_MEMBER,
    TARGET_METADATA,
    CurrentAssignment,
    GroupMetadata,
    decode_current_assignment,
    decode_group_metadata,
    decode_member_metadata,
    decode_partition_metadata,
    decode_target_member,
    decode_target_metadata,
    encode_current_assignment,
    encode_group_metadata,
    encode_member_metadata,
    encode_partition_metadata,
    encode_target_member,
    encode_target_metadata,
    read_key,
    write_key,
)
from kafkacompat.coordinators.consumer_group_state import (
    ClassicMemberMetadata,
    ConsumerGroup,
    ConsumerMember,
    MemberState,
)
from kafkacompat.coordinators.internal_records import LEGACY_CONSUMER_GROUP_KIND
from kafkacompat.protocol.primitives import DECODE_ERRORS
from kafkacompat.storage.state_store import KeyValueSource, KeyValueState

__all__ = ["ConsumerGroupStore", "entry_key", "group_entries", "restore_group"]

Entries = dict[bytes, bytes]

#: Kafka's order of tombstones: current assignments, targets, target epoch, member metadata,
#: subscribed topics, group metadata (the old JSON record first).
_TOMBSTONE_ORDER = {
    kind: i
    for i, kind in enumerate(
        (
            LEGACY_CONSUMER_GROUP_KIND,
            CURRENT_ASSIGNMENT,
            TARGET_MEMBER,
            TARGET_METADATA,
            MEMBER_METADATA,
            PARTITION_METADATA,
            GROUP_METADATA,
        )
    )
}


def entry_key(kind: int, group_id: str, member_id: str | None = None) -> bytes:
    """The in-memory key of a group's (or, with ``member_id``, a member's) entry."""
    return bytes([kind]) + write_key(group_id, member_id)


def group_entries(group: ConsumerGroup) -> Entries:
    """Every entry of the group, in the order Kafka writes them: members' metadata, subscribed
    topics, group epoch, targets, target epoch, current assignments."""
    gid = group.group_id
    out: Entries = {}
    for m in group.members.values():
        out[entry_key(MEMBER_METADATA, gid, m.member_id)] = encode_member_metadata(m)
    out[entry_key(PARTITION_METADATA, gid)] = encode_partition_metadata(group.subscribed_topics)
    out[entry_key(GROUP_METADATA, gid)] = encode_group_metadata(
        GroupMetadata(group.group_epoch, group.assignor_name, group.state_timestamp)
    )
    for member_id, target in group.target.items():
        out[entry_key(TARGET_MEMBER, gid, member_id)] = encode_target_member(target)
    out[entry_key(TARGET_METADATA, gid)] = encode_target_metadata(group.assignment_epoch)
    for m in group.members.values():
        out[entry_key(CURRENT_ASSIGNMENT, gid, m.member_id)] = encode_current_assignment(m)
    return out


def _changes(before: Mapping[bytes, bytes], after: Entries) -> list[tuple[bytes, bytes | None]]:
    """Tombstones for the entries gone (in Kafka's order), then the entries changed."""
    gone = sorted((k for k in before if k not in after), key=lambda k: _TOMBSTONE_ORDER[k[0]])
    changes: list[tuple[bytes, bytes | None]] = [(k, None) for k in gone]
    changes += [(k, v) for k, v in after.items() if before.get(k) != v]
    return changes


def restore_group(group_id: str, entries: Mapping[bytes, bytes]) -> ConsumerGroup | None:
    """The group from its entries (kinds 3 to 8); entries that do not decode are skipped;
    None when none does."""
    group = ConsumerGroup(group_id)
    current: dict[str, CurrentAssignment] = {}
    found = False
    for key, value in entries.items():
        kind = key[0]
        try:
            _, member_id = read_key(kind, key, 1)
            if kind == GROUP_METADATA:
                meta = decode_group_metadata(value)
                group.group_epoch = meta.epoch
                group.assignor_name = meta.assignor_name or group.assignor_name
                group.state_timestamp = meta.state_timestamp
            elif kind == PARTITION_METADATA:
                group.subscribed_topics = decode_partition_metadata(value)
            elif kind == TARGET_METADATA:
                group.assignment_epoch = decode_target_metadata(value)
            elif kind == TARGET_MEMBER and member_id is not None:
                group.target[member_id] = decode_target_member(value)
            elif kind == MEMBER_METADATA and member_id is not None:
                group.add(decode_member_metadata(member_id, value))
            elif kind == CURRENT_ASSIGNMENT and member_id is not None:
                current[member_id] = decode_current_assignment(value)
            else:
                continue
        except DECODE_ERRORS:
            continue
        found = True
    for member_id, assignment in current.items():
        member = group.members.get(member_id)
        if member is not None:
            assignment.apply(member)
    for member in group.members.values():
        group.claim(member.member_id, member.assigned)
        group.claim(member.member_id, member.pending_revocation)
    return group if found else None


# -- the JSON form of before (read only) ---------------------------------------------------------


def _is_legacy(key: bytes, value: bytes) -> bool:
    kind = key[0]
    return kind == LEGACY_CONSUMER_GROUP_KIND or (kind == GROUP_METADATA and value[:1] == b"{")


def _read_assignment(doc: dict[str, list[int]]) -> Assignment:
    return {uuid.UUID(tid): frozenset(parts) for tid, parts in doc.items()}


def _read_classic(doc: dict[str, Any] | None) -> ClassicMemberMetadata | None:
    if doc is None:
        return None
    return ClassicMemberMetadata(
        doc["session_timeout_ms"],
        [(name, base64.b64decode(data)) for name, data in doc["protocols"]],
    )


def _legacy_group(group_id: str, data: bytes) -> ConsumerGroup | None:
    try:
        doc = json.loads(data)
        group = ConsumerGroup(
            group_id,
            group_epoch=doc["group_epoch"],
            assignment_epoch=doc["assignment_epoch"],
            assignor_name=doc["assignor"],
            state_timestamp=doc["state_timestamp"],
            subscribed_topics={
                name: (uuid.UUID(tid), int(n)) for name, (tid, n) in doc["topics"].items()
            },
            target={m: _read_assignment(a) for m, a in doc["target"].items()},
        )
        for m in doc["members"]:
            member = ConsumerMember(
                m["member_id"],
                m["instance_id"],
                m["rack_id"],
                m["client_id"],
                m["client_host"],
                m["rebalance_timeout_ms"],
                tuple(m["topic_names"]),
                m["topic_regex"],
                m["server_assignor"],
                m["epoch"],
                m["previous_epoch"],
                MemberState(m["state"]),
                _read_assignment(m["assigned"]),
                _read_assignment(m["pending_revocation"]),
            )
            member.classic = _read_classic(m.get("classic"))
            group.add(member)
            group.claim(member.member_id, member.assigned)
            group.claim(member.member_id, member.pending_revocation)
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    return group


# -- the store -----------------------------------------------------------------------------------


def _load_group(group_id: str, entries: Entries) -> ConsumerGroup | None:
    """The group from its entries: from Kafka's records when any decodes, else from the JSON
    of before. A JSON value under the group metadata's key gets the old record's key too, so
    that the next save tombstones both."""
    legacy = {k: v for k, v in entries.items() if _is_legacy(k, v)}
    current = {k: v for k, v in entries.items() if k not in legacy}
    for key, value in legacy.items():
        if key[0] == GROUP_METADATA:
            entries[entry_key(LEGACY_CONSUMER_GROUP_KIND, group_id)] = value
    group = restore_group(group_id, current)
    for value in legacy.values():
        if group is not None:
            break
        group = _legacy_group(group_id, value)
    return group


class ConsumerGroupStore:
    """Writes what changed of a consumer group's records; loads the groups at start-up."""

    def __init__(self, namespace: KeyValueState) -> None:
        self._namespace = namespace
        #: Each group's entries as last written or loaded.
        self._written: dict[str, Entries] = {}

    def load(self, source: KeyValueSource | None = None) -> dict[str, ConsumerGroup]:
        """The stored groups (of ``source``, a part of the namespace, when given)."""
        stored: dict[str, Entries] = {}
        for key, value in (source or self._namespace).items():
            kind = key[0]
            if kind not in RECORD_KINDS and kind != LEGACY_CONSUMER_GROUP_KIND:
                continue
            try:
                group_id, _ = read_key(GROUP_METADATA if _is_legacy(key, value) else kind, key, 1)
            except DECODE_ERRORS:
                continue
            stored.setdefault(group_id, {})[key] = value
        groups: dict[str, ConsumerGroup] = {}
        for group_id, entries in stored.items():
            group = _load_group(group_id, entries)
            self._written[group_id] = entries
            if group is not None:
                groups[group_id] = group
        return groups

    def save(self, group: ConsumerGroup) -> None:
        after = group_entries(group)
        changes = _changes(self._written.get(group.group_id, {}), after)
        if changes:
            self._namespace.put_many(changes)
        self._written[group.group_id] = after

    def delete(self, group_id: str) -> None:
        before = self._written.pop(group_id, None)
        if before:
            self._namespace.put_many(_changes(before, {}))

    def forget(self, group_id: str) -> None:
        """Stop tracking a group coordinated elsewhere now (nothing is written)."""
        self._written.pop(group_id, None)
