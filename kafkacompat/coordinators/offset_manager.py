"""Committed offsets of every group, in memory and in the durable group namespace."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from kafkacompat.coordinators.group import Group, GroupState
from kafkacompat.coordinators.group_offsets import (
    GroupOffsetStore,
    OffsetAndMetadata,
    StoredGroup,
    TopicPartition,
)
from kafkacompat.protocol.messages import consumer_protocol_subscription

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


class OffsetManager:
    """Offsets by group and partition; every change is written before it is visible."""

    def __init__(self, store: GroupOffsetStore, retention_ms: int) -> None:
        self.store = store
        self.retention_ms = retention_ms
        self._offsets: dict[str, dict[TopicPartition, OffsetAndMetadata]] = {}

    def load(self, offsets: dict[str, dict[TopicPartition, OffsetAndMetadata]]) -> None:
        self._offsets = offsets

    def has_offsets(self, group_id: str) -> bool:
        return bool(self._offsets.get(group_id))

    def groups(self) -> list[str]:
        return [g for g, offsets in self._offsets.items() if offsets]

    def get(self, group_id: str, tp: TopicPartition) -> OffsetAndMetadata | None:
        return self._offsets.get(group_id, {}).get(tp)

    def all(self, group_id: str) -> dict[TopicPartition, OffsetAndMetadata]:
        return dict(self._offsets.get(group_id, {}))

    def commit(
        self,
        group_id: str,
        offsets: Mapping[TopicPartition, OffsetAndMetadata],
        metadata: StoredGroup | None = None,
    ) -> None:
        """Store offsets (and, atomically with them, the group's metadata when given)."""
        self.store.write(group_id, offsets, metadata)
        self._offsets.setdefault(group_id, {}).update(offsets)

    def delete(self, group_id: str, partitions: Iterable[TopicPartition]) -> None:
        current = self._offsets.get(group_id, {})
        present = [tp for tp in partitions if tp in current]
        if present:
            self.store.delete_offsets(group_id, present)
            for tp in present:
                del current[tp]

    def delete_group(self, group_id: str) -> None:
        """Tombstone the group's metadata and every offset it has, atomically."""
        current = self._offsets.pop(group_id, {})
        self.store.write(group_id, dict.fromkeys(current), delete_group=True)

    def expired(self, group: Group | None, group_id: str, now: int) -> list[TopicPartition]:
        """Offsets due to expire, by Kafka's rules for ``offsets.retention.minutes``.

        An empty group with a protocol type counts from when it became empty; a group used only
        for offset storage counts from each commit; a stable consumer group loses only offsets
        of topics no member subscribes to. Explicit expire timestamps (OffsetCommit v2-v4) win.
        """
        offsets = self._offsets.get(group_id, {})
        if not offsets:
            return []
        skip: set[str] = set()
        if group is None or group.protocol_type is None:
            use_state_time = False
        elif group.is_(GroupState.EMPTY):
            use_state_time = group.state_timestamp >= 0
        elif group.is_(GroupState.STABLE):
            topics = subscribed_topics(group)
            if topics is None:
                return []
            use_state_time, skip = False, topics
        else:
            return []
        expired = []
        for tp, value in offsets.items():
            if tp[0] in skip:
                continue
            if value.expire_timestamp >= 0:
                if now >= value.expire_timestamp:
                    expired.append(tp)
                continue
            base = group.state_timestamp if use_state_time and group else value.commit_timestamp
            if now - base >= self.retention_ms:
                expired.append(tp)
        return expired
