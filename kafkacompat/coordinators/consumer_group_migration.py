"""Online migration between the classic and the consumer group protocols (Kafka 4.0).

Governed by ``group.consumer.migration.policy`` (``disabled``, ``upgrade``, ``downgrade``,
``bidirectional``); empty groups change type whatever the policy.

- **Upgrade**: a ConsumerGroupHeartbeat joining a non-empty classic group of protocol type
  ``consumer`` turns it into a consumer group at the classic generation as group epoch; each
  classic member becomes a Stable member of it using the classic protocol, its last assignment
  both what it owns and its target.
- **Downgrade**: when the last member using the consumer protocol leaves (or is fenced) and
  every other member uses the classic protocol, the group becomes a classic group again, Stable
  at the group epoch with each member's target as its assignment, and a rebalance starts.

Pure conversions and the embedded consumer protocol's codecs; the coordinator swaps the groups.
"""

from __future__ import annotations

import struct
import uuid

from kafkacompat.coordinators.assignors import Assignment
from kafkacompat.coordinators.consumer_group_heartbeat import TopicsView
from kafkacompat.coordinators.consumer_group_state import (
    ClassicMemberMetadata,
    ConsumerGroup,
    ConsumerMember,
    MemberState,
)
from kafkacompat.coordinators.group import Group, GroupState, Member
from kafkacompat.protocol.messages import consumer_protocol_assignment as assignment_codec
from kafkacompat.protocol.messages import consumer_protocol_subscription as subscription_codec

__all__ = [
    "MalformedProtocol",
    "downgrade_allowed",
    "downgrade_allowed_on_replace",
    "encode_assignment",
    "from_classic_group",
    "owned_partitions",
    "read_subscription",
    "to_classic_group",
    "upgrade_refusal",
]

CONSUMER_PROTOCOL_TYPE = "consumer"
_VERSION = struct.Struct(">h")


class MalformedProtocol(ValueError):
    """Embedded consumer protocol bytes that cannot be read."""


def _version(data: bytes) -> int:
    if len(data) < 2:
        raise MalformedProtocol("no version")
    version = int(_VERSION.unpack_from(data)[0])
    if version < 0:
        raise MalformedProtocol(f"version {version}")
    return version


def read_subscription(data: bytes) -> subscription_codec.ConsumerProtocolSubscription:
    """An embedded subscription; a version above those known is read as the highest."""
    version = min(_version(data), subscription_codec.MAX_VERSION)
    try:
        subscription, _ = subscription_codec.DECODERS[version](memoryview(data)[2:], 0)
    except Exception as exc:  # the generated decoders raise whatever truncated input causes
        raise MalformedProtocol(str(exc)) from exc
    return subscription


def read_assignment(data: bytes) -> assignment_codec.ConsumerProtocolAssignment:
    """An embedded assignment; none at all (a member not synced yet) is an empty one."""
    if not data:
        return assignment_codec.ConsumerProtocolAssignment()
    version = min(_version(data), assignment_codec.MAX_VERSION)
    try:
        assignment, _ = assignment_codec.DECODERS[version](memoryview(data)[2:], 0)
    except Exception as exc:
        raise MalformedProtocol(str(exc)) from exc
    return assignment


def encode_assignment(by_name: dict[str, list[int]], metadata: bytes) -> bytes:
    """An assignment in the version of the member's embedded subscription ``metadata``."""
    try:
        version = min(_version(metadata), assignment_codec.MAX_VERSION)
    except MalformedProtocol:
        version = 0
    message = assignment_codec.ConsumerProtocolAssignment(
        assigned_partitions=[
            assignment_codec.TopicPartition(topic, parts) for topic, parts in by_name.items()
        ]
    )
    return _VERSION.pack(version) + bytes(assignment_codec.encode(message, version))


def _by_id(pairs: list[tuple[str, list[int]]], topics: TopicsView) -> Assignment:
    """Partitions by topic id; topics that no longer exist are left out."""
    out: dict[uuid.UUID, set[int]] = {}
    for name, parts in pairs:
        info = topics.get(name)
        if info is not None:
            out.setdefault(info[0], set()).update(p for p in parts if 0 <= p < info[1])
    return {tid: frozenset(p) for tid, p in out.items() if p}


