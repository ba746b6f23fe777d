"""The classic group state machine: Kafka's JoinGroup/SyncGroup/Heartbeat/LeaveGroup.

Synchronous and clock-driven: every call takes the time from ``clock`` (ms), and answers that must
wait for a rebalance are `Completion`s the caller awaits. `ClassicGroups` owns the classic groups,
handles their requests and answers the coordinator's group-type questions (`GroupTypeModule`);
rebalances and their deadlines are its `ClassicRebalancer`'s.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping

from kafkacompat.coordinators.classic_checks import (
    describe,
    member_error,
    offset_commit_check,
    offset_delete_check,
    offset_expiry,
)
from kafkacompat.coordinators.classic_rebalance import ClassicRebalancer
from kafkacompat.coordinators.group import (
    Completion,
    Group,
    GroupConfig,
    GroupDescription,
    GroupState,
    JoinRequest,
    JoinResult,
    Member,
    SyncResult,
)
from kafkacompat.coordinators.group_offsets import StoredGroup
from kafkacompat.coordinators.group_persistence import restored_group
from kafkacompat.coordinators.group_timers import TimerKey, TimerQueue
from kafkacompat.coordinators.group_types import CLASSIC
from kafkacompat.coordinators.offset_manager import ExpiryRule, OffsetManager
from kafkacompat.errors import ErrorCode, KafkaError

log = logging.getLogger("kafkacompat.groups")

E = ErrorCode
State = GroupState


class ClassicGroups:
    """The classic groups by id, and the requests of the classic protocol."""

    group_type = CLASSIC

    def __init__(
        self,
        config: GroupConfig,
        clock: Callable[[], int],
        offsets: OffsetManager,
        timers: TimerQueue,
    ) -> None:
        self.groups: dict[str, Group] = {}
        self._config = config
        self._clock = clock
        self._offsets = offsets
        self._rebalance = ClassicRebalancer(config, timers, offsets)

    def load(self, stored: Mapping[str, StoredGroup], now: int) -> None:
        """Restore stored groups; their members' sessions start again from ``now``."""
        for group_id, each in stored.items():
            group = restored_group(group_id, each)
            for member in group.members.values():
                self._rebalance.schedule_session(group, member, now)
            self.groups[group_id] = group

    def adopt(self, group: Group, now: int, rebalance: bool = True) -> None:
        """A Stable group converted from a consumer group: held, stored, its members' sessions
        begun, and (``rebalance``) a rebalance started for them to rejoin as a classic group."""
        self.groups[group.group_id] = group
        for member in group.members.values():
            self._rebalance.schedule_session(group, member, now)
        self._rebalance.store_group(group)
        if rebalance:
            self._rebalance.prepare_rebalance(group, now)

    def create_group(self, group_id: str, state_timestamp: int) -> None:
        """An Empty group without members, as a group that only stores offsets starts out."""
        self.groups[group_id] = Group(group_id, state_timestamp=state_timestamp)

    # -- JoinGroup -------------------------------------------------------------------------------

    def join_group(self, request: JoinRequest) -> Completion[JoinResult]:
        now = self._clock()
        fail = _join_failure(request.member_id)
        if not request.group_id:
            return fail(E.INVALID_GROUP_ID)
        if not (
            self._config.min_session_timeout_ms
            <= request.session_timeout_ms
            <= self._config.max_session_timeout_ms
        ):
            return fail(E.INVALID_SESSION_TIMEOUT)
        group = self.groups.get(request.group_id)
        if group is None:
            if request.member_id:
                return fail(E.UNKNOWN_MEMBER_ID)
            group = self.groups[request.group_id] = Group(request.group_id, state_timestamp=now)
        if not group.supports_protocols(request.protocol_type, [n for n, _ in request.protocols]):
            return fail(E.INCONSISTENT_GROUP_PROTOCOL)
        if not request.member_id:
            return self._join_new_member(group, request, now)
        return self._join_known_member(group, request, now)

    def _join_new_member(
        self, group: Group, request: JoinRequest, now: int
    ) -> Completion[JoinResult]:
        member_id = f"{request.client_id}-{uuid.uuid4()}"
        instance_id = request.group_instance_id
        if instance_id is not None:
            old_id = group.static_members.get(instance_id)
            if old_id is not None:
                return self._replace_static_member(group, old_id, member_id, request, now)
        elif request.require_known_member_id:
            self._rebalance.schedule_pending(group, member_id, now + request.session_timeout_ms)
            return _join_failure(member_id)(E.MEMBER_ID_REQUIRED)
        return self._add_member_and_rebalance(group, _new_member(request, member_id), now)

    def _replace_static_member(
        self, group: Group, old_id: str, new_id: str, request: JoinRequest, now: int
    ) -> Completion[JoinResult]:
        """KIP-345: a known instance id takes over its old member, fencing the old member id."""
        assert request.group_instance_id is not None
        member = group.members[old_id]
        old_metadata = member.metadata(group.protocol_name or "")
        member.finish_join(JoinResult(E.FENCED_INSTANCE_ID, old_id))
        member.finish_sync(SyncResult(E.FENCED_INSTANCE_ID))
        group.replace_static_member(request.group_instance_id, old_id, new_id)
        _update_member(member, request)
        completion: Completion[JoinResult] = Completion()
        member.join_completion = completion
        self._rebalance.schedule_session(group, member, now)
        if group.is_(State.STABLE):
            unchanged = (
                group.select_protocol() == group.protocol_name
                and member.metadata(group.protocol_name or "") == old_metadata
            )
            if unchanged:
                self._rebalance.store_group(group)
                member.finish_join(self._rebalance.generation_result(group, member, skip=True))
                return completion
            self._rebalance.maybe_prepare_rebalance(group, now)
        elif group.is_(State.COMPLETING_REBALANCE):
            # The leader may be assigning to the old member id: start over.
            self._rebalance.prepare_rebalance(group, now)
        self._rebalance.try_complete_join(group, now)
        return completion

    def _join_known_member(
        self, group: Group, request: JoinRequest, now: int
    ) -> Completion[JoinResult]:
        fail = _join_failure(request.member_id)
        member_id = request.member_id
        if member_id in group.pending_members:
            return self._add_member_and_rebalance(group, _new_member(request, member_id), now)
        if group.static_member_fenced(member_id, request.group_instance_id):
            return fail(E.FENCED_INSTANCE_ID)
        member = group.members.get(member_id)
        if member is None or group.is_(State.EMPTY, State.DEAD):
            return fail(E.UNKNOWN_MEMBER_ID)
        if group.is_(State.PREPARING_REBALANCE):
            return self._update_member_and_rebalance(group, member, request, now)
        if group.is_(State.COMPLETING_REBALANCE):
            if member.matches(request.protocols):
                return Completion.of(self._rebalance.generation_result(group, member))
            return self._update_member_and_rebalance(group, member, request, now)
        # Stable
        if member_id == group.leader_id or not member.matches(request.protocols):
            return self._update_member_and_rebalance(group, member, request, now)
        return Completion.of(self._rebalance.generation_result(group, member))

    def _add_member_and_rebalance(
        self, group: Group, member: Member, now: int
    ) -> Completion[JoinResult]:
        completion: Completion[JoinResult] = Completion()
        member.join_completion = completion
        member.is_new = True
        group.add(member)
        if group.is_(State.PREPARING_REBALANCE) and group.initial_delay_remaining >= 0:
            group.new_member_added = True
        self._rebalance.maybe_prepare_rebalance(group, now)
        return completion

    def _update_member_and_rebalance(
        self, group: Group, member: Member, request: JoinRequest, now: int
    ) -> Completion[JoinResult]:
        member.finish_join(JoinResult(E.REBALANCE_IN_PROGRESS, member.member_id))
        _update_member(member, request)
        completion: Completion[JoinResult] = Completion()
        member.join_completion = completion
        self._rebalance.maybe_prepare_rebalance(group, now)
        return completion

    # -- SyncGroup, Heartbeat, LeaveGroup --------------------------------------------------------

    def sync_group(
        self,
        group_id: str,
        generation_id: int,
        member_id: str,
        group_instance_id: str | None,
        protocol_type: str | None,
        protocol_name: str | None,
        assignments: Mapping[str, bytes],
    ) -> Completion[SyncResult]:
        now = self._clock()
        group = self.groups.get(group_id)
        error = member_error(group, member_id, group_instance_id, generation_id)
        if error is not E.NONE:
            return Completion.of(SyncResult(error))
        assert group is not None
        if (protocol_type is not None and protocol_type != group.protocol_type) or (
            protocol_name is not None and protocol_name != group.protocol_name
        ):
            return Completion.of(SyncResult(E.INCONSISTENT_GROUP_PROTOCOL))
        if group.is_(State.PREPARING_REBALANCE):
            return Completion.of(SyncResult(E.REBALANCE_IN_PROGRESS))
        member = group.members[member_id]
        self._rebalance.schedule_session(group, member, now)
        group.pending_sync.discard(member_id)
        if not group.pending_sync:
            group.sync_deadline = -1
        if group.is_(State.STABLE):
            return Completion.of(_sync_result(group, member))
        member.finish_sync(SyncResult(E.REBALANCE_IN_PROGRESS))
        completion: Completion[SyncResult] = Completion()
        member.sync_completion = completion
        if member_id == group.leader_id:
            for each in group.members.values():
                each.assignment = assignments.get(each.member_id, b"")
            try:
                self._rebalance.store_group(group)
            except KafkaError:
                log.exception("group %s: storing the assignment failed", group_id)
                for each in group.members.values():
                    each.assignment = b""
                    each.finish_sync(SyncResult(E.COORDINATOR_NOT_AVAILABLE))
                self._rebalance.maybe_prepare_rebalance(group, now)
                return completion
            group.transition(State.STABLE, now)
            for each in group.members.values():
                each.finish_sync(_sync_result(group, each))
        return completion

    def heartbeat(
        self, group_id: str, member_id: str, group_instance_id: str | None, generation_id: int
    ) -> ErrorCode:
        now = self._clock()
        group = self.groups.get(group_id)
        error = member_error(group, member_id, group_instance_id, generation_id)
        if error is not E.NONE:
            return error
        assert group is not None
        if group.is_(State.EMPTY):
            return E.UNKNOWN_MEMBER_ID
        self._rebalance.schedule_session(group, group.members[member_id], now)
        if group.is_(State.PREPARING_REBALANCE):
            return E.REBALANCE_IN_PROGRESS
        return E.NONE

    def leave_group(
        self, group_id: str, members: list[tuple[str, str | None]]
    ) -> tuple[ErrorCode, list[ErrorCode]]:
        """Remove members given as (member id, instance id); errors per member."""
        now = self._clock()
        group = self.groups.get(group_id)
        if group is None:
            return E.NONE, [E.UNKNOWN_MEMBER_ID for _ in members]
        if group.is_(State.DEAD):
            return E.COORDINATOR_NOT_AVAILABLE, []
        errors = []
        for member_id, instance_id in members:
            if not member_id and instance_id is not None:
                member_id = group.static_members.get(instance_id, "")
                if not member_id:
                    errors.append(E.UNKNOWN_MEMBER_ID)
                    continue
            if group.static_member_fenced(member_id, instance_id):
                errors.append(E.FENCED_INSTANCE_ID)
            elif member_id in group.pending_members:
                del group.pending_members[member_id]
                self._rebalance.try_complete_join(group, now)
                errors.append(E.NONE)
            elif (member := group.members.get(member_id)) is not None:
                log.info("group %s: member %s left", group_id, member_id)
                self._rebalance.remove_member_and_update_group(group, member, now)
                errors.append(E.NONE)
            else:
                errors.append(E.UNKNOWN_MEMBER_ID)
        return E.NONE, errors

    # -- what the coordinator asks of a group type (GroupTypeModule) ------------------------------

    def has_group(self, group_id: str) -> bool:
        return group_id in self.groups

    def group_ids(self) -> list[str]:
        return list(self.groups)

    def on_timer(self, deadline: int, key: TimerKey, now: int) -> None:
        group = self.groups.get(key.group_id)
        if group is not None:
            self._rebalance.on_timer(group, deadline, key, now)

    def describe_group(self, group_id: str) -> GroupDescription:
        return describe(self.groups[group_id])

    def list_groups(self) -> list[tuple[str, str, str]]:
        return [
            (g.group_id, g.protocol_type or "", g.state.value)
            for g in self.groups.values()
            if not g.is_(State.DEAD)
        ]

    def delete_group(self, group_id: str) -> ErrorCode:
        group = self.groups[group_id]
        if group.is_(State.DEAD):
            return E.GROUP_ID_NOT_FOUND
        if not group.is_(State.EMPTY):
            return E.NON_EMPTY_GROUP
        self._offsets.delete_group(group_id)
        group.state = State.DEAD
        del self.groups[group_id]
        return E.NONE

    def delete_if_empty(self, group_id: str) -> None:
        group = self.groups[group_id]
        if group.is_(State.EMPTY):
            group.state = State.DEAD
            self._offsets.delete_group(group_id)
            del self.groups[group_id]

    def validate_offset_commit(
        self,
        group_id: str,
        member_id: str,
        group_instance_id: str | None,
        generation_id: int,
        now: int,
    ) -> ErrorCode:
        group = self.groups[group_id]
        error, member = offset_commit_check(group, member_id, group_instance_id, generation_id)
        if member is not None:
            self._rebalance.schedule_session(group, member, now)
        return error

    def validate_offset_delete(self, group_id: str) -> tuple[ErrorCode, frozenset[str]]:
        return offset_delete_check(self.groups[group_id])

    def offset_expiry(self, group_id: str) -> ExpiryRule | None:
        return offset_expiry(self.groups[group_id])


def _new_member(request: JoinRequest, member_id: str) -> Member:
    return Member(
        member_id,
        request.group_instance_id,
        request.client_id,
        request.client_host,
        request.rebalance_timeout_ms,
        request.session_timeout_ms,
        request.protocol_type,
        request.protocols,
    )


def _update_member(member: Member, request: JoinRequest) -> None:
    member.protocols = request.protocols
    member.rebalance_timeout_ms = request.rebalance_timeout_ms
    member.session_timeout_ms = request.session_timeout_ms
    member.client_id = request.client_id
    member.client_host = request.client_host


def _sync_result(group: Group, member: Member) -> SyncResult:
    return SyncResult(E.NONE, group.protocol_type, group.protocol_name, member.assignment)


def _join_failure(member_id: str) -> Callable[[ErrorCode], Completion[JoinResult]]:
    def fail(error: ErrorCode) -> Completion[JoinResult]:
        return Completion.of(JoinResult(error, member_id))

    return fail
