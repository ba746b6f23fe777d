"""LeaderReplicas: the high watermark over the ISR, Kafka's caught-up rule for leaving the ISR,
and the conditions for joining it."""

from __future__ import annotations

from kafkacompat.partitions.replica_state import LeaderReplicas


def leader(isr: tuple[int, ...] = (1, 2, 3), epoch_start: int = 0) -> LeaderReplicas:
    return LeaderReplicas(1, (1, 2, 3), isr, epoch_start_offset=epoch_start, now_ms=1000)


def test_the_high_watermark_is_the_lowest_log_end_in_the_isr() -> None:
    replicas = leader()
    assert replicas.high_watermark(10) == -1  # followers not heard from yet
    replicas.follower_fetched(2, 10, 10, 1100)
    assert replicas.high_watermark(10) == -1
    replicas.follower_fetched(3, 7, 10, 1100)
    assert replicas.high_watermark(10) == 7
    replicas.follower_fetched(3, 10, 10, 1200)
    assert replicas.high_watermark(12) == 10
    replicas.set_isr((1, 2))
    replicas.follower_fetched(2, 12, 12, 1300)
    assert replicas.high_watermark(12) == 12  # broker 3 is out: it does not hold it back


def test_a_follower_leaves_when_it_has_not_caught_up_within_the_lag_time() -> None:
    replicas = leader()
    replicas.follower_fetched(2, 5, 5, 2000)  # caught up at 2000
    replicas.follower_fetched(3, 5, 5, 2000)
    replicas.follower_fetched(3, 5, 9, 2500)  # behind, but had the leader's end of last fetch
    assert replicas.followers[3].last_caught_up_ms == 2000
    replicas.follower_fetched(3, 8, 12, 3000)  # short of 9: not caught up again
    assert replicas.followers[3].last_caught_up_ms == 2000
    replicas.follower_fetched(2, 12, 12, 3000)
    assert replicas.lagging(now_ms=3500, max_lag_ms=1000) == {3}
    assert replicas.lagging(now_ms=2900, max_lag_ms=1000) == set()
    replicas.follower_fetched(3, 12, 14, 3600)  # has what the leader had at 3000
    assert replicas.followers[3].last_caught_up_ms == 3000
    # One that never fetched counts from when the leadership began.
    assert leader().lagging(now_ms=2001, max_lag_ms=1000) == {2, 3}


def test_a_follower_joins_with_the_high_watermark_and_the_current_epoch() -> None:
    replicas = leader(isr=(1, 2), epoch_start=20)
    replicas.follower_fetched(2, 30, 30, 1100)
    assert replicas.follower_fetched(3, 19, 30, 1100) is True  # not in the ISR: a candidate
    assert not replicas.can_join(3, 19)  # before this leader's epoch began
    replicas.follower_fetched(3, 25, 30, 1200)
    assert not replicas.can_join(3, 30)  # short of the high watermark
    assert replicas.can_join(3, 25)
    replicas.pending_additions.add(3)
    assert replicas.follower_fetched(3, 25, 30, 1300) is False  # already proposed
    assert replicas.high_watermark(30) == 25  # the pending member counts
    replicas.set_isr((1, 2, 3))
    assert replicas.pending_additions == set() and not replicas.can_join(3, 25)
    assert replicas.in_sync_count == 3


def test_replicas_added_and_removed() -> None:
    replicas = leader()
    replicas.set_replicas((1, 3, 4), now_ms=5000)
    assert sorted(replicas.followers) == [3, 4]
    assert replicas.followers[4].last_caught_up_ms == 5000
    assert replicas.follower_fetched(2, 9, 9, 5100) is False  # not a replica any more
