"""The classic group coordinator: Kafka's JoinGroup/SyncGroup/Heartbeat/LeaveGroup state machine.

Synchronous and clock-driven: every call takes the time from ``clock`` (ms), answers that must
wait for a rebalance are `Completion`s the caller awaits, and time-based work (initial delay,
rebalance and session timeouts, offset expiry) runs from `poll`, which the Trio shell calls when
`next_deadline` is reached. ``on_deadline`` is told whenever an earlier deadline appears.
"""

from __future__ import annotations

import heapq
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
    JoinMemberInfo,
    JoinResult,
    Member,
    SyncResult,
)
from kafkacompat.coordinators.group_offsets import (
    GroupOffsetStore,
    StoredGroup,
    StoredMember,
)
from kafkacompat.coordinators.group_offsets_admin import OffsetsAndAdminMixin
from kafkacompat.coordinators.offset_manager import OffsetManager
from kafkacompat.errors import ErrorCode, KafkaError

log = logging.getLogger("kafkacompat.groups")

E = ErrorCode
State = GroupState


class GroupCoordinator(OffsetsAndAdminMixin):
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
            group = Group(group_id, state_timestamp=stored.state_timestamp)
            group.protocol_type = stored.protocol_type
            group.generation_id = stored.generation_id
            for sm in stored.members:
                member = Member(
                    sm.member_id,
                    sm.group_instance_id,
                    sm.client_id,
                    sm.client_host,
                    sm.rebalance_timeout_ms,
                    sm.session_timeout_ms,
                    stored.protocol_type or "",
                    sm.protocols,
                    sm.assignment,
                )
                group.add(member)
                self._schedule_session(group, member, now)
            if group.members:
                group.protocol_name = stored.protocol_name
                group.leader_id = stored.leader_id if stored.leader_id in group.members else None
                group.leader_id = group.leader_id or next(iter(group.members))
                group.state = State.STABLE
            self.groups[group_id] = group
        for group_id in self.offsets.groups():
            self.groups.setdefault(group_id, Group(group_id))
        self._schedule_expiry(now)

    # -- timers ----------------------------------------------------------------------------------

    def _schedule(self, deadline: int, kind: str, group_id: str, member_id: str = "") -> None:
        earliest = self._timers[0][0] if self._timers else None
        heapq.heappush(self._timers, (deadline, next(self._seq), kind, group_id, member_id))
        if earliest is None or deadline < earliest:
            self.on_deadline()

    def _schedule_session(self, group: Group, member: Member, now: int) -> None:
        member.session_deadline = now + member.session_timeout_ms
        self._schedule(member.session_deadline, "session", group.group_id, member.member_id)

    def _schedule_expiry(self, now: int) -> None:
        self._next_expiry = now + self.config.offsets_retention_check_interval_ms
        self._schedule(self._next_expiry, "expiry", "")

    def next_deadline(self) -> int | None:
        """When `poll` next has work (possibly a stale timer, which is then dropped)."""
        return self._timers[0][0] if self._timers else None

    def poll(self) -> None:
        """Run every timer that is due."""
        now = self.clock()
        while self._timers and self._timers[0][0] <= now:
            deadline, _, kind, group_id, member_id = heapq.heappop(self._timers)
            if kind == "expiry":
                if deadline == self._next_expiry:
                    self.expire_offsets()
                    self._schedule_expiry(now)
                continue
            group = self.groups.get(group_id)
            if group is None:
                continue
            if kind == "session":
                member = group.members.get(member_id)
                if member is not None and member.session_deadline == deadline:
                    self._on_session_expired(group, member, now)
            elif kind == "pending":
                if group.pending_members.get(member_id) == deadline:
                    del group.pending_members[member_id]
                    self._try_complete_join(group, now)
            elif kind == "join":
                if group.join_deadline == deadline and group.is_(State.PREPARING_REBALANCE):
                    self._on_join_deadline(group, now)
            elif kind == "sync" and group.sync_deadline == deadline:
                self._on_sync_deadline(group, now)

    def _on_session_expired(self, group: Group, member: Member, now: int) -> None:
        if member.awaiting_join or member.awaiting_sync:
            self._schedule_session(group, member, now)
            return
        log.info("group %s: member %s session timed out", group.group_id, member.member_id)
        self._remove_member_and_update_group(group, member, now)

    def _on_join_deadline(self, group: Group, now: int) -> None:
        remaining = group.initial_delay_remaining
        if remaining > 0 and group.new_member_added:
            # Kafka's InitialDelayedJoin: keep waiting while members keep arriving.
            group.new_member_added = False
            delay = min(self.config.initial_rebalance_delay_ms, remaining)
            group.initial_delay_remaining = max(remaining - delay, 0)
            group.join_deadline = now + delay
            self._schedule(group.join_deadline, "join", group.group_id)
            return
        self._complete_join(group, now)

    def _on_sync_deadline(self, group: Group, now: int) -> None:
        group.sync_deadline = -1
        if not group.is_(State.COMPLETING_REBALANCE, State.STABLE) or not group.pending_sync:
            return
        for member_id in sorted(group.pending_sync):
            member = group.members.get(member_id)
            if member is not None:
                log.info("group %s: member %s did not sync in time", group.group_id, member_id)
                self._drop_member(group, member)
        self._maybe_prepare_rebalance(group, now)

    # -- rebalancing -----------------------------------------------------------------------------

    def _maybe_prepare_rebalance(self, group: Group, now: int) -> None:
        if group.is_(State.STABLE, State.COMPLETING_REBALANCE, State.EMPTY):
            self._prepare_rebalance(group, now)
        self._try_complete_join(group, now)

    def _prepare_rebalance(self, group: Group, now: int) -> None:
        if group.is_(State.COMPLETING_REBALANCE):
            for member in group.members.values():
                member.finish_sync(SyncResult(E.REBALANCE_IN_PROGRESS))
        group.pending_sync.clear()
        group.sync_deadline = -1
        rebalance_timeout = group.rebalance_timeout_ms()
        if group.is_(State.EMPTY):
            delay = min(self.config.initial_rebalance_delay_ms, rebalance_timeout)
            group.initial_delay_remaining = max(rebalance_timeout - delay, 0)
            group.new_member_added = False
            group.join_deadline = now + delay
        else:
            group.initial_delay_remaining = -1
            group.join_deadline = now + rebalance_timeout
        group.transition(State.PREPARING_REBALANCE, now)
        self._schedule(group.join_deadline, "join", group.group_id)

    def _try_complete_join(self, group: Group, now: int) -> None:
        if (
            group.is_(State.PREPARING_REBALANCE)
            and group.initial_delay_remaining < 0
            and group.has_all_members_joined()
        ):
            self._complete_join(group, now)

    def _complete_join(self, group: Group, now: int) -> None:
        group.join_deadline = -1
        group.initial_delay_remaining = -1
        group.new_member_added = False
        for member in group.not_yet_rejoined():
            if member.group_instance_id is None:
                group.remove(member.member_id)
        group.generation_id += 1
        if not group.members:
            group.protocol_name = None
            group.leader_id = None
            group.transition(State.EMPTY, now)
            self._store_group(group)
            return
        leader = group.members.get(group.leader_id or "")
        if leader is None or not leader.awaiting_join:
            joined = [m.member_id for m in group.members.values() if m.awaiting_join]
            if joined:
                group.leader_id = joined[0]
        group.protocol_name = group.select_protocol()
        group.transition(State.COMPLETING_REBALANCE, now)
        metadata = group.members_metadata()
        for member in group.members.values():
            if member.awaiting_join:
                member.is_new = False
                member.finish_join(self._generation_result(group, member, metadata))
                self._schedule_session(group, member, now)
        group.pending_sync = set(group.members)
        group.sync_deadline = now + group.rebalance_timeout_ms()
        self._schedule(group.sync_deadline, "sync", group.group_id)

    def _generation_result(
        self,
        group: Group,
        member: Member,
        metadata: list[JoinMemberInfo] | None = None,
        skip: bool = False,
    ) -> JoinResult:
        is_leader = member.member_id == group.leader_id
        return JoinResult(
            E.NONE,
            member.member_id,
            group.generation_id,
            group.protocol_type,
            group.protocol_name,
            group.leader_id or "",
            skip_assignment=skip and is_leader,
            members=(metadata if metadata is not None else group.members_metadata())
            if is_leader
            else [],
        )

    # -- membership changes ----------------------------------------------------------------------

    def _drop_member(self, group: Group, member: Member) -> None:
        member.finish_join(JoinResult(E.UNKNOWN_MEMBER_ID, member.member_id))
        member.finish_sync(SyncResult(E.UNKNOWN_MEMBER_ID))
        group.remove(member.member_id)

    def _remove_member_and_update_group(self, group: Group, member: Member, now: int) -> None:
        self._drop_member(group, member)
        if group.is_(State.STABLE, State.COMPLETING_REBALANCE, State.PREPARING_REBALANCE):
            self._maybe_prepare_rebalance(group, now)

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

    # -- persistence -----------------------------------------------------------------------------

    def _stored(self, group: Group) -> StoredGroup:
        return StoredGroup(
            protocol_type=group.protocol_type,
            generation_id=group.generation_id,
            protocol_name=group.protocol_name,
            leader_id=group.leader_id,
            state_timestamp=group.state_timestamp,
            members=[
                StoredMember(
                    m.member_id,
                    m.group_instance_id,
                    m.client_id,
                    m.client_host,
                    m.rebalance_timeout_ms,
                    m.session_timeout_ms,
                    m.protocols,
                    m.assignment,
                )
                for m in group.members.values()
            ],
        )

    def _store_group(self, group: Group) -> None:
        self.offsets.store.write(group.group_id, None, self._stored(group))


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
