"""What a classic group says about itself: request checks, its description, its offsets' rules.

Pure reads of a `Group`: nothing here changes a group or schedules anything.
"""

from __future__ import annotations

from kafkacompat.coordinators.group import (
    Group,
    GroupDescription,
    GroupState,
    Member,
    MemberDescription,
)
from kafkacompat.coordinators.offset_manager import ExpiryRule
from kafkacompat.errors import ErrorCode
from kafkacompat.protocol.messages import consumer_protocol_subscription

E = ErrorCode
State = GroupState

CONSUMER_PROTOCOL_TYPE = "consumer"


def subscribed_topics(group: Group) -> set[str] | None:
    """Topics the members of a consumer group subscribe to; None when it cannot be told."""
    if group.protocol_type != CONSUMER_PROTOCOL_TYPE or group.protocol_name is None:
        return None
    topics: set[str] = set()
    for member in group.members.values():
        data = member.metadata(group.protocol_name)
        try:
            version = int.from_bytes(data[:2], "big", signed=True)
            decoder = consumer_protocol_subscription.DECODERS[min(max(version, 0), 3)]
            subscription, _ = decoder(memoryview(data)[2:], 0)
        except Exception:  # a member's metadata we cannot read: leave every topic alone
            return None
        topics.update(subscription.topics)
    return topics


def member_error(
    group: Group | None, member_id: str, instance_id: str | None, generation_id: int
) -> ErrorCode:
    """Whether a SyncGroup or Heartbeat comes from a member of the current generation."""
    if group is None:
        return E.UNKNOWN_MEMBER_ID
    if group.is_(State.DEAD):
        return E.COORDINATOR_NOT_AVAILABLE
    if group.static_member_fenced(member_id, instance_id):
        return E.FENCED_INSTANCE_ID
    if member_id not in group.members:
        return E.UNKNOWN_MEMBER_ID
    if generation_id != group.generation_id:
        return E.ILLEGAL_GENERATION
    return E.NONE


def offset_commit_check(
    group: Group, member_id: str, instance_id: str | None, generation_id: int
) -> tuple[ErrorCode, Member | None]:
    """Whether an OffsetCommit is accepted, and the member whose session it keeps alive.

    One without a generation is accepted while the group is Empty; otherwise it must come from
    a member of the current generation, and not while the group completes a rebalance.
    """
    if group.is_(State.DEAD):
        return E.COORDINATOR_NOT_AVAILABLE, None
    if group.static_member_fenced(member_id, instance_id):
        return E.FENCED_INSTANCE_ID, None
    if generation_id < 0 and group.is_(State.EMPTY):
        return E.NONE, None
    if group.is_(State.COMPLETING_REBALANCE):
        return E.REBALANCE_IN_PROGRESS, None
    member = group.members.get(member_id)
    if member is None:
        return E.UNKNOWN_MEMBER_ID, None
    if generation_id != group.generation_id:
        return E.ILLEGAL_GENERATION, None
    return E.NONE, member


def offset_delete_check(group: Group) -> tuple[ErrorCode, frozenset[str]]:
    """An Empty group may lose any offset; a consumer group only those of topics no member
    subscribes to; any other group none."""
    if group.is_(State.DEAD):
        return E.GROUP_ID_NOT_FOUND, frozenset()
    if group.is_(State.EMPTY):
        return E.NONE, frozenset()
    topics = subscribed_topics(group)
    if topics is None:
        return E.NON_EMPTY_GROUP, frozenset()
    return E.NONE, frozenset(topics)


def offset_expiry(group: Group) -> ExpiryRule | None:
    """A group used only for offsets ages from each commit; an Empty group with a protocol type
    from when it became Empty; a Stable consumer group keeps its subscribed topics' offsets;
    no offset expires in any other state."""
    if group.protocol_type is None:
        return ExpiryRule()
    if group.is_(State.EMPTY):
        return ExpiryRule(since=group.state_timestamp)
    if group.is_(State.STABLE):
        topics = subscribed_topics(group)
        return None if topics is None else ExpiryRule(keep_topics=frozenset(topics))
    return None


def describe(group: Group) -> GroupDescription:
    """DescribeGroups: member metadata, assignments and the protocol only once Stable."""
    stable = group.is_(State.STABLE)
    protocol = group.protocol_name or ""
    members = [
        MemberDescription(
            m.member_id,
            m.group_instance_id,
            m.client_id,
            m.client_host,
            m.metadata(protocol) if stable else b"",
            m.assignment if stable else b"",
        )
        for m in group.members.values()
    ]
    return GroupDescription(
        group.group_id,
        group.state.value,
        group.protocol_type or "",
        protocol if stable else "",
        members,
    )
