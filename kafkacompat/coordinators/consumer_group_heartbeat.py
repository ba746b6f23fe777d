"""What a ConsumerGroupHeartbeat asks and answers, and its checks: of the request alone, and of
a known member's epoch.

The handler translates the wire message into a `Heartbeat` and the coordinator's
`HeartbeatResult` back; these are the facts of the request, validated as Kafka does.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from kafkacompat.coordinators.assignors import Assignment, assignor_named
from kafkacompat.coordinators.consumer_group_state import (
    LEAVE_EPOCH,
    STATIC_LEAVE_EPOCH,
    ConsumerMember,
    compiled_regex,
)
from kafkacompat.errors import ErrorCode

E = ErrorCode


#: Topics as the coordinator sees them: name -> (topic id, partition count).
TopicsView = Mapping[str, tuple[uuid.UUID, int]]


@dataclass(frozen=True, slots=True)
class Heartbeat:
    group_id: str
    member_id: str
    member_epoch: int
    instance_id: str | None = None
    rack_id: str | None = None
    rebalance_timeout_ms: int = -1
    subscribed_topic_names: tuple[str, ...] | None = None
    subscribed_topic_regex: str | None = None
    server_assignor: str | None = None
    #: The partitions the member owns now; None when unchanged since its last heartbeat.
    owned: list[tuple[uuid.UUID, list[int]]] | None = None
    client_id: str = ""
    client_host: str = ""
    #: The request's version: from v1 the client generates the member id.
    version: int = 1


@dataclass(slots=True)
class HeartbeatResult:
    error: int
    message: str | None = None
    member_id: str | None = None
    member_epoch: int = 0
    heartbeat_interval_ms: int = 0
    #: Sent only when the member must learn it (joined, or it changed).
    assignment: Assignment | None = None


def fail(error: int, message: str | None = None) -> HeartbeatResult:
    return HeartbeatResult(error, message)


def request_error(hb: Heartbeat, assignors: Mapping[str, object]) -> HeartbeatResult | None:
    """Kafka's checks of a heartbeat before it looks at the group (None: it is well formed)."""
    invalid = E.INVALID_REQUEST
    if not hb.group_id:
        return fail(invalid, "GroupId can't be empty.")
    if hb.instance_id is not None and not hb.instance_id:
        return fail(invalid, "InstanceId can't be empty.")
    if hb.rack_id is not None and not hb.rack_id:
        return fail(invalid, "RackId can't be empty.")
    if hb.version >= 1 and not hb.member_id:
        return fail(invalid, "MemberId can't be empty.")
    epoch = hb.member_epoch
    if epoch > 0 or epoch == LEAVE_EPOCH:
        if not hb.member_id:
            return fail(invalid, "MemberId can't be empty.")
    elif epoch == 0:
        if hb.rebalance_timeout_ms == -1:
            return fail(invalid, "RebalanceTimeoutMs must be provided in first request.")
        if hb.owned is None or hb.owned:
            return fail(invalid, "TopicPartitions must be empty when (re-)joining.")
        if not hb.subscribed_topic_names and hb.subscribed_topic_regex is None:
            return fail(
                invalid,
                "SubscribedTopicNames or SubscribedTopicRegex must be set in first request.",
            )
    elif epoch == STATIC_LEAVE_EPOCH:
        if not hb.member_id:
            return fail(invalid, "MemberId can't be empty.")
        if hb.instance_id is None:
            return fail(invalid, "InstanceId can't be null.")
    else:
        return fail(invalid, "MemberEpoch is invalid.")
    if hb.server_assignor is not None and (
        hb.server_assignor not in assignors or assignor_named(hb.server_assignor) is None
    ):
        return fail(
            E.UNSUPPORTED_ASSIGNOR,
            f"ServerAssignor {hb.server_assignor} is not supported. "
            f"Supported assignors: {', '.join(assignors)}.",
        )
    if hb.subscribed_topic_regex is not None:
        try:
            compiled_regex(hb.subscribed_topic_regex)
        except re.error as exc:
            return fail(
                ErrorCode.INVALID_REGULAR_EXPRESSION,
                f"SubscribedTopicRegex `{hb.subscribed_topic_regex}` is not a valid regular "
                f"expression: {exc}.",
            )
    return None


def epoch_error(member: ConsumerMember, hb: Heartbeat) -> HeartbeatResult | None:
    """A known member's epoch: ahead of ours is fenced; behind only by the one step it has not
    heard of yet, owning nothing it was not given."""
    if hb.member_epoch > member.member_epoch:
        return fail(
            E.FENCED_MEMBER_EPOCH,
            f"The consumer group member has a greater member epoch ({hb.member_epoch}) than "
            f"the one known by the group coordinator ({member.member_epoch}).",
        )
    if hb.member_epoch < member.member_epoch:
        owned = hb.owned
        ok = hb.member_epoch == member.previous_member_epoch and owned is not None
        if ok and owned is not None:
            ok = all(frozenset(p) <= member.assigned.get(t, frozenset()) for t, p in owned)
        if not ok:
            return fail(
                E.FENCED_MEMBER_EPOCH,
                f"The consumer group member has a smaller member epoch ({hb.member_epoch}) "
                f"than the one known by the group coordinator ({member.member_epoch}).",
            )
    return None
