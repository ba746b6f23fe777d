"""The KIP-848 consumer group state machine: ConsumerGroupHeartbeat and the group-type questions.

Synchronous and clock-driven like the classic groups. A heartbeat joins, stays in or leaves the
group; the group epoch grows when membership, subscriptions or the subscribed topics' partitions
change; the target assignment is computed by the group's assignor for the new epoch; each member
reconciles towards it (`consumer_group_reconcile`). Sessions and revocations are timed by the
shared timer queue (owner ``consumer``). Every change is written through `ConsumerGroupStore`.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from kafkacompat.coordinators.assignors import MemberSpec, assignor_named
from kafkacompat.coordinators.consumer_group_describe import describe_classic
from kafkacompat.coordinators.consumer_group_heartbeat import (
    Heartbeat,
    HeartbeatResult,
    TopicsView,
    epoch_error,
    fail,
    request_error,
)
from kafkacompat.coordinators.consumer_group_migration import downgrade_allowed
from kafkacompat.coordinators.consumer_group_persistence import ConsumerGroupStore
from kafkacompat.coordinators.consumer_group_reconcile import reconcile
from kafkacompat.coordinators.consumer_group_state import (
    LEAVE_EPOCH,
    STATIC_LEAVE_EPOCH,
    ConsumerGroup,
    ConsumerMember,
    MemberState,
    compiled_regex,
)
from kafkacompat.coordinators.group import GroupDescription
from kafkacompat.coordinators.group_timers import TimerKey, TimerQueue
from kafkacompat.coordinators.group_types import CONSUMER
from kafkacompat.coordinators.offset_manager import ExpiryRule, OffsetManager
from kafkacompat.errors import ErrorCode
from kafkacompat.storage.state_store import KeyValueSource

log = logging.getLogger("kafkacompat.groups")

E = ErrorCode
_SESSION = "session"
_REVOCATION = "revocation"
#: A classic member's deadlines: rejoining after REBALANCE_IN_PROGRESS, and syncing after joining.
CLASSIC_JOIN = "classic-join"
CLASSIC_SYNC = "classic-sync"


@dataclass(frozen=True, slots=True)
class ConsumerGroupConfig:
    session_timeout_ms: int = 45_000
    heartbeat_interval_ms: int = 5_000
    max_size: int = 2**31 - 1
    #: Assignor names, the first the default.
    assignors: tuple[str, ...] = ("uniform", "range")
    migration_policy: str = "bidirectional"


class ConsumerGroups:
    """The consumer groups by id and the requests of the consumer protocol."""

    group_type = CONSUMER

    def __init__(
        self,
        config: ConsumerGroupConfig,
        clock: Callable[[], int],
        offsets: OffsetManager,
        timers: TimerQueue,
        store: ConsumerGroupStore,
    ) -> None:
        self.groups: dict[str, ConsumerGroup] = {}
        self._config = config
        self._clock = clock
        self._offsets = offsets
        self._timers = timers
        self._store = store
        #: Asked to turn a group classic when ``member_id``, its last member using the consumer
        #: protocol, leaves; answers whether it did (set by the coordinator, which owns both).
        self.downgrade: Callable[[ConsumerGroup, str], bool] = lambda group, member_id: False

    @property
    def config(self) -> ConsumerGroupConfig:
        return self._config

    def load(self, now: int, source: KeyValueSource | None = None) -> None:
        """Restore the stored groups (of ``source`` when given: a loaded partition); their
        members' sessions start again from ``now``."""
        loaded = self._store.load(source)
        self.groups.update(loaded)
        for group in loaded.values():
            for member in group.members.values():
                self.touch_session(group, member, now)

    def forget(self, group_id: str) -> None:
        """Let go of a group coordinated elsewhere now (nothing is written)."""
        self.groups.pop(group_id, None)
        self._store.forget(group_id)

    # -- ConsumerGroupHeartbeat ------------------------------------------------------------------

    def heartbeat(self, hb: Heartbeat, topics: TopicsView) -> HeartbeatResult:
        """One heartbeat; ``topics`` is every topic now (for subscriptions and partitions)."""
        invalid = self.request_error(hb)
        if invalid is not None:
            return invalid
        now = self._clock()
        group = self.groups.get(hb.group_id)
        if hb.member_epoch in (LEAVE_EPOCH, STATIC_LEAVE_EPOCH):
            return self._leave(group, hb, now)
        if group is None:
            if hb.member_epoch != 0:
                return fail(E.UNKNOWN_MEMBER_ID, f"Group {hb.group_id} not found.")
            group = ConsumerGroup(
                hb.group_id, assignor_name=self._config.assignors[0], state_timestamp=now
            )
            self.groups[hb.group_id] = group
        result = self._heartbeat(group, hb, topics, now)
        if not group.members and group.group_epoch == 0:
            del self.groups[group.group_id]  # a first heartbeat that failed leaves nothing
        else:
            self._store.save(group)
        return result

    def request_error(self, hb: Heartbeat) -> HeartbeatResult | None:
        """The answer to a malformed heartbeat (None: well formed)."""
        return request_error(hb, dict.fromkeys(self._config.assignors))

    def _heartbeat(
        self, group: ConsumerGroup, hb: Heartbeat, topics: TopicsView, now: int
    ) -> HeartbeatResult:
        member_id = hb.member_id or str(uuid.uuid4())
        member = group.members.get(member_id)
        changed = False
        if member is None:
            if hb.member_epoch != 0:
                return fail(
                    E.UNKNOWN_MEMBER_ID, f"Member {member_id} is not a member of the group."
                )
            joined = self._join(group, member_id, hb)
            if isinstance(joined, HeartbeatResult):
                return joined
            member, changed = joined
        elif hb.member_epoch == 0:
            changed = self._rejoin(member, hb)
        else:
            error = epoch_error(member, hb)
            if error is not None:
                return error
        changed = self._update(member, hb) or changed
        if self.refresh_topics(group, topics) or changed:
            group.bump_epoch()
        if group.group_epoch > group.assignment_epoch:
            self.assign(group)
        before = (dict(member.assigned), member.member_epoch)
        reconcile(group, member, hb.owned, now)
        self.touch_session(group, member, now)
        if member.state is MemberState.UNREVOKED_PARTITIONS:
            self.schedule_revocation(group, member)
        send = hb.member_epoch == 0 or before != (member.assigned, member.member_epoch)
        if hb.owned is not None and not send:
            send = {t: frozenset(p) for t, p in hb.owned if p} != member.assigned
        return HeartbeatResult(
            E.NONE,
            None,
            member.member_id,
            member.member_epoch,
            self._config.heartbeat_interval_ms,
            dict(member.assigned) if send else None,
        )

    def _join(
        self, group: ConsumerGroup, member_id: str, hb: Heartbeat
    ) -> tuple[ConsumerMember, bool] | HeartbeatResult:
        """A new member id: a new member, or a static member back under a new id."""
        new = ConsumerMember(member_id, hb.instance_id, hb.rack_id, hb.client_id, hb.client_host)
        if hb.instance_id is not None and hb.instance_id in group.static_members:
            old = group.members[group.static_members[hb.instance_id]]
            if old.member_epoch != STATIC_LEAVE_EPOCH:
                return fail(
                    E.UNRELEASED_INSTANCE_ID,
                    f"Static member {old.member_id} with instance id {hb.instance_id} is "
                    "present in the consumer group.",
                )
            _copy_subscription(new, old)
            group.replace(old.member_id, new)
            if new.member_epoch == STATIC_LEAVE_EPOCH:
                new.member_epoch = new.previous_member_epoch
            return new, False
        if len(group.members) >= self._config.max_size:
            return fail(
                E.GROUP_MAX_SIZE_REACHED,
                f"The consumer group has reached its maximum capacity of "
                f"{self._config.max_size} members.",
            )
        group.add(new)
        return new, True

    @staticmethod
    def _rejoin(member: ConsumerMember, hb: Heartbeat) -> bool:
        """A known member id at epoch 0 (it lost its partitions, or a static member is back
        under its old id): it is sent its whole assignment again."""
        if member.member_epoch == STATIC_LEAVE_EPOCH:
            member.member_epoch = member.previous_member_epoch
        return False

    @staticmethod
    def _update(member: ConsumerMember, hb: Heartbeat) -> bool:
        """Take the heartbeat's non-null fields; whether the assignor's input changed."""
        changed = False
        if hb.rebalance_timeout_ms > 0:
            member.rebalance_timeout_ms = hb.rebalance_timeout_ms
        if hb.rack_id is not None:
            member.rack_id = hb.rack_id
        if hb.client_id:
            member.client_id = hb.client_id
        if hb.client_host:
            member.client_host = hb.client_host
        if hb.subscribed_topic_names is not None:
            names = tuple(sorted(set(hb.subscribed_topic_names)))
            changed |= names != member.subscribed_topic_names
            member.subscribed_topic_names = names
        if hb.subscribed_topic_regex is not None:
            regex = hb.subscribed_topic_regex or None  # "" clears it
            changed |= regex != member.subscribed_topic_regex
            member.subscribed_topic_regex = regex
        if hb.server_assignor is not None:
            changed |= hb.server_assignor != member.server_assignor
            member.server_assignor = hb.server_assignor
        return changed

    def refresh_topics(self, group: ConsumerGroup, topics: TopicsView) -> bool:
        """Whether the subscribed topics (created, deleted, grown) differ from those seen.

        Matched once per distinct subscription, and not again while neither the topics (the same
        view object: the handler keeps one per metadata image, never changed) nor the
        subscriptions change.
        """
        names = frozenset(n for m in group.members.values() for n in m.subscribed_topic_names)
        regexes = frozenset(
            m.subscribed_topic_regex for m in group.members.values() if m.subscribed_topic_regex
        )
        seen = group.topics_seen
        if seen is not None and seen[0] is topics and seen[1:] == (names, regexes):
            return False
        group.topics_seen = (topics, names, regexes)
        patterns = [compiled_regex(r) for r in regexes]
        current = {
            name: info
            for name, info in topics.items()
            if name in names or any(p.fullmatch(name) for p in patterns)
        }
        if current == group.subscribed_topics:
            return False
        group.subscribed_topics = current
        return True

    def assign(self, group: ConsumerGroup) -> None:
        """A new target assignment for the group epoch, by the members' preferred assignor."""
        preferred = [m.server_assignor for m in group.members.values() if m.server_assignor]
        name = max(set(preferred), key=preferred.count) if preferred else self._config.assignors[0]
        assignor = assignor_named(name) or assignor_named(self._config.assignors[0])
        assert assignor is not None
        group.assignor_name = assignor.name
        ids = {name: info[0] for name, info in group.subscribed_topics.items()}
        specs = {
            member_id: MemberSpec(
                frozenset(ids[t] for t in ids if m.subscribes(t)),
                group.target.get(member_id, {}),
            )
            for member_id, m in group.members.items()
        }
        counts = {tid: count for tid, count in group.subscribed_topics.values()}
        group.target = assignor.assign(specs, counts)
        group.assignment_epoch = group.group_epoch

    # -- leaving and timers ----------------------------------------------------------------------

    def _leave(self, group: ConsumerGroup | None, hb: Heartbeat, now: int) -> HeartbeatResult:
        if group is None:
            return fail(E.GROUP_ID_NOT_FOUND, f"Consumer group {hb.group_id} not found.")
        member = group.members.get(hb.member_id)
        if member is None:
            return fail(E.UNKNOWN_MEMBER_ID, f"Member {hb.member_id} is not a member.")
        if hb.member_epoch == STATIC_LEAVE_EPOCH:
            if member.instance_id != hb.instance_id:
                return fail(E.UNKNOWN_MEMBER_ID, f"Instance id {hb.instance_id} is not yours.")
            # A static member leaving for now keeps its partitions until its session ends.
            member.previous_member_epoch = member.member_epoch
            member.member_epoch = STATIC_LEAVE_EPOCH
            self.touch_session(group, member, now)
        else:
            self.fence(group, member.member_id)
            return HeartbeatResult(E.NONE, None, hb.member_id, hb.member_epoch)
        self._store.save(group)
        return HeartbeatResult(E.NONE, None, hb.member_id, hb.member_epoch)

    def schedule_revocation(self, group: ConsumerGroup, member: ConsumerMember) -> None:
        """The deadline by which the member must have revoked its pending partitions."""
        key = TimerKey(CONSUMER, _REVOCATION, group.group_id, member.member_id)
        self._timers.schedule(member.revocation_deadline, key)

    def save(self, group: ConsumerGroup) -> None:
        self._store.save(group)

    def fence(self, group: ConsumerGroup, member_id: str) -> None:
        """Remove a member (it left, or was fenced) and store the group; when it was the last
        member using the consumer protocol, the group may become classic instead."""
        policy = self._config.migration_policy
        if downgrade_allowed(group, member_id, policy) and self.downgrade(group, member_id):
            return
        self.remove_member(group, member_id)
        self._store.save(group)

    def remove_member(self, group: ConsumerGroup, member_id: str) -> None:
        if group.remove(member_id) is not None:
            group.bump_epoch()
            if not group.members:
                group.state_timestamp = self._clock()

    def touch_session(self, group: ConsumerGroup, member: ConsumerMember, now: int) -> None:
        """Start the member's session again: the classic session timeout it joined with, or
        the consumer groups' one."""
        timeout = self._config.session_timeout_ms
        if member.classic is not None:
            timeout = member.classic.session_timeout_ms
        member.session_deadline = now + timeout
        key = TimerKey(CONSUMER, _SESSION, group.group_id, member.member_id)
        self._timers.schedule(member.session_deadline, key)

    def schedule_classic(self, group: ConsumerGroup, member: ConsumerMember, kind: str) -> None:
        """A classic member's join or sync deadline, one rebalance timeout from now."""
        deadline = self._clock() + member.rebalance_timeout_ms
        if kind == CLASSIC_JOIN:
            member.join_deadline = deadline
        else:
            member.sync_deadline = deadline
        self._timers.schedule(deadline, TimerKey(CONSUMER, kind, group.group_id, member.member_id))

    def adopt(self, group: ConsumerGroup, now: int) -> None:
        """A group converted from a classic group: held, stored, its members' sessions begun."""
        self.groups[group.group_id] = group
        for member in group.members.values():
            self.touch_session(group, member, now)
        self._store.save(group)

    def on_timer(self, deadline: int, key: TimerKey, now: int) -> None:
        group = self.groups.get(key.group_id)
        member = None if group is None else group.members.get(key.member_id)
        if group is None or member is None:
            return
        if key.kind == _SESSION and deadline == member.session_deadline:
            log.info("group %s: member %s session expired", group.group_id, member.member_id)
        elif key.kind == _REVOCATION and deadline == member.revocation_deadline:
            if member.state is not MemberState.UNREVOKED_PARTITIONS:
                return
            log.info("group %s: member %s did not revoke in time", group.group_id, key.member_id)
        elif key.kind == CLASSIC_JOIN and deadline == member.join_deadline:
            log.info(
                "group %s: classic member %s did not rejoin in time", group.group_id, key.member_id
            )
        elif key.kind == CLASSIC_SYNC and deadline == member.sync_deadline:
            log.info(
                "group %s: classic member %s did not sync in time", group.group_id, key.member_id
            )
        else:
            return
        self.fence(group, member.member_id)

    # -- offsets ---------------------------------------------------------------------------------

    def validate_offset_commit(
        self,
        group_id: str,
        member_id: str,
        group_instance_id: str | None,
        generation_id: int,
        now: int,
    ) -> ErrorCode:
        """Kafka's rule: without a member epoch (< 0) only while the group is empty; else the
        member's current epoch (STALE_MEMBER_EPOCH otherwise)."""
        group = self.groups[group_id]
        if generation_id < 0 and not group.members:
            return E.NONE
        return _member_epoch_error(group, member_id, generation_id)

    def validate_offset_fetch(self, group_id: str, member_id: str | None, epoch: int) -> ErrorCode:
        """OffsetFetch v9+: a member's fetch needs its current epoch; the admin's (no member,
        epoch < 0) is always allowed."""
        if member_id is None and epoch < 0:
            return E.NONE
        return _member_epoch_error(self.groups[group_id], member_id or "", epoch)

    def subscribed_topics(self, group_id: str) -> frozenset[str]:
        group = self.groups[group_id]
        return frozenset(
            t
            for t in group.subscribed_topics
            if any(m.subscribes(t) for m in group.members.values())
        )

    def validate_offset_delete(self, group_id: str) -> tuple[ErrorCode, frozenset[str]]:
        return E.NONE, self.subscribed_topics(group_id)

    def offset_expiry(self, group_id: str) -> ExpiryRule | None:
        return ExpiryRule(keep_topics=self.subscribed_topics(group_id))

    # -- the group-type questions ----------------------------------------------------------------

    def has_group(self, group_id: str) -> bool:
        return group_id in self.groups

    def group_ids(self) -> list[str]:
        return list(self.groups)

    def describe_group(self, group_id: str) -> GroupDescription:
        return describe_classic(self.groups[group_id])

    def list_groups(self) -> list[tuple[str, str, str]]:
        return [(g.group_id, CONSUMER, g.state.value) for g in self.groups.values()]

    def delete_group(self, group_id: str) -> ErrorCode:
        if self.groups[group_id].members:
            return E.NON_EMPTY_GROUP
        self.drop(group_id)
        self._offsets.delete_group(group_id)
        return E.NONE

    def delete_if_empty(self, group_id: str) -> None:
        if not self.groups[group_id].members:
            self.drop(group_id)

    def drop(self, group_id: str) -> None:
        """Forget an empty group (its offsets stay): deleted, expired or taken over."""
        if self.groups.pop(group_id, None) is not None:
            self._store.delete(group_id)

    def has_member(self, group_id: str, member_id: str) -> bool:
        group = self.groups.get(group_id)
        return group is not None and member_id in group.members

    def has_consumer_protocol_member(self, group_id: str, member_id: str) -> bool:
        """Whether ``member_id`` is a member of the group using the consumer protocol."""
        group = self.groups.get(group_id)
        member = None if group is None else group.members.get(member_id)
        return member is not None and member.classic is None

    def is_empty(self, group_id: str) -> bool:
        return not self.groups[group_id].members


def _member_epoch_error(group: ConsumerGroup, member_id: str, epoch: int) -> ErrorCode:
    member = group.members.get(member_id)
    if member is None:
        return E.UNKNOWN_MEMBER_ID
    if epoch == member.member_epoch:
        return E.NONE
    # A classic member's generation is its member epoch.
    return E.ILLEGAL_GENERATION if member.classic is not None else E.STALE_MEMBER_EPOCH


def _copy_subscription(new: ConsumerMember, old: ConsumerMember) -> None:
    new.subscribed_topic_names = old.subscribed_topic_names
    new.subscribed_topic_regex = old.subscribed_topic_regex
    new.server_assignor = old.server_assignor
    new.rebalance_timeout_ms = old.rebalance_timeout_ms
