"""Consumer groups' durable form, in the group namespace beside the offsets and classic groups.

One key per group, ``0x03 | group`` (u16 length + UTF-8; 0x01 and 0x02 are the offsets' and
classic groups'); the value is JSON: epochs, assignor, subscribed topics, each member's target
and its member state (epochs, assigned and pending partitions; for a member using the classic
protocol, its session timeout and protocols). Who owns each partition is
derived from the members on load. A group is written when it changed, removed by a tombstone.
"""

from __future__ import annotations

import base64
import json
import struct
import uuid
from typing import Any

from kafkacompat.coordinators.assignors import Assignment
from kafkacompat.coordinators.consumer_group_state import (
    ClassicMemberMetadata,
    ConsumerGroup,
    ConsumerMember,
    MemberState,
)
from kafkacompat.storage.state_store import KeyValueSource, KeyValueState

_CONSUMER_GROUP_KEY = 3
_U16 = struct.Struct(">H")


def consumer_group_key(group_id: str) -> bytes:
    raw = group_id.encode()
    return bytes([_CONSUMER_GROUP_KEY]) + _U16.pack(len(raw)) + raw


def _assignment(value: Assignment) -> dict[str, list[int]]:
    return {str(tid): sorted(parts) for tid, parts in sorted(value.items())}


def _read_assignment(doc: dict[str, list[int]]) -> Assignment:
    return {uuid.UUID(tid): frozenset(parts) for tid, parts in doc.items()}


def _classic(value: ClassicMemberMetadata | None) -> dict[str, Any] | None:
    if value is None:
        return None
    return {
        "session_timeout_ms": value.session_timeout_ms,
        "protocols": [[name, base64.b64encode(data).decode()] for name, data in value.protocols],
    }


def _read_classic(doc: dict[str, Any] | None) -> ClassicMemberMetadata | None:
    if doc is None:
        return None
    return ClassicMemberMetadata(
        doc["session_timeout_ms"],
        [(name, base64.b64decode(data)) for name, data in doc["protocols"]],
    )


def encode_group(group: ConsumerGroup) -> bytes:
    doc: dict[str, Any] = {
        "group_epoch": group.group_epoch,
        "assignment_epoch": group.assignment_epoch,
        "assignor": group.assignor_name,
        "state_timestamp": group.state_timestamp,
        "topics": {name: [str(tid), n] for name, (tid, n) in group.subscribed_topics.items()},
        "target": {m: _assignment(a) for m, a in group.target.items()},
        "members": [
            {
                "member_id": m.member_id,
                "instance_id": m.instance_id,
                "rack_id": m.rack_id,
                "client_id": m.client_id,
                "client_host": m.client_host,
                "rebalance_timeout_ms": m.rebalance_timeout_ms,
                "topic_names": list(m.subscribed_topic_names),
                "topic_regex": m.subscribed_topic_regex,
                "server_assignor": m.server_assignor,
                "epoch": m.member_epoch,
                "previous_epoch": m.previous_member_epoch,
                "state": m.state.value,
                "assigned": _assignment(m.assigned),
                "pending_revocation": _assignment(m.pending_revocation),
                "classic": _classic(m.classic),
            }
            for m in group.members.values()
        ],
    }
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()


def decode_group(group_id: str, data: bytes) -> ConsumerGroup:
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
    return group


class ConsumerGroupStore:
    """Writes a consumer group when its durable form changed; loads them all at start-up."""

    def __init__(self, namespace: KeyValueState) -> None:
        self._namespace = namespace
        self._written: dict[str, bytes] = {}

    def load(self, source: KeyValueSource | None = None) -> dict[str, ConsumerGroup]:
        """The stored groups (of ``source``, a part of the namespace, when given)."""
        groups: dict[str, ConsumerGroup] = {}
        for key, value in (source or self._namespace).items():
            if key[0] == _CONSUMER_GROUP_KEY:
                (n,) = _U16.unpack_from(key, 1)
                group_id = key[3 : 3 + n].decode()
                groups[group_id] = decode_group(group_id, value)
                self._written[group_id] = value
        return groups

    def save(self, group: ConsumerGroup) -> None:
        value = encode_group(group)
        if self._written.get(group.group_id) != value:
            self._namespace.put(consumer_group_key(group.group_id), value)
            self._written[group.group_id] = value

    def delete(self, group_id: str) -> None:
        if self._written.pop(group_id, None) is not None:
            self._namespace.put(consumer_group_key(group_id), None)

    def forget(self, group_id: str) -> None:
        """Stop tracking a group coordinated elsewhere now (nothing is written)."""
        self._written.pop(group_id, None)
