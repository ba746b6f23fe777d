"""The group coordinator: a facade over peers that routes each group to its group type.

Peers, each given what it needs when built: the committed offsets (`OffsetManager`), one state
machine per group type in `group_types` (`ClassicGroups`, KIP-848's `ConsumerGroups`), and the
timer queue they share.
Describe/List/DeleteGroups ask every group type; offset commits and deletes ask the group's own
type to validate first; due timers go to the type named by their key. A new group type is a
sibling module registered in `group_types`.

Synchronous and clock-driven: every call takes the time from ``clock`` (ms), and time-based work
(rebalance and session timeouts, offset expiry) runs from `poll`, which the Trio shell calls when
`next_deadline` is reached. ``on_deadline`` is told whenever an earlier deadline appears.

An empty group of one type is taken over by the first member of the other (Kafka 4.0's
conversion of empty groups), its offsets kept. Groups with members migrate online as
``group.consumer.migration.policy`` allows (`consumer_group_migration`): a consumer-protocol
member joining a classic group upgrades it; classic members inside a consumer group are served
(`ClassicMembers`); when the last consumer-protocol member leaves, the group is downgraded.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from types import MappingProxyType

from kafkacompat.coordinators.classic_groups import ClassicGroups
from kafkacompat.coordinators.consumer_group_classic import ClassicMembers
from kafkacompat.coordinators.consumer_group_heartbeat import (
    Heartbeat,
    HeartbeatResult,
    TopicsView,
    fail,
)
from kafkacompat.coordinators.consumer_group_migration import (
    MalformedProtocol,
    from_classic_group,
    to_classic_group,
    upgrade_refusal,
)
from kafkacompat.coordinators.consumer_group_persistence import ConsumerGroupStore
from kafkacompat.coordinators.consumer_group_state import ConsumerGroup
from kafkacompat.coordinators.consumer_groups import ConsumerGroupConfig, ConsumerGroups
from kafkacompat.coordinators.group import (
    Completion,
    Group,
    GroupConfig,
    GroupDescription,
    GroupState,
    JoinRequest,
    JoinResult,
    SyncResult,
)
from kafkacompat.coordinators.group_offsets import (
    GroupOffsetStore,
    OffsetAndMetadata,
    TopicPartition,
)
from kafkacompat.coordinators.group_timers import TimerKey, TimerQueue
from kafkacompat.coordinators.group_types import GroupTypeModule
from kafkacompat.coordinators.offset_manager import OffsetManager
from kafkacompat.errors import ErrorCode
from kafkacompat.storage.state_store import KeyValueSource

__all__ = ["GroupCoordinator", "JoinRequest"]

log = logging.getLogger("kafkacompat.groups")

E = ErrorCode

#: The owner of the offset expiry timer in the shared timer queue.
OFFSETS = "offsets"
_EXPIRY = TimerKey(OFFSETS, "expiry")


class GroupCoordinator:
    """Groups of every type and their committed offsets, behind one set of calls."""

    def __init__(
        self,
        store: GroupOffsetStore,
        config: GroupConfig,
        clock: Callable[[], int],
        on_deadline: Callable[[], None] = lambda: None,
        consumer_config: ConsumerGroupConfig | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self.on_deadline = on_deadline
        self.offsets = OffsetManager(
            store, config.offsets_retention_ms, config.offset_metadata_max_bytes
        )
        self.timers = TimerQueue(on_deadline)
        self._classic = ClassicGroups(config, clock, self.offsets, self.timers)
        self._consumer = ConsumerGroups(
            consumer_config or ConsumerGroupConfig(),
            clock,
            self.offsets,
            self.timers,
            ConsumerGroupStore(store.namespace),
        )
        self._consumer.downgrade = self._downgrade
        self._classic_members = ClassicMembers(self._consumer, config, clock)
        #: Group-type state machines by type: where a new group type is registered.
        self.group_types: dict[str, GroupTypeModule] = {
            self._classic.group_type: self._classic,
            self._consumer.group_type: self._consumer,
        }
        self._next_expiry = -1
        self._store = store
        self._load(store)

    @property
    def groups(self) -> dict[str, Group]:
        """The classic groups by id."""
        return self._classic.groups

    def _load(self, store: GroupOffsetStore, source: KeyValueSource | None = None) -> None:
        loaded = store.load(source)
        self.offsets.load(loaded.offsets)
        now = self.clock()
        self._classic.load(loaded.groups, now)
        self._consumer.load(now, source)
        for group_id in loaded.offsets:
            if self.offsets.has_offsets(group_id) and self._type_of(group_id) is None:
                self._classic.create_group(group_id, state_timestamp=-1)
        self._schedule_expiry(now)

    def take_over(self, source: KeyValueSource) -> None:
        """Coordinate the groups stored in ``source`` too (a partition of
        ``__consumer_offsets`` this broker leads now)."""
        self._load(self._store, source)

    def hand_over(self, belongs: Callable[[str], bool]) -> None:
        """Let go of the groups ``belongs`` picks (their partition is led elsewhere now):
        members waiting on a join or sync are answered NOT_COORDINATOR, to find the new one."""
        for group_id in [g for g in self._classic.groups if belongs(g)]:
            group = self._classic.groups.pop(group_id)
            for member in group.members.values():
                if member.join_completion is not None:
                    member.join_completion.complete(JoinResult(E.NOT_COORDINATOR))
                    member.join_completion = None
                if member.sync_completion is not None:
                    member.sync_completion.complete(SyncResult(E.NOT_COORDINATOR))
                    member.sync_completion = None
        for group_id in [g for g in self._consumer.groups if belongs(g)]:
            self._consumer.forget(group_id)
        self.offsets.forget(belongs)

    def _type_of(self, group_id: str) -> GroupTypeModule | None:
        """The group-type module that holds ``group_id``, if any does."""
        return next((m for m in self.group_types.values() if m.has_group(group_id)), None)

    # -- timers ----------------------------------------------------------------------------------

    def next_deadline(self) -> int | None:
        """When `poll` next has work (possibly a stale timer, which is then dropped)."""
        return self.timers.next_deadline()

    def poll(self) -> None:
        """Run every timer that is due, each by the owner its key names."""
        now = self.clock()
        for deadline, key in self.timers.pop_due(now):
            if key.owner == OFFSETS:
                if deadline == self._next_expiry:
                    self.expire_offsets()
                    self._schedule_expiry(now)
            elif (module := self.group_types.get(key.owner)) is not None:
                module.on_timer(deadline, key, now)

    def _schedule_expiry(self, now: int) -> None:
        self._next_expiry = now + self.config.offsets_retention_check_interval_ms
        self.timers.schedule(self._next_expiry, _EXPIRY)

    # -- the classic protocol --------------------------------------------------------------------

    def join_group(
        self, request: JoinRequest, topics: TopicsView | None = None
    ) -> Completion[JoinResult]:
        """JoinGroup; ``topics`` (name -> (id, partition count)) serves a classic member joining
        a consumer group (without it, the topics the group last saw)."""
        consumer = self._consumer.groups.get(request.group_id)
        if consumer is not None:
            if consumer.members:
                if topics is None:
                    seen = consumer.topics_seen
                    topics = (
                        MappingProxyType(consumer.subscribed_topics) if seen is None else seen[0]
                    )
                return Completion.of(self._classic_members.join(consumer, request, topics))
            self._consumer.drop(request.group_id)
        return self._classic.join_group(request)

    # -- the consumer protocol (KIP-848) ---------------------------------------------------------

    def consumer_group_heartbeat(self, heartbeat: Heartbeat, topics: TopicsView) -> HeartbeatResult:
        """ConsumerGroupHeartbeat; ``topics`` is every topic: name -> (id, partition count)."""
        group_id = heartbeat.group_id
        classic = self._classic.groups.get(group_id)
        invalid = self._consumer.request_error(heartbeat)
        if invalid is not None:
            return invalid
        if classic is not None:
            if heartbeat.member_epoch != 0:
                return fail(E.GROUP_ID_NOT_FOUND, f"Group {group_id} is not a consumer group.")
            if classic.is_(GroupState.EMPTY):
                self._forget_classic(group_id)
            else:
                refused = self._upgrade(classic, topics)
                if refused is not None:
                    return refused
        return self._consumer.heartbeat(heartbeat, topics)

    def _forget_classic(self, group_id: str) -> None:
        self._classic.groups.pop(group_id).state = GroupState.DEAD
        self.offsets.store.write(group_id, None, None, delete_group=True)

    def _upgrade(self, classic: Group, topics: TopicsView) -> HeartbeatResult | None:
        """Turn a non-empty classic group into a consumer group, if the policy and the group
        allow (None); otherwise the heartbeat's GROUP_ID_NOT_FOUND answer."""
        group_id = classic.group_id
        config = self._consumer.config
        refusal = upgrade_refusal(classic, config.migration_policy, config.max_size)
        if refusal is not None:
            log.info(refusal)
            return fail(E.GROUP_ID_NOT_FOUND, refusal)
        now = self.clock()
        try:
            converted = from_classic_group(classic, topics, now)
        except MalformedProtocol as exc:
            message = (
                f"Cannot upgrade the classic group {group_id} to consumer group because the "
                "embedded consumer protocol is malformed."
            )
            log.warning("%s (%s)", message, exc)
            return fail(E.GROUP_ID_NOT_FOUND, message)
        # Members waiting in a rebalance rejoin the consumer group.
        for member in classic.members.values():
            member.finish_join(JoinResult(E.REBALANCE_IN_PROGRESS, member.member_id))
            member.finish_sync(SyncResult(E.REBALANCE_IN_PROGRESS))
        self._forget_classic(group_id)
        self._consumer.adopt(converted, now)
        log.info("group %s: upgraded from classic to consumer", group_id)
        return None

    def _downgrade(self, group: ConsumerGroup, leaving_member_id: str) -> bool:
        """Turn a consumer group whose last consumer-protocol member leaves into a classic group
        rebalancing (or, ``leaving_member_id`` "", one whose last such member was replaced by a
        classic static member: Stable); False (it stays) when a member's embedded protocol
        cannot be read."""
        now = self.clock()
        try:
            classic = to_classic_group(group, leaving_member_id, now)
        except MalformedProtocol as exc:
            log.warning("group %s: cannot downgrade to classic: %s", group.group_id, exc)
            return False
        self._consumer.drop(group.group_id)
        self._classic.adopt(classic, now, rebalance=bool(leaving_member_id))
        log.info("group %s: downgraded from consumer to classic", group.group_id)
        return True

    def consumer_group(self, group_id: str) -> ConsumerGroup | None:
        """The consumer group ``group_id``, for describing it (not to be changed)."""
        return self._consumer.groups.get(group_id)

    def validate_offset_fetch(
        self, group_id: str, member_id: str | None, member_epoch: int
    ) -> ErrorCode:
        """OffsetFetch v9+ of a consumer group checks the member's epoch; others pass."""
        if not self._consumer.has_group(group_id):
            return E.NONE
        return self._consumer.validate_offset_fetch(group_id, member_id, member_epoch)

    def validate_consumer_txn_offset_commit(
        self, group_id: str, member_id: str, generation_id: int
    ) -> ErrorCode | None:
        """TxnOffsetCommit to a consumer group (None: not one): its member epoch, a stale one
        answered ILLEGAL_GENERATION as Kafka does for transactional producers."""
        if not self._consumer.has_group(group_id):
            return None
        error = self._consumer.validate_offset_commit(
            group_id, member_id, None, generation_id, self.clock()
        )
        return E.ILLEGAL_GENERATION if error is E.STALE_MEMBER_EPOCH else error

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
        consumer = self._consumer.groups.get(group_id)
        if consumer is not None:
            if not consumer.members:
                return Completion.of(SyncResult(E.UNKNOWN_MEMBER_ID))
            return Completion.of(
                self._classic_members.sync(
                    consumer,
                    generation_id,
                    member_id,
                    group_instance_id,
                    protocol_type,
                    protocol_name,
                )
            )
        return self._classic.sync_group(
            group_id,
            generation_id,
            member_id,
            group_instance_id,
            protocol_type,
            protocol_name,
            assignments,
        )

    def heartbeat(
        self, group_id: str, member_id: str, group_instance_id: str | None, generation_id: int
    ) -> ErrorCode:
        consumer = self._consumer.groups.get(group_id)
        if consumer is not None:
            return self._classic_members.heartbeat(
                consumer, member_id, group_instance_id, generation_id
            )
        return self._classic.heartbeat(group_id, member_id, group_instance_id, generation_id)

    def leave_group(
        self, group_id: str, members: list[tuple[str, str | None]]
    ) -> tuple[ErrorCode, list[ErrorCode]]:
        """Remove members given as (member id, instance id); errors per member."""
        consumer = self._consumer.groups.get(group_id)
        if consumer is not None:
            return self._classic_members.leave(consumer, members)
        return self._classic.leave_group(group_id, members)

    # -- offsets ---------------------------------------------------------------------------------

    def commit_offsets(
        self,
        group_id: str,
        member_id: str,
        group_instance_id: str | None,
        generation_id: int,
        offsets: Mapping[TopicPartition, OffsetAndMetadata],
        api_version: int | None = None,
    ) -> dict[TopicPartition, ErrorCode]:
        """OffsetCommit: an error per partition; commit timestamps default to now. At the wire's
        ``api_version``, members of consumer-protocol groups must use v9+, and from v9 an unknown
        group is GROUP_ID_NOT_FOUND (not ILLEGAL_GENERATION)."""
        wire_v9 = api_version is None or api_version >= 9
        now = self.clock()
        module = self._type_of(group_id)
        if not wire_v9 and self._consumer.has_consumer_protocol_member(group_id, member_id):
            error = E.UNSUPPORTED_VERSION
        elif module is not None:
            error = module.validate_offset_commit(
                group_id, member_id, group_instance_id, generation_id, now
            )
        elif generation_id >= 0:
            error = (
                E.GROUP_ID_NOT_FOUND
                if api_version is not None and wire_v9
                else E.ILLEGAL_GENERATION
            )
        else:  # a group that only stores offsets (no group management)
            self._classic.create_group(group_id, state_timestamp=now)
            error = E.NONE
        if error is not E.NONE:
            return dict.fromkeys(offsets, error)
        return self.offsets.commit_checked(group_id, offsets, now)

    def commit_transactional_offsets(
        self, group_id: str, offsets: Mapping[TopicPartition, OffsetAndMetadata]
    ) -> None:
        """Make a committed transaction's offsets visible (its commit marker is written)."""
        now = self.clock()
        if self._type_of(group_id) is None:
            self._classic.create_group(group_id, state_timestamp=now)
        self.offsets.commit_transactional(group_id, offsets, now)

    def fetch_offsets(
        self, group_id: str, partitions: list[TopicPartition] | None
    ) -> dict[TopicPartition, OffsetAndMetadata | None]:
        """OffsetFetch: the committed offset of each partition asked for (None: all of them)."""
        return self.offsets.fetch(group_id, partitions)

    def delete_offsets(
        self, group_id: str, partitions: list[TopicPartition]
    ) -> tuple[ErrorCode, dict[TopicPartition, ErrorCode]]:
        """OffsetDelete: only offsets the group's type allows to go (none subscribed to)."""
        module = self._type_of(group_id)
        if module is None:
            return E.GROUP_ID_NOT_FOUND, {}
        error, subscribed = module.validate_offset_delete(group_id)
        if error is not E.NONE:
            return error, {}
        return E.NONE, self.offsets.delete_unsubscribed(group_id, partitions, subscribed)

    def expire_offsets(self) -> int:
        """Drop expired offsets; empty groups left without offsets are removed. Returns count."""
        now = self.clock()
        removed = 0
        for module in list(self.group_types.values()):
            for group_id in module.group_ids():
                removed += self.offsets.expire(group_id, now, module.offset_expiry(group_id))
                if not self.offsets.has_offsets(group_id):
                    module.delete_if_empty(group_id)
        return removed

    # -- admin: every group type -----------------------------------------------------------------

    def delete_groups(self, group_ids: list[str]) -> dict[str, ErrorCode]:
        results: dict[str, ErrorCode] = {}
        for group_id in group_ids:
            module = self._type_of(group_id)
            if module is None:
                results[group_id] = E.GROUP_ID_NOT_FOUND
            else:
                results[group_id] = module.delete_group(group_id)
        return results

    def describe_group(self, group_id: str) -> GroupDescription:
        module = self._type_of(group_id)
        if module is None:
            return GroupDescription(group_id, GroupState.DEAD.value, "", "", [])
        return module.describe_group(group_id)

    def list_groups(self) -> list[tuple[str, str, str]]:
        """(group id, protocol type, state) of every live group."""
        return [entry for module in self.group_types.values() for entry in module.list_groups()]

    def list_groups_typed(self) -> list[tuple[str, str, str, str]]:
        """(group id, protocol type, state, group type) of every live group."""
        return [
            (*entry, group_type)
            for group_type, module in self.group_types.items()
            for entry in module.list_groups()
        ]