def owned_partitions(
    subscription: subscription_codec.ConsumerProtocolSubscription, topics: TopicsView
) -> list[tuple[uuid.UUID, list[int]]]:
    """What a classic member says it owns (none before subscription v1), by topic id."""
    owned = _by_id([(tp.topic, tp.partitions) for tp in subscription.owned_partitions], topics)
    return [(tid, sorted(parts)) for tid, parts in owned.items()]


def upgrade_refusal(group: Group, policy: str, max_size: int) -> str | None:
    """Why a non-empty classic group may not become a consumer group (None: it may)."""
    prefix = f"Cannot upgrade classic group {group.group_id} to consumer group because"
    if policy not in ("upgrade", "bidirectional"):
        return f"{prefix} online upgrade is disabled."
    if group.protocol_type != CONSUMER_PROTOCOL_TYPE:
        return f"{prefix} the group does not use the consumer embedded protocol."
    if len(group.members) > max_size:
        return f"{prefix} the group size exceeds the consumer group maximum size."
    return None


def from_classic_group(group: Group, topics: TopicsView, now: int) -> ConsumerGroup:
    """The consumer group a classic group becomes; raises `MalformedProtocol`."""
    epoch = group.generation_id
    converted = ConsumerGroup(
        group.group_id, group_epoch=epoch, assignment_epoch=epoch, state_timestamp=now
    )
    for member in group.members.values():
        protocol = group.protocol_name or member.protocols[0][0]
        subscription = read_subscription(member.metadata(protocol))
        assigned = read_assignment(member.assignment)
        partitions = _by_id(
            [(tp.topic, tp.partitions) for tp in assigned.assigned_partitions], topics
        )
        new = ConsumerMember(
            member.member_id,
            member.group_instance_id,
            subscription.rack_id,
            member.client_id,
            member.client_host,
            member.rebalance_timeout_ms,
            tuple(sorted(set(subscription.topics))),
            member_epoch=epoch,
            previous_member_epoch=epoch,
            state=MemberState.STABLE,
            assigned=partitions,
            classic=ClassicMemberMetadata(member.session_timeout_ms, list(member.protocols)),
        )
        converted.add(new)
        converted.target[new.member_id] = dict(partitions)
        converted.claim(new.member_id, partitions)
    return converted


def downgrade_allowed(group: ConsumerGroup, leaving_member_id: str, policy: str) -> bool:
    """Whether the group becomes classic when ``leaving_member_id`` goes: it is the last member
    using the consumer protocol, others remain, and the policy allows downgrades."""
    return (
        len(group.members) > 1
        and group.uses_classic_protocol_only(except_member=leaving_member_id)
        and policy in ("downgrade", "bidirectional")
    )


def downgrade_allowed_on_replace(group: ConsumerGroup, policy: str) -> bool:
    """Whether the group becomes classic now that a classic static member took the place of
    the last member using the consumer protocol."""
    classic_only = all(m.classic is not None for m in group.members.values())
    return classic_only and policy in ("downgrade", "bidirectional")


def to_classic_group(group: ConsumerGroup, leaving_member_id: str, now: int) -> Group:
    """The classic group a consumer group becomes without ``leaving_member_id``: Stable at the
    group epoch, each member's target assignment as its assignment (the caller starts the
    rebalance). ``leaving_member_id`` is "" when a static member was replaced instead. Raises
    `MalformedProtocol`."""
    classic = Group(
        group.group_id,
        state=GroupState.STABLE,
        state_timestamp=now,
        generation_id=group.group_epoch,
        protocol_type=CONSUMER_PROTOCOL_TYPE,
    )
    for member_id, member in group.members.items():
        if member_id == leaving_member_id or member.classic is None:
            continue
        classic.add(
            Member(
                member_id,
                member.instance_id,
                member.client_id,
                member.client_host,
                member.rebalance_timeout_ms,
                member.classic.session_timeout_ms,
                CONSUMER_PROTOCOL_TYPE,
                list(member.classic.protocols),
            )
        )
    classic.protocol_name = classic.select_protocol()
    names = group.topic_names()
    for each in classic.members.values():
        metadata = each.metadata(classic.protocol_name)
        read_subscription(metadata)
        target = group.target.get(each.member_id, {})
        by_name = {
            names[tid]: sorted(parts)
            for tid, parts in sorted(target.items(), key=lambda item: names.get(item[0], ""))
            if tid in names
        }
        each.assignment = encode_assignment(by_name, metadata)
    return classic
