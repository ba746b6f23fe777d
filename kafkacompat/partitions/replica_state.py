"""A partition leader's view of its followers: their log end offsets, who is in sync, and the
high watermark that follows from them (Kafka's ``Partition``/``Replica`` state on the leader).

The ISR is the cluster's (the metadata image's, written through etcd); the leader proposes
changes and uses them once written. The high watermark is the smallest log end offset over the
ISR plus the followers whose addition is pending (Kafka's "maximal ISR": a follower is only
proposed once it holds everything below the high watermark, so counting it early is safe).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["FollowerState", "LeaderReplicas"]

UNKNOWN_OFFSET = -1


@dataclass(slots=True)
class FollowerState:
    """What the leader knows of one follower from its fetches."""

    log_end_offset: int = UNKNOWN_OFFSET
    #: When the follower last had everything the leader had (ms); it leaves the ISR when this is
    #: older than ``replica.lag.time.max.ms``.
    last_caught_up_ms: int = 0
    last_fetch_ms: int = 0
    #: The leader's log end offset at the follower's previous fetch.
    leader_end_at_last_fetch: int = UNKNOWN_OFFSET


class LeaderReplicas:
    """The followers of a partition this broker leads."""

    def __init__(
        self,
        node_id: int,
        replicas: Iterable[int],
        isr: Iterable[int],
        *,
        epoch_start_offset: int,
        now_ms: int,
    ) -> None:
        self.node_id = node_id
        #: Followers start "caught up" now: one that never fetches leaves the ISR after the lag
        #: time, as in Kafka.
        self.followers = {
            r: FollowerState(last_caught_up_ms=now_ms) for r in replicas if r != node_id
        }
        self.isr: frozenset[int] = frozenset(isr)
        #: Followers proposed for the ISR whose addition is not in the metadata yet.
        self.pending_additions: set[int] = set()
        #: Where this leader's epoch began: a follower joins the ISR only past it.
        self.epoch_start_offset = epoch_start_offset

    def set_isr(self, isr: Iterable[int]) -> None:
        """The ISR as the cluster metadata now has it."""
        self.isr = frozenset(isr)
        self.pending_additions -= self.isr

    def set_replicas(self, replicas: Iterable[int], now_ms: int) -> None:
        wanted = {r for r in replicas if r != self.node_id}
        for gone in set(self.followers) - wanted:
            del self.followers[gone]
        for new in wanted - set(self.followers):
            self.followers[new] = FollowerState(last_caught_up_ms=now_ms)

    @property
    def in_sync_count(self) -> int:
        """The size of the ISR as written (what ``min.insync.replicas`` is checked against)."""
        return len(self.isr)

    def follower_fetched(
        self, replica: int, fetch_offset: int, leader_end: int, now_ms: int
    ) -> bool:
        """Record a follower's fetch at ``fetch_offset`` (its log end); True when it is not in
        the ISR and may now join it (`can_join`)."""
        follower = self.followers.get(replica)
        if follower is None:
            return False
        if fetch_offset >= leader_end:
            follower.last_caught_up_ms = now_ms
        elif fetch_offset >= follower.leader_end_at_last_fetch >= 0:
            follower.last_caught_up_ms = max(follower.last_caught_up_ms, follower.last_fetch_ms)
        follower.log_end_offset = fetch_offset
        follower.last_fetch_ms = now_ms
        follower.leader_end_at_last_fetch = leader_end
        return replica not in self.isr and replica not in self.pending_additions

    def can_join(self, replica: int, high_watermark: int) -> bool:
        """Kafka's rule: a follower joins when it holds the high watermark and this epoch."""
        follower = self.followers.get(replica)
        return (
            follower is not None
            and replica not in self.isr
            and follower.log_end_offset >= high_watermark
            and follower.log_end_offset >= self.epoch_start_offset
        )

    def high_watermark(self, leader_end: int) -> int:
        """The smallest log end offset over the ISR and the pending additions."""
        low = leader_end
        for replica in self.isr | self.pending_additions:
            if replica == self.node_id:
                continue
            follower = self.followers.get(replica)
            end = UNKNOWN_OFFSET if follower is None else follower.log_end_offset
            if end < low:
                low = end
        return low

    def lagging(self, now_ms: int, max_lag_ms: int) -> set[int]:
        """ISR followers that have not caught up within ``max_lag_ms``."""
        return {
            replica
            for replica in self.isr
            if replica != self.node_id
            and (follower := self.followers.get(replica)) is not None
            and now_ms - follower.last_caught_up_ms > max_lag_ms
        }
