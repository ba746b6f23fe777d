"""The classic group rebalance: preparing and completing generations, and the deadlines behind it.

`ClassicRebalancer` works on the `Group` it is handed; the groups belong to `ClassicGroups`.
Deadlines go to the shared timer queue under the classic owner, one kind each: ``session`` and
``pending`` per member, ``join`` and ``sync`` per group. A deadline that no longer matches what the
group or member holds is stale and ignored.
"""

from __future__ import annotations

import logging

from kafkacompat.coordinators.group import (
    Group,
    GroupConfig,
    GroupState,
    JoinMemberInfo,
    JoinResult,
    Member,
    SyncResult,
)
from kafkacompat.coordinators.group_persistence import stored_group
from kafkacompat.coordinators.group_timers import TimerKey, TimerQueue
from kafkacompat.coordinators.group_types import CLASSIC
from kafkacompat.coordinators.offset_manager import OffsetManager
from kafkacompat.errors import ErrorCode

log = logging.getLogger("kafkacompat.groups")

E = ErrorCode
State = GroupState


class ClassicRebalancer:
    """Session, join, sync and pending-member deadlines; preparing and completing rebalances."""

    def __init__(self, config: GroupConfig, timers: TimerQueue, offsets: OffsetManager) -> None:
        self._config = config
        self._timers = timers
        self._offsets = offsets

    # -- deadlines -------------------------------------------------------------------------------

    def _schedule(self, deadline: int, kind: str, group_id: str, member_id: str = "") -> None:
        self._timers.schedule(deadline, TimerKey(CLASSIC, kind, group_id, member_id))

    def schedule_session(self, group: Group, member: Member, now: int) -> None:
        member.session_deadline = now + member.session_timeout_ms
        self._schedule(member.session_deadline, "session", group.group_id, member.member_id)

    def schedule_pending(self, group: Group, member_id: str, deadline: int) -> None:
        """A member id handed out by MEMBER_ID_REQUIRED expires unless it joins by ``deadline``."""
        group.pending_members[member_id] = deadline
        self._schedule(deadline, "pending", group.group_id, member_id)

    def on_timer(self, group: Group, deadline: int, key: TimerKey, now: int) -> None:
        """Run one due deadline of ``group``, unless it is stale."""
        if key.kind == "session":
            member = group.members.get(key.member_id)
            if member is not None and member.session_deadline == deadline:
                self._on_session_expired(group, member, now)
        elif key.kind == "pending":
            if group.pending_members.get(key.member_id) == deadline:
                del group.pending_members[key.member_id]
                self.try_complete_join(group, now)
        elif key.kind == "join":
            if group.join_deadline == deadline and group.is_(State.PREPARING_REBALANCE):
                self._on_join_deadline(group, now)
        elif key.kind == "sync" and group.sync_deadline == deadline:
            self._on_sync_deadline(group, now)

    def _on_session_expired(self, group: Group, member: Member, now: int) -> None:
        if member.awaiting_join or member.awaiting_sync:
            self.schedule_session(group, member, now)
            return
        log.info("group %s: member %s session timed out", group.group_id, member.member_id)
        self.remove_member_and_update_group(group, member, now)

    def _on_join_deadline(self, group: Group, now: int) -> None:
        remaining = group.initial_delay_remaining
        if remaining > 0 and group.new_member_added:
            # Kafka's InitialDelayedJoin: keep waiting while members keep arriving.
            group.new_member_added = False
            delay = min(self._config.initial_rebalance_delay_ms, remaining)
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
                self.drop_member(group, member)
        self.maybe_prepare_rebalance(group, now)

    # -- rebalancing -----------------------------------------------------------------------------

    def maybe_prepare_rebalance(self, group: Group, now: int) -> None:
        if group.is_(State.STABLE, State.COMPLETING_REBALANCE, State.EMPTY):
            self.prepare_rebalance(group, now)
        self.try_complete_join(group, now)

    def prepare_rebalance(self, group: Group, now: int) -> None:
        if group.is_(State.COMPLETING_REBALANCE):
            for member in group.members.values():
                member.finish_sync(SyncResult(E.REBALANCE_IN_PROGRESS))
        group.pending_sync.clear()
        group.sync_deadline = -1
        rebalance_timeout = group.rebalance_timeout_ms()
        if group.is_(State.EMPTY):
            delay = min(self._config.initial_rebalance_delay_ms, rebalance_timeout)
            group.initial_delay_remaining = max(rebalance_timeout - delay, 0)
            group.new_member_added = False
            group.join_deadline = now + delay
        else:
            group.initial_delay_remaining = -1
            group.join_deadline = now + rebalance_timeout
        group.transition(State.PREPARING_REBALANCE, now)
        self._schedule(group.join_deadline, "join", group.group_id)

    def try_complete_join(self, group: Group, now: int) -> None:
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
            self.store_group(group)
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
                member.finish_join(self.generation_result(group, member, metadata))
                self.schedule_session(group, member, now)
        group.pending_sync = set(group.members)
        group.sync_deadline = now + group.rebalance_timeout_ms()
        self._schedule(group.sync_deadline, "sync", group.group_id)

    @staticmethod
    def generation_result(
        group: Group,
        member: Member,
        metadata: list[JoinMemberInfo] | None = None,
        skip: bool = False,
    ) -> JoinResult:
        """The JoinGroup answer of ``member`` in the group's current generation."""
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

    # -- members leaving ---------------------------------------------------------------------------

    @staticmethod
    def drop_member(group: Group, member: Member) -> None:
        member.finish_join(JoinResult(E.UNKNOWN_MEMBER_ID, member.member_id))
        member.finish_sync(SyncResult(E.UNKNOWN_MEMBER_ID))
        group.remove(member.member_id)

    def remove_member_and_update_group(self, group: Group, member: Member, now: int) -> None:
        self.drop_member(group, member)
        if group.is_(State.STABLE, State.COMPLETING_REBALANCE, State.PREPARING_REBALANCE):
            self.maybe_prepare_rebalance(group, now)

    def store_group(self, group: Group) -> None:
        """Persist the group's generation, leader, protocol and members."""
        self._offsets.write_group(group.group_id, stored_group(group))
