"""A consumer group as DescribeGroups shows it: the classic shape, with each member's
subscription and assignment in the consumer protocol's embedded format (version 0), so tools
that only speak DescribeGroups still see who reads what."""

from __future__ import annotations

import struct

from kafkacompat.coordinators.assignors import Assignment
from kafkacompat.coordinators.consumer_group_state import ConsumerGroup, ConsumerMember
from kafkacompat.coordinators.group import GroupDescription, MemberDescription
from kafkacompat.protocol.messages import consumer_protocol_assignment as assignment_v0
from kafkacompat.protocol.messages import consumer_protocol_subscription as subscription_v0

_VERSION_0 = struct.pack(">h", 0)


def by_name(group: ConsumerGroup, assignment: Assignment) -> dict[str, list[int]]:
    """``assignment`` by topic name (topics no longer known are left out), partitions sorted."""
    names = group.topic_names()
    return {
        names[tid]: sorted(parts)
        for tid, parts in sorted(assignment.items(), key=lambda item: names.get(item[0], ""))
        if tid in names
    }


def subscribed_names(group: ConsumerGroup, member: ConsumerMember) -> list[str]:
    """The topics the member subscribes to now: its names and the existing topics its regex
    matches."""
    names = set(member.subscribed_topic_names)
    names.update(t for t in group.subscribed_topics if member.subscribes(t))
    return sorted(names)


def _member(group: ConsumerGroup, member: ConsumerMember) -> MemberDescription:
    subscription = subscription_v0.ConsumerProtocolSubscription(
        topics=subscribed_names(group, member)
    )
    assignment = assignment_v0.ConsumerProtocolAssignment(
        assigned_partitions=[
            assignment_v0.TopicPartition(topic, parts)
            for topic, parts in by_name(group, member.assigned).items()
        ]
    )
    return MemberDescription(
        member.member_id,
        member.instance_id,
        member.client_id,
        member.client_host,
        _VERSION_0 + bytes(subscription_v0.encode(subscription, 0)),
        _VERSION_0 + bytes(assignment_v0.encode(assignment, 0)),
    )


def describe_classic(group: ConsumerGroup) -> GroupDescription:
    return GroupDescription(
        group.group_id,
        group.state.value,
        "consumer",
        group.assignor_name if group.members else "",
        [_member(group, m) for m in group.members.values()],
    )
