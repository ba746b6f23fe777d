"""Committed offsets of every group, in memory and in the durable group namespace.

The offsets know nothing of group membership: the group's own state machine validates a commit or
a delete first, and says how its offsets age (`ExpiryRule`).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from kafkacompat.coordinators.group_offsets import (
    GroupOffsetStore,
    OffsetAndMetadata,
    StoredGroup,
    TopicPartition,
)
from kafkacompat.errors import ErrorCode, KafkaError

log = logging.getLogger("kafkacompat.groups")

E = ErrorCode


@dataclass(frozen=True, slots=True)
class ExpiryRule:
    """How a group's offsets age, by Kafka's rules for ``offsets.retention.minutes``.

    Offsets count from ``since`` when it is set (>= 0), else from each one's commit; offsets of
    ``keep_topics`` never expire. An explicit expire timestamp (OffsetCommit v2-v4) wins.
    """

    since: int = -1
    keep_topics: frozenset[str] = frozenset()


def stamped(value: OffsetAndMetadata, now: int) -> OffsetAndMetadata:
    """``value`` with its commit timestamp defaulted to ``now``."""
    if value.commit_timestamp >= 0:
        return value
    return dataclasses.replace(value, commit_timestamp=now)


class OffsetManager:
    """Offsets by group and partition; every change is written before it is visible."""

    def __init__(
        self, store: GroupOffsetStore, retention_ms: int, metadata_max_bytes: int = 4096
    ) -> None:
        self.store = store
        self.retention_ms = retention_ms
        self.metadata_max_bytes = metadata_max_bytes
        self._offsets: dict[str, dict[TopicPartition, OffsetAndMetadata]] = {}

    def load(self, offsets: dict[str, dict[TopicPartition, OffsetAndMetadata]]) -> None:
        """Hold these groups' offsets too (a partition of ``__consumer_offsets`` loaded)."""
        self._offsets.update(offsets)

    def forget(self, belongs: Callable[[str], bool]) -> None:
        """Let go of the offsets of the groups ``belongs`` picks (coordinated elsewhere now)."""
        for group_id in [g for g in self._offsets if belongs(g)]:
            del self._offsets[group_id]

    def has_offsets(self, group_id: str) -> bool:
        return bool(self._offsets.get(group_id))

    def groups(self) -> list[str]:
        return [g for g, offsets in self._offsets.items() if offsets]

    def get(self, group_id: str, tp: TopicPartition) -> OffsetAndMetadata | None:
        return self._offsets.get(group_id, {}).get(tp)

    def all(self, group_id: str) -> dict[TopicPartition, OffsetAndMetadata]:
        return dict(self._offsets.get(group_id, {}))

    def fetch(
        self, group_id: str, partitions: list[TopicPartition] | None
    ) -> dict[TopicPartition, OffsetAndMetadata | None]:
        """OffsetFetch: the committed offset of each partition asked for (None: all of them)."""
        if partitions is None:
            return dict(self.all(group_id))
        return {tp: self.get(group_id, tp) for tp in partitions}

    # -- writes ----------------------------------------------------------------------------------

    def commit(
        self,
        group_id: str,
        offsets: Mapping[TopicPartition, OffsetAndMetadata],
        metadata: StoredGroup | None = None,
    ) -> None:
        """Store offsets (and, atomically with them, the group's metadata when given)."""
        self.store.write(group_id, offsets, metadata)
        self._offsets.setdefault(group_id, {}).update(offsets)

    def commit_checked(
        self, group_id: str, offsets: Mapping[TopicPartition, OffsetAndMetadata], now: int
    ) -> dict[TopicPartition, ErrorCode]:
        """OffsetCommit once the group accepted it: an error per partition.

        Metadata over ``offset.metadata.max.bytes`` is refused per partition, commit timestamps
        default to ``now``, and a failed write fails every partition.
        """
        results: dict[TopicPartition, ErrorCode] = {}
        accepted: dict[TopicPartition, OffsetAndMetadata] = {}
        limit = self.metadata_max_bytes
        for tp, value in offsets.items():
            if value.metadata is not None and len(value.metadata.encode()) > limit:
                results[tp] = E.OFFSET_METADATA_TOO_LARGE
                continue
            accepted[tp] = stamped(value, now)
            results[tp] = E.NONE
        if accepted:
            try:
                self.commit(group_id, accepted)
            except KafkaError:
                log.exception("group %s: storing offsets failed", group_id)
                return dict.fromkeys(offsets, E.COORDINATOR_NOT_AVAILABLE)
        return results

    def commit_transactional(
        self, group_id: str, offsets: Mapping[TopicPartition, OffsetAndMetadata], now: int
    ) -> None:
        """Make a committed transaction's offsets visible; commit timestamps default to now."""
        values = {tp: stamped(v, now) for tp, v in offsets.items()}
        if values:
            self.commit(group_id, values)

    def write_group(self, group_id: str, metadata: StoredGroup) -> None:
        """Persist a group's metadata (generation, leader, protocol, members)."""
        self.store.write(group_id, None, metadata)

    def delete(self, group_id: str, partitions: Iterable[TopicPartition]) -> None:
        current = self._offsets.get(group_id, {})
        present = [tp for tp in partitions if tp in current]
        if present:
            self.store.delete_offsets(group_id, present)
            for tp in present:
                del current[tp]

    def delete_unsubscribed(
        self, group_id: str, partitions: list[TopicPartition], subscribed: frozenset[str]
    ) -> dict[TopicPartition, ErrorCode]:
        """OffsetDelete once the group allowed it: offsets of ``subscribed`` topics stay."""
        results = {
            tp: E.GROUP_SUBSCRIBED_TO_TOPIC if tp[0] in subscribed else E.NONE for tp in partitions
        }
        self.delete(group_id, [tp for tp, err in results.items() if err is E.NONE])
        return results

    def delete_group(self, group_id: str) -> None:
        """Tombstone the group's metadata and every offset it has, atomically."""
        current = self._offsets.pop(group_id, {})
        self.store.write(group_id, dict.fromkeys(current), delete_group=True)

    # -- expiry ----------------------------------------------------------------------------------

    def expired(self, group_id: str, now: int, rule: ExpiryRule | None) -> list[TopicPartition]:
        """Offsets of ``group_id`` due to expire under ``rule`` (None: none may expire)."""
        offsets = self._offsets.get(group_id, {})
        if not offsets or rule is None:
            return []
        expired = []
        for tp, value in offsets.items():
            if tp[0] in rule.keep_topics:
                continue
            if value.expire_timestamp >= 0:
                if now >= value.expire_timestamp:
                    expired.append(tp)
                continue
            base = rule.since if rule.since >= 0 else value.commit_timestamp
            if now - base >= self.retention_ms:
                expired.append(tp)
        return expired

    def expire(self, group_id: str, now: int, rule: ExpiryRule | None) -> int:
        """Delete the offsets of ``group_id`` that expired; returns how many."""
        expired = self.expired(group_id, now, rule)
        if expired:
            self.delete(group_id, expired)
        return len(expired)
