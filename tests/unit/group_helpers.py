"""A group coordinator on a fake clock, and short-hands for driving it."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

from kafkacompat.coordinators.group import Completion, GroupConfig, JoinResult, SyncResult
from kafkacompat.coordinators.group_coordinator import GroupCoordinator, JoinRequest
from kafkacompat.coordinators.group_offsets import NAMESPACE, GroupOffsetStore
from kafkacompat.errors import ErrorCode
from kafkacompat.protocol.messages import consumer_protocol_subscription as subscription
from kafkacompat.storage.state_store import StateStore

SESSION = 10_000
REBALANCE = 30_000


def consumer_metadata(*topics: str) -> bytes:
    body = subscription.encode(subscription.ConsumerProtocolSubscription(topics=list(topics)), 0)
    return struct.pack(">h", 0) + bytes(body)


@dataclass
class FakeClock:
    now: int = 1_000_000

    def __call__(self) -> int:
        return self.now


@dataclass
class Harness:
    directory: Path
    config: GroupConfig
    clock: FakeClock = field(default_factory=FakeClock)
    wakeups: int = 0

    def __post_init__(self) -> None:
        self.open()

    def open(self) -> None:
        self.state_store = StateStore(self.directory, fsync=False, compact_min_bytes=4096)
        self.store = GroupOffsetStore(self.state_store.namespace(NAMESPACE))
        self.coordinator = GroupCoordinator(self.store, self.config, self.clock, self._woken)

    def reopen(self) -> None:
        self.state_store.close()
        self.open()

    def _woken(self) -> None:
        self.wakeups += 1

    def advance(self, ms: int) -> None:
        """Move the clock on, running timers at each deadline on the way, as the shell does."""
        target = self.clock.now + ms
        while True:
            deadline = self.coordinator.next_deadline()
            if deadline is None or deadline > target:
                break
            self.clock.now = max(self.clock.now, deadline)
            self.coordinator.poll()
        self.clock.now = target
        self.coordinator.poll()

    def join(
        self,
        member_id: str = "",
        *,
        group: str = "g",
        instance: str | None = None,
        protocols: list[tuple[str, bytes]] | None = None,
        protocol_type: str = "consumer",
        session: int = SESSION,
        rebalance: int = REBALANCE,
        client_id: str = "client",
        require_known: bool = True,
    ) -> Completion[JoinResult]:
        return self.coordinator.join_group(
            JoinRequest(
                group,
                member_id,
                instance,
                protocol_type,
                protocols if protocols is not None else [("range", consumer_metadata("t"))],
                session,
                rebalance,
                client_id,
                "/127.0.0.1",
                require_known,
            )
        )

    def join_new(self, **kwargs: object) -> Completion[JoinResult]:
        """KIP-394 round trip: get a member id, then join with it."""
        first = self.join(**kwargs)  # type: ignore[arg-type]
        assert first.done and first.value.error == ErrorCode.MEMBER_ID_REQUIRED
        return self.join(first.value.member_id, **kwargs)  # type: ignore[arg-type]

    def sync(
        self,
        member_id: str,
        generation: int,
        assignments: dict[str, bytes] | None = None,
        *,
        group: str = "g",
        instance: str | None = None,
    ) -> Completion[SyncResult]:
        return self.coordinator.sync_group(
            group, generation, member_id, instance, "consumer", None, assignments or {}
        )

    def heartbeat(
        self, member_id: str, generation: int, *, group: str = "g", instance: str | None = None
    ) -> ErrorCode:
        return self.coordinator.heartbeat(group, member_id, instance, generation)

    def state(self, group: str = "g") -> str:
        return self.coordinator.describe_group(group).state

    def stable_group(self, count: int, *, group: str = "g") -> list[str]:
        """``count`` members joined and synced in generation 1; returns their ids, leader first."""
        joins = [self.join_new(group=group) for _ in range(count)]
        self.advance(0)
        results = [j.value for j in joins]
        assert all(r.error == ErrorCode.NONE for r in results)
        leader = results[0].leader
        ids = [leader] + [r.member_id for r in results if r.member_id != leader]
        assignments = {m: f"assignment-{m}".encode() for m in ids}
        syncs = [self.sync(m, results[0].generation_id, assignments, group=group) for m in ids]
        assert all(s.done and s.value.error == ErrorCode.NONE for s in syncs)
        return ids
