"""The classic group coordinator: Kafka's JoinGroup/SyncGroup/Heartbeat/LeaveGroup state machine.

Synchronous and clock-driven: every call takes the time from ``clock`` (ms), answers that must
wait for a rebalance are `Completion`s the caller awaits, and time-based work (initial delay,
rebalance and session timeouts, offset expiry) runs from `poll`, which the Trio shell calls when
`next_deadline` is reached. ``on_deadline`` is told whenever an earlier deadline appears.

This module holds the request entry points and member bookkeeping; the timers and the rebalance
state machine are `RebalanceMixin` (``group_rebalance.py``), offsets and group administration
`OffsetsAndAdminMixin` (``group_offsets_admin.py``).
"""

from __future__ import annotations

import itertools
import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from kafkacompat.coordinators.group import (
    Completion,
    Group,
    GroupConfig,
    GroupState,
    JoinResult,
    Member,
    SyncResult,
)
from kafkacompat.coordinators.group_offsets import GroupOffsetStore
from kafkacompat.coordinators.group_offsets_admin import OffsetsAndAdminMixin
from kafkacompat.coordinators.group_persistence import restored_group
from kafkacompat.coordinators.group_rebalance import RebalanceMixin
from kafkacompat.coordinators.offset_manager import OffsetManager
from kafkacompat.errors import ErrorCode, KafkaError

log = logging.getLogger("kafkacompat.groups")

E = ErrorCode
State = GroupState


