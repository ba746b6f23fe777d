"""Committed offsets and group administration: the group coordinator's non-rebalance calls.

A mixin of `GroupCoordinator`, which owns the groups, the offsets and the clock; the timers are
`RebalanceMixin`'s.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from kafkacompat.coordinators.group import (
    Group,
    GroupConfig,
    GroupDescription,
    GroupState,
    Member,
    MemberDescription,
)
from kafkacompat.coordinators.group_offsets import OffsetAndMetadata, TopicPartition
from kafkacompat.coordinators.offset_manager import OffsetManager, subscribed_topics
from kafkacompat.errors import ErrorCode, KafkaError

log = logging.getLogger("kafkacompat.groups")

E = ErrorCode
State = GroupState


class OffsetsAndAdminMixin:
    """OffsetCommit/Fetch/Delete, offset expiry, and Describe/List/DeleteGroups."""

    config: GroupConfig
    clock: Callable[[], int]
    groups: dict[str, Group]
    offsets: OffsetManager

    if TYPE_CHECKING:  # from RebalanceMixin; declared only for type checking, so never shadows it

        def _schedule_session(self, group: Group, member: Member, now: int) -> None:
            raise NotImplementedError

    # -- offsets ---------------------------------------------------------------------------------

    def commit_offsets(
        self,
        group_id: str,
        member_id: str,
        group_instance_id: str | None,
        generation_id: int,
        offsets: Mapping[TopicPartition, OffsetAndMetadata],
    ) -> dict[TopicPartition, ErrorCode]:
        """OffsetCommit: an error per partition; commit timestamps default to now."""
        now = self.clock()
        group = self.groups.get(group_id)
        error = E.NONE
        if group is None:
            if generation_id >= 0:
                error = E.ILLEGAL_GENERATION
            else:  # a group that only stores offsets (no group management)
                group = self.groups[group_id] = Group(group_id, state_timestamp=now)
        elif group.is_(State.DEAD):
            error = E.COORDINATOR_NOT_AVAILABLE
        elif group.static_member_fenced(member_id, group_instance_id):
            error = E.FENCED_INSTANCE_ID
        elif generation_id < 0 and group.is_(State.EMPTY):
            pass
        elif group.is_(State.COMPLETING_REBALANCE):
            error = E.REBALANCE_IN_PROGRESS
        elif member_id not in group.members:
            error = E.UNKNOWN_MEMBER_ID
        elif generation_id != group.generation_id:
            error = E.ILLEGAL_GENERATION
        else:
            self._schedule_session(group, group.members[member_id], now)
        if error is not E.NONE:
            return dict.fromkeys(offsets, error)
        results: dict[TopicPartition, ErrorCode] = {}
        accepted: dict[TopicPartition, OffsetAndMetadata] = {}
        limit = self.config.offset_metadata_max_bytes
        for tp, value in offsets.items():
            if value.metadata is not None and len(value.metadata.encode()) > limit:
                results[tp] = E.OFFSET_METADATA_TOO_LARGE
                continue
            if value.commit_timestamp < 0:
                value = OffsetAndMetadata(
                    value.offset, value.leader_epoch, value.metadata, now, value.expire_timestamp
                )
            accepted[tp] = value
            results[tp] = E.NONE
        if accepted:
            try:
                self.offsets.commit(group_id, accepted)
            except KafkaError:
                log.exception("group %s: storing offsets failed", group_id)
                return dict.fromkeys(offsets, E.COORDINATOR_NOT_AVAILABLE)
        return results

    def commit_transactional_offsets(
        self, group_id: str, offsets: Mapping[TopicPartition, OffsetAndMetadata]
    ) -> None:
        """Make a committed transaction's offsets visible (its commit marker is written)."""
        now = self.clock()
        if group_id not in self.groups:
            self.groups[group_id] = Group(group_id, state_timestamp=now)
        stamped = {
            tp: v
            if v.commit_timestamp >= 0
            else OffsetAndMetadata(v.offset, v.leader_epoch, v.metadata, now, v.expire_timestamp)
            for tp, v in offsets.items()
        }
        if stamped:
            self.offsets.commit(group_id, stamped)

    def fetch_offsets(
        self, group_id: str, partitions: list[TopicPartition] | None
    ) -> dict[TopicPartition, OffsetAndMetadata | None]:
        """OffsetFetch: the committed offset of each partition asked for (None: all of them)."""
        if partitions is None:
            return dict(self.offsets.all(group_id))
        return {tp: self.offsets.get(group_id, tp) for tp in partitions}

    def delete_offsets(
        self, group_id: str, partitions: list[TopicPartition]
    ) -> tuple[ErrorCode, dict[TopicPartition, ErrorCode]]:
        """OffsetDelete: only offsets no member of the group subscribes to may go."""
        group = self.groups.get(group_id)
        if group is None or group.is_(State.DEAD):
            return E.GROUP_ID_NOT_FOUND, {}
        subscribed: set[str] = set()
        if not group.is_(State.EMPTY):
            topics = subscribed_topics(group)
            if topics is None:
                return E.NON_EMPTY_GROUP, {}
            subscribed = topics
        results = {
            tp: E.GROUP_SUBSCRIBED_TO_TOPIC if tp[0] in subscribed else E.NONE for tp in partitions
        }
        self.offsets.delete(group_id, [tp for tp, err in results.items() if err is E.NONE])
        return E.NONE, results

    def expire_offsets(self) -> int:
        """Drop expired offsets; empty groups left without offsets are removed. Returns count."""
        now = self.clock()
        removed = 0
        for group_id in list(self.groups):
            group = self.groups[group_id]
            expired = self.offsets.expired(group, group_id, now)
            if expired:
                self.offsets.delete(group_id, expired)
                removed += len(expired)
            if group.is_(State.EMPTY) and not self.offsets.has_offsets(group_id):
                group.state = State.DEAD
                self.offsets.delete_group(group_id)
                del self.groups[group_id]
        return removed

    # -- admin -----------------------------------------------------------------------------------

    def delete_groups(self, group_ids: list[str]) -> dict[str, ErrorCode]:
        results: dict[str, ErrorCode] = {}
        for group_id in group_ids:
            group = self.groups.get(group_id)
            if group is None or group.is_(State.DEAD):
                results[group_id] = E.GROUP_ID_NOT_FOUND
            elif not group.is_(State.EMPTY):
                results[group_id] = E.NON_EMPTY_GROUP
            else:
                self.offsets.delete_group(group_id)
                group.state = State.DEAD
                del self.groups[group_id]
                results[group_id] = E.NONE
        return results

    def describe_group(self, group_id: str) -> GroupDescription:
        group = self.groups.get(group_id)
        if group is None:
            return GroupDescription(group_id, State.DEAD.value, "", "", [])
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
            group_id,
            group.state.value,
            group.protocol_type or "",
            protocol if stable else "",
            members,
        )

    def list_groups(self) -> list[tuple[str, str, str]]:
        """(group id, protocol type, state) of every live group."""
        return [
            (g.group_id, g.protocol_type or "", g.state.value)
            for g in self.groups.values()
            if not g.is_(State.DEAD)
        ]
