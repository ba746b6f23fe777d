"""Members using the classic protocol inside a consumer group (Kafka 4.0's
classicGroupJoin/Sync/Heartbeat/LeaveToConsumerGroup).

A classic consumer (JoinGroup/SyncGroup/Heartbeat/LeaveGroup) in a consumer group is a member
like the others: the broker computes its target, and it reconciles towards it at each JoinGroup,
reporting what it owns in its embedded subscription. Its generation is its member epoch; it gets
its assignment in SyncGroup (no leader assigns), and REBALANCE_IN_PROGRESS on Heartbeat when it
must rejoin: the group epoch moved past it, it has partitions to revoke, or partitions it waited
for are free. It has its own session timeout, must rejoin within its rebalance timeout once told
to, and must sync within it after joining.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable

from kafkacompat.coordinators.consumer_group_describe import by_name
from kafkacompat.coordinators.consumer_group_heartbeat import TopicsView
from kafkacompat.coordinators.consumer_group_migration import (
    CONSUMER_PROTOCOL_TYPE,
    MalformedProtocol,
    downgrade_allowed_on_replace,
    encode_assignment,
    owned_partitions,
    read_subscription,
)
from kafkacompat.coordinators.consumer_group_reconcile import reconcile
from kafkacompat.coordinators.consumer_group_state import (
    STATIC_LEAVE_EPOCH,
    ClassicMemberMetadata,
    ConsumerGroup,
    ConsumerMember,
    MemberState,
)
from kafkacompat.coordinators.consumer_groups import CLASSIC_JOIN, CLASSIC_SYNC, ConsumerGroups
from kafkacompat.coordinators.group import GroupConfig, JoinRequest, JoinResult, SyncResult
from kafkacompat.errors import ErrorCode

log = logging.getLogger("kafkacompat.groups")

E = ErrorCode


class ClassicMembers:
    """The classic protocol's requests to non-empty consumer groups held by ``groups``."""

    def __init__(
        self, groups: ConsumerGroups, config: GroupConfig, clock: Callable[[], int]
    ) -> None:
        self._groups = groups
        self._config = config
        self._clock = clock

    # -- JoinGroup -------------------------------------------------------------------------------

    def join(self, group: ConsumerGroup, request: JoinRequest, topics: TopicsView) -> JoinResult:
        now = self._clock()
        member_id = request.member_id or str(uuid.uuid4())
        if not (
            self._config.min_session_timeout_ms
            <= request.session_timeout_ms
            <= self._config.max_session_timeout_ms
        ):
            return JoinResult(E.INVALID_SESSION_TIMEOUT, request.member_id)
        max_size = self._groups.config.max_size
        if len(group.members) >= max_size and member_id not in group.members:
            return JoinResult(E.GROUP_MAX_SIZE_REACHED, request.member_id)
        names = [name for name, _ in request.protocols]
        if not group.supports_classic_protocols(request.protocol_type, names):
            return JoinResult(E.INCONSISTENT_GROUP_PROTOCOL, request.member_id)
        unknown = not request.member_id and request.group_instance_id is None
        if unknown and request.require_known_member_id:
            return JoinResult(E.MEMBER_ID_REQUIRED, member_id)
        try:
            subscription = read_subscription(request.protocols[0][1])
        except MalformedProtocol:
            return JoinResult(E.INCONSISTENT_GROUP_PROTOCOL, request.member_id)
        found = self._member(group, member_id, request)
        if isinstance(found, ErrorCode):
            return JoinResult(found, request.member_id)
        member, changed, replaced_consumer_member = found
        member.rebalance_timeout_ms = request.rebalance_timeout_ms
        member.client_id = request.client_id
        member.client_host = request.client_host
        member.server_assignor = None
        if subscription.rack_id is not None:
            member.rack_id = subscription.rack_id
        member.classic = ClassicMemberMetadata(request.session_timeout_ms, list(request.protocols))
        subscribed = tuple(sorted(set(subscription.topics)))
        changed |= subscribed != member.subscribed_topic_names
        member.subscribed_topic_names = subscribed
        if self._groups.refresh_topics(group, topics) or changed:
            group.bump_epoch()
        if group.group_epoch > group.assignment_epoch:
            self._groups.assign(group)
        reconcile(group, member, owned_partitions(subscription, topics), now)
        member.join_deadline = -1
        self._groups.touch_session(group, member, now)
        self._groups.schedule_classic(group, member, CLASSIC_SYNC)
        if member.state is MemberState.UNREVOKED_PARTITIONS:
            self._groups.schedule_revocation(group, member)
        self._groups.save(group)
        policy = self._groups.config.migration_policy
        if replaced_consumer_member and downgrade_allowed_on_replace(group, policy):
            # It took the place of the last consumer-protocol member: the group is classic now.
            self._groups.downgrade(group, "")
        return JoinResult(
            E.NONE,
            member.member_id,
            member.member_epoch,
            CONSUMER_PROTOCOL_TYPE,
            member.classic.protocol_name,
            leader="",
        )

    def _member(
        self, group: ConsumerGroup, member_id: str, request: JoinRequest
    ) -> tuple[ConsumerMember, bool, bool] | ErrorCode:
        """The joining member, found or added; whether it is new, and whether it replaced a
        static member using the consumer protocol."""
        instance_id = request.group_instance_id
        if instance_id is not None:
            current = group.static_members.get(instance_id)
            if current is not None and current != member_id:
                if request.member_id:
                    return E.FENCED_INSTANCE_ID
                # A static member back under a new member id takes its old one's place.
                new = ConsumerMember(member_id, instance_id)
                old = group.members[current]
                new.subscribed_topic_names = old.subscribed_topic_names
                new.rebalance_timeout_ms = old.rebalance_timeout_ms
                group.replace(current, new)
                if new.member_epoch == STATIC_LEAVE_EPOCH:
                    new.member_epoch = new.previous_member_epoch
                return new, False, old.classic is None
        member = group.members.get(member_id)
        if member is not None:
            if member.classic is None:
                return E.UNKNOWN_MEMBER_ID  # a member of the consumer protocol
            return member, False, False
        new = ConsumerMember(member_id, instance_id)
        group.add(new)
        return new, True, False

    # -- SyncGroup, Heartbeat, LeaveGroup --------------------------------------------------------

    def _validate(
        self, group: ConsumerGroup, member_id: str, instance_id: str | None, generation: int
    ) -> ConsumerMember | ErrorCode:
        if instance_id is None:
            member = group.members.get(member_id)
        else:
            current = group.static_members.get(instance_id)
            member = None if current is None else group.members.get(current)
            if member is not None and member.member_id != member_id:
                return E.FENCED_INSTANCE_ID
        if member is None or member.classic is None:
            return E.UNKNOWN_MEMBER_ID
        if generation != member.member_epoch:
            return E.ILLEGAL_GENERATION
        return member

    def sync(
        self,
        group: ConsumerGroup,
        generation_id: int,
        member_id: str,
        instance_id: str | None,
        protocol_type: str | None,
        protocol_name: str | None,
    ) -> SyncResult:
        found = self._validate(group, member_id, instance_id, generation_id)
        if isinstance(found, ErrorCode):
            return SyncResult(found)
        member = found
        assert member.classic is not None
        name = member.classic.protocol_name
        if (protocol_type is not None and protocol_type != CONSUMER_PROTOCOL_TYPE) or (
            protocol_name is not None and protocol_name != name
        ):
            return SyncResult(E.INCONSISTENT_GROUP_PROTOCOL)
        if (
            group.group_epoch > member.member_epoch
            and member.state is not MemberState.UNREVOKED_PARTITIONS
        ):
            self._schedule_join_if_absent(group, member)
            return SyncResult(E.REBALANCE_IN_PROGRESS)
        member.sync_deadline = -1
        self._groups.touch_session(group, member, self._clock())
        assignment = encode_assignment(
            by_name(group, member.assigned), member.classic.protocols[0][1]
        )
        return SyncResult(E.NONE, protocol_type, protocol_name, assignment)

    def heartbeat(
        self, group: ConsumerGroup, member_id: str, instance_id: str | None, generation_id: int
    ) -> ErrorCode:
        found = self._validate(group, member_id, instance_id, generation_id)
        if isinstance(found, ErrorCode):
            return found
        member = found
        self._groups.touch_session(group, member, self._clock())
        rejoin = (
            member.member_epoch < group.group_epoch
            or member.state is MemberState.UNREVOKED_PARTITIONS
            or (
                member.state is MemberState.UNRELEASED_PARTITIONS
                and not group.waiting_on_unreleased(member)
            )
        )
        if rejoin:
            self._schedule_join_if_absent(group, member)
            return E.REBALANCE_IN_PROGRESS
        return E.NONE

    def _schedule_join_if_absent(self, group: ConsumerGroup, member: ConsumerMember) -> None:
        if member.join_deadline < 0:
            self._groups.schedule_classic(group, member, CLASSIC_JOIN)

    def leave(
        self, group: ConsumerGroup, members: list[tuple[str, str | None]]
    ) -> tuple[ErrorCode, list[ErrorCode]]:
        """LeaveGroup of classic members (given as member id, instance id): each goes at once."""
        errors = []
        for member_id, instance_id in members:
            if instance_id is None:
                member = group.members.get(member_id)
            else:
                current = group.static_members.get(instance_id)
                member = None if current is None else group.members.get(current)
                if member is not None and member_id and member.member_id != member_id:
                    errors.append(E.FENCED_INSTANCE_ID)
                    continue
            if member is None or member.classic is None:
                errors.append(E.UNKNOWN_MEMBER_ID)
                continue
            log.info("group %s: classic member %s left", group.group_id, member.member_id)
            self._groups.remove_member(group, member.member_id)
            errors.append(E.NONE)
        self._groups.save(group)
        return E.NONE, errors
