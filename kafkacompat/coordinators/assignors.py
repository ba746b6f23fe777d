"""Server-side partition assignors of KIP-848 consumer groups: ``uniform`` and ``range``.

An assignor maps every member to its target partitions from the members' subscriptions (topic
ids), their current target assignment and the partition count of each subscribed topic. Both are
deterministic: the same input gives the same output, whatever the order of the mappings.

- ``uniform`` balances the number of partitions per member (within one, among members that may
  take a partition) and is sticky: a partition stays with its member unless balance needs it to
  move, so a new member takes partitions from the most loaded members only.
- ``range`` gives each member a contiguous range of each topic it subscribes to, members ordered
  by id (co-partitioned topics get the same ranges); it keeps no history.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

__all__ = [
    "ASSIGNORS",
    "Assignment",
    "MemberSpec",
    "RangeAssignor",
    "UniformAssignor",
    "assignor_named",
]

#: Partitions by topic id.
Assignment = dict[uuid.UUID, frozenset[int]]
TopicPartition = tuple[uuid.UUID, int]


@dataclass(frozen=True, slots=True)
class MemberSpec:
    """What an assignor knows of a member: its subscribed topics and current target."""

    topics: frozenset[uuid.UUID]
    current: Mapping[uuid.UUID, frozenset[int]] = field(default_factory=dict)


class Assignor(Protocol):
    name: str

    def assign(
        self, members: Mapping[str, MemberSpec], partitions: Mapping[uuid.UUID, int]
    ) -> dict[str, Assignment]: ...


def _as_assignment(owned: set[TopicPartition]) -> Assignment:
    result: dict[uuid.UUID, set[int]] = {}
    for topic, partition in owned:
        result.setdefault(topic, set()).add(partition)
    return {topic: frozenset(parts) for topic, parts in result.items()}


class UniformAssignor:
    """Balanced and sticky (Kafka's default server assignor)."""

    name = "uniform"

    def assign(
        self, members: Mapping[str, MemberSpec], partitions: Mapping[uuid.UUID, int]
    ) -> dict[str, Assignment]:
        ids = sorted(members)
        owned: dict[str, set[TopicPartition]] = {m: set() for m in ids}
        taken: set[TopicPartition] = set()
        # Stickiness: each member keeps what it had that still exists and it still wants.
        for member_id in ids:
            spec = members[member_id]
            for topic, parts in sorted(spec.current.items()):
                if topic not in spec.topics:
                    continue
                for p in sorted(parts):
                    tp = (topic, p)
                    if p < partitions.get(topic, 0) and tp not in taken:
                        owned[member_id].add(tp)
                        taken.add(tp)
        eligible = {
            topic: [m for m in ids if topic in members[m].topics] for topic in sorted(partitions)
        }
        # Every free partition goes to its least loaded eligible member.
        for topic, candidates in eligible.items():
            if not candidates:
                continue
            for p in range(partitions[topic]):
                if (topic, p) not in taken:
                    chosen = min(candidates, key=lambda m: (len(owned[m]), m))
                    owned[chosen].add((topic, p))
                    taken.add((topic, p))
        self._balance(owned, eligible)
        return {m: _as_assignment(owned[m]) for m in ids}

    @staticmethod
    def _balance(
        owned: dict[str, set[TopicPartition]], eligible: Mapping[uuid.UUID, list[str]]
    ) -> None:
        """Move partitions from the most to the least loaded members until no move helps."""
        moved = True
        while moved:
            moved = False
            for donor in sorted(owned, key=lambda m: (-len(owned[m]), m)):
                best: tuple[int, str, TopicPartition] | None = None
                for tp in sorted(owned[donor], reverse=True):
                    for taker in eligible.get(tp[0], []):
                        load = len(owned[taker])
                        if load + 1 < len(owned[donor]) and (best is None or load < best[0]):
                            best = (load, taker, tp)
                if best is not None:
                    _, taker, tp = best
                    owned[donor].discard(tp)
                    owned[taker].add(tp)
                    moved = True
                    break


class RangeAssignor:
    """Contiguous ranges per topic, members by id; the first ``count % members`` get one more."""

    name = "range"

    def assign(
        self, members: Mapping[str, MemberSpec], partitions: Mapping[uuid.UUID, int]
    ) -> dict[str, Assignment]:
        result: dict[str, Assignment] = {m: {} for m in members}
        for topic, count in partitions.items():
            subscribed = sorted(m for m, spec in members.items() if topic in spec.topics)
            if not subscribed:
                continue
            quota, extra = divmod(count, len(subscribed))
            start = 0
            for i, member_id in enumerate(subscribed):
                size = quota + (1 if i < extra else 0)
                if size:
                    result[member_id][topic] = frozenset(range(start, start + size))
                start += size
        return result


#: Assignors by the names ``group.consumer.assignors`` and ServerAssignor use.
ASSIGNORS: dict[str, Assignor] = {"uniform": UniformAssignor(), "range": RangeAssignor()}

_CLASS_NAMES = {
    "org.apache.kafka.coordinator.group.assignor.UniformAssignor": "uniform",
    "org.apache.kafka.coordinator.group.assignor.RangeAssignor": "range",
}


def assignor_named(name: str) -> Assignor | None:
    """The assignor named ``name`` (short name or Kafka's class name), if there is one."""
    return ASSIGNORS.get(_CLASS_NAMES.get(name.strip(), name.strip()))