class GroupCoordinator(RebalanceMixin, OffsetsAndAdminMixin):
    def __init__(
        self,
        store: GroupOffsetStore,
        config: GroupConfig,
        clock: Callable[[], int],
        on_deadline: Callable[[], None] = lambda: None,
    ) -> None:
        self.config = config
        self.clock = clock
        self.on_deadline = on_deadline
        self.groups: dict[str, Group] = {}
        self.offsets = OffsetManager(store, config.offsets_retention_ms)
        self._timers: list[tuple[int, int, str, str, str]] = []
        self._seq = itertools.count()
        self._next_expiry = -1
        self._load(store)

    # -- start-up --------------------------------------------------------------------------------

    def _load(self, store: GroupOffsetStore) -> None:
        loaded = store.load()
        self.offsets.load(loaded.offsets)
        now = self.clock()
        for group_id, stored in loaded.groups.items():
            group = restored_group(group_id, stored)
            for member in group.members.values():
                self._schedule_session(group, member, now)
            self.groups[group_id] = group
        for group_id in self.offsets.groups():
            self.groups.setdefault(group_id, Group(group_id))
        self._schedule_expiry(now)

    # -- membership changes ----------------------------------------------------------------------

    def _add_member_and_rebalance(
        self, group: Group, member: Member, now: int
    ) -> Completion[JoinResult]:
        completion: Completion[JoinResult] = Completion()
        member.join_completion = completion
        member.is_new = True
        group.add(member)
        if group.is_(State.PREPARING_REBALANCE) and group.initial_delay_remaining >= 0:
            group.new_member_added = True
        self._maybe_prepare_rebalance(group, now)
        return completion

    def _update_member_and_rebalance(
        self, group: Group, member: Member, request: JoinRequest, now: int
    ) -> Completion[JoinResult]:
        member.finish_join(JoinResult(E.REBALANCE_IN_PROGRESS, member.member_id))
        self._update_member(member, request)
        completion: Completion[JoinResult] = Completion()
        member.join_completion = completion
        self._maybe_prepare_rebalance(group, now)
        return completion

    @staticmethod
    def _update_member(member: Member, request: JoinRequest) -> None:
        member.protocols = request.protocols
        member.rebalance_timeout_ms = request.rebalance_timeout_ms
        member.session_timeout_ms = request.session_timeout_ms
        member.client_id = request.client_id
        member.client_host = request.client_host

    # -- JoinGroup -------------------------------------------------------------------------------

    def join_group(self, request: JoinRequest) -> Completion[JoinResult]:
        now = self.clock()
        fail = _join_failure(request.member_id)
        if not request.group_id:
            return fail(E.INVALID_GROUP_ID)
        if not (
            self.config.min_session_timeout_ms
            <= request.session_timeout_ms
            <= self.config.max_session_timeout_ms
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

    def _new_member(self, request: JoinRequest, member_id: str) -> Member:
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
            deadline = now + request.session_timeout_ms
            group.pending_members[member_id] = deadline
            self._schedule(deadline, "pending", group.group_id, member_id)
            return _join_failure(member_id)(E.MEMBER_ID_REQUIRED)
        return self._add_member_and_rebalance(group, self._new_member(request, member_id), now)

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
        self._update_member(member, request)
        completion: Completion[JoinResult] = Completion()
        member.join_completion = completion
        self._schedule_session(group, member, now)
        if group.is_(State.STABLE):
            unchanged = (
                group.select_protocol() == group.protocol_name
                and member.metadata(group.protocol_name or "") == old_metadata
            )
            if unchanged:
                self._store_group(group)
                member.finish_join(self._generation_result(group, member, skip=True))
                return completion
            self._maybe_prepare_rebalance(group, now)
        elif group.is_(State.COMPLETING_REBALANCE):
            # The leader may be assigning to the old member id: start over.
            self._prepare_rebalance(group, now)
        self._try_complete_join(group, now)
        return completion

    def _join_known_member(
        self, group: Group, request: JoinRequest, now: int
    ) -> Completion[JoinResult]:
        fail = _join_failure(request.member_id)
        member_id = request.member_id
        if member_id in group.pending_members:
            return self._add_member_and_rebalance(group, self._new_member(request, member_id), now)
        if group.static_member_fenced(member_id, request.group_instance_id):
            return fail(E.FENCED_INSTANCE_ID)
        member = group.members.get(member_id)
        if member is None or group.is_(State.EMPTY, State.DEAD):
            return fail(E.UNKNOWN_MEMBER_ID)
        if group.is_(State.PREPARING_REBALANCE):
            return self._update_member_and_rebalance(group, member, request, now)
        if group.is_(State.COMPLETING_REBALANCE):
            if member.matches(request.protocols):
                return Completion.of(self._generation_result(group, member))
            return self._update_member_and_rebalance(group, member, request, now)
        # Stable
        if member_id == group.leader_id or not member.matches(request.protocols):
            return self._update_member_and_rebalance(group, member, request, now)
        return Completion.of(self._generation_result(group, member))

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
        now = self.clock()
        group = self.groups.get(group_id)
        error = self._validate_member(group, member_id, group_instance_id, generation_id)
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
        self._schedule_session(group, member, now)
        self._synced(group, member_id)
        if group.is_(State.STABLE):
            return Completion.of(self._sync_result(group, member))
        member.finish_sync(SyncResult(E.REBALANCE_IN_PROGRESS))
        completion: Completion[SyncResult] = Completion()
        member.sync_completion = completion
        if member_id == group.leader_id:
            for each in group.members.values():
                each.assignment = assignments.get(each.member_id, b"")
            try:
                self._store_group(group)
            except KafkaError:
                log.exception("group %s: storing the assignment failed", group_id)
                for each in group.members.values():
                    each.assignment = b""
                    each.finish_sync(SyncResult(E.COORDINATOR_NOT_AVAILABLE))
                self._maybe_prepare_rebalance(group, now)
                return completion
            group.transition(State.STABLE, now)
            for each in group.members.values():
                each.finish_sync(self._sync_result(group, each))
        return completion

    @staticmethod
    def _synced(group: Group, member_id: str) -> None:
        group.pending_sync.discard(member_id)
        if not group.pending_sync:
            group.sync_deadline = -1

    @staticmethod
    def _sync_result(group: Group, member: Member) -> SyncResult:
        return SyncResult(E.NONE, group.protocol_type, group.protocol_name, member.assignment)

    def _validate_member(
        self, group: Group | None, member_id: str, instance_id: str | None, generation_id: int
    ) -> ErrorCode:
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

    def heartbeat(
        self, group_id: str, member_id: str, group_instance_id: str | None, generation_id: int
    ) -> ErrorCode:
        now = self.clock()
        group = self.groups.get(group_id)
        error = self._validate_member(group, member_id, group_instance_id, generation_id)
        if error is not E.NONE:
            return error
        assert group is not None
        if group.is_(State.EMPTY):
            return E.UNKNOWN_MEMBER_ID
        self._schedule_session(group, group.members[member_id], now)
        if group.is_(State.PREPARING_REBALANCE):
            return E.REBALANCE_IN_PROGRESS
        return E.NONE

    def leave_group(
        self, group_id: str, members: list[tuple[str, str | None]]
    ) -> tuple[ErrorCode, list[ErrorCode]]:
        """Remove members given as (member id, instance id); errors per member."""
        now = self.clock()
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
                self._try_complete_join(group, now)
                errors.append(E.NONE)
            elif (member := group.members.get(member_id)) is not None:
                log.info("group %s: member %s left", group_id, member_id)
                self._remove_member_and_update_group(group, member, now)
                errors.append(E.NONE)
            else:
                errors.append(E.UNKNOWN_MEMBER_ID)
        return E.NONE, errors


@dataclass(frozen=True, slots=True)
class JoinRequest:
    group_id: str
    member_id: str
    group_instance_id: str | None
    protocol_type: str
    protocols: list[tuple[str, bytes]]
    session_timeout_ms: int
    rebalance_timeout_ms: int
    client_id: str = ""
    client_host: str = ""
    require_known_member_id: bool = True


def _join_failure(member_id: str) -> Callable[[ErrorCode], Completion[JoinResult]]:
    def fail(error: ErrorCode) -> Completion[JoinResult]:
        return Completion.of(JoinResult(error, member_id))

    return fail
