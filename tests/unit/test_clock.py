"""The broker clock: wall time plus an offset, per broker, moved only forward by `advance`."""

from __future__ import annotations

import contextvars
import threading
import time
from pathlib import Path

import pytest
import trio

from kafkacompat.broker.broker import Broker
from kafkacompat.clock import (
    REAL_TIME,
    BrokerClock,
    current_clock,
    now_ms,
    reset_clock,
    use_clock,
)
from kafkacompat.testing import KafkaBroker, local_config
from kafkacompat.testing_clock import BrokerTime

HOUR_MS = 3_600_000


def wall_ms() -> int:
    return int(time.time() * 1000)


def test_a_clock_reads_wall_time_plus_its_offset() -> None:
    before = wall_ms()
    assert before <= BrokerClock().now_ms() <= wall_ms()
    ahead = BrokerClock(offset_ms=HOUR_MS)
    before = wall_ms()
    assert before + HOUR_MS <= ahead.now_ms() <= wall_ms() + HOUR_MS
    with pytest.raises(ValueError, match="negative"):
        BrokerClock(offset_ms=-1)


async def test_advance_moves_forward_then_runs_the_catch_ups_in_order() -> None:
    clock = BrokerClock()
    seen: list[tuple[str, int, int]] = []

    async def first(now: int) -> None:
        seen.append(("first", now, clock.offset_ms))
        await trio.sleep(0)

    async def second(now: int) -> None:
        seen.append(("second", now, clock.offset_ms))

    clock.on_advance(first)
    clock.on_advance(second)
    before = wall_ms()
    now = await clock.advance(90_000)
    assert clock.offset_ms == 90_000
    assert before + 90_000 <= now <= wall_ms() + 90_000
    assert seen == [("first", now, 90_000), ("second", now, 90_000)]
    await clock.advance(0)  # runs what is due without moving
    assert clock.offset_ms == 90_000 and len(seen) == 4
    with pytest.raises(ValueError, match="only moves forward"):
        await clock.advance(-1)
    assert clock.offset_ms == 90_000


async def test_real_time_is_the_default_and_cannot_be_advanced() -> None:
    assert contextvars.Context().run(current_clock) is REAL_TIME
    before = wall_ms()
    assert before <= now_ms() <= wall_ms()
    with pytest.raises(RuntimeError, match="real time cannot be advanced"):
        await REAL_TIME.advance(1)
    assert REAL_TIME.offset_ms == 0


async def test_the_installed_clock_reaches_child_tasks_and_worker_threads() -> None:
    clock = BrokerClock(offset_ms=HOUR_MS)
    seen: dict[str, BrokerClock] = {}

    async def child(name: str) -> None:
        seen[name] = current_clock()
        seen[name + "-thread"] = await trio.to_thread.run_sync(current_clock)

    token = use_clock(clock)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(child, "task")
        assert now_ms() >= wall_ms() + HOUR_MS - 1
    finally:
        reset_clock(token)
    assert seen == {"task": clock, "task-thread": clock}


async def test_brokers_installing_their_clocks_in_sibling_tasks_stay_apart() -> None:
    clocks = [BrokerClock(), BrokerClock(offset_ms=HOUR_MS)]
    seen: list[int] = [0, 0]

    async def broker(index: int, task_status: trio.TaskStatus[None]) -> None:
        use_clock(clocks[index])  # what a Broker does when it is built
        task_status.started()
        await trio.sleep(0.01)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(read, index)

    async def read(index: int) -> None:
        seen[index] = now_ms() - wall_ms()

    async with trio.open_nursery() as nursery:
        await nursery.start(broker, 0)
        await nursery.start(broker, 1)
    assert abs(seen[0]) < 1000 and abs(seen[1] - HOUR_MS) < 1000


def test_threads_do_not_share_the_installed_clock() -> None:
    clock = BrokerClock(offset_ms=HOUR_MS)
    seen: list[BrokerClock] = []

    def other_thread() -> None:
        seen.append(current_clock())

    token = use_clock(clock)
    try:
        thread = threading.Thread(target=other_thread)
        thread.start()
        thread.join()
    finally:
        reset_clock(token)
    assert seen == [REAL_TIME]


async def test_a_broker_built_in_a_trio_run_installs_its_clock(tmp_path: Path) -> None:
    clock = BrokerClock(offset_ms=HOUR_MS)
    broker = Broker(local_config(tmp_path / "data"), clock=clock)
    try:
        assert current_clock() is clock and broker.services.clock is clock
        assert now_ms() >= wall_ms() + HOUR_MS - 1
    finally:
        broker.close()


def test_a_broker_built_outside_a_trio_run_leaves_the_thread_alone(tmp_path: Path) -> None:
    def build() -> BrokerClock:
        broker = Broker(local_config(tmp_path / "data"), clock=BrokerClock(offset_ms=HOUR_MS))
        broker.close()
        return current_clock()

    assert contextvars.Context().run(build) is REAL_TIME


class FakeTarget:
    def __init__(self) -> None:
        self.clock_offset_ms = 0
        self.asked: list[int] = []

    def advance_clock(self, ms: int) -> int:
        self.asked.append(ms)
        self.clock_offset_ms += ms
        return wall_ms() + self.clock_offset_ms


def test_broker_time_adds_up_its_units() -> None:
    target = FakeTarget()
    clock = BrokerTime(target)
    clock.advance(seconds=1.5, ms=2)
    clock.advance(minutes=1, hours=1, days=1)
    clock.advance(0.0004)  # rounds to whole ms
    assert target.asked == [1502, 60_000 + HOUR_MS + 24 * HOUR_MS, 0]
    before = wall_ms()
    assert before + target.clock_offset_ms <= clock.now_ms() <= wall_ms() + clock.offset_ms
    with pytest.raises(ValueError, match="only moves forward"):
        clock.advance(seconds=-1)
    assert len(target.asked) == 3


def test_a_stopped_kafka_broker_keeps_the_advance_for_its_next_start(tmp_path: Path) -> None:
    broker = KafkaBroker(tmp_path / "data")
    assert broker.clock.offset_ms == 0
    broker.clock.advance(hours=2)
    assert broker.clock.offset_ms == 2 * HOUR_MS
    with pytest.raises(NotImplementedError, match="in-process brokers only"):
        _ = KafkaBroker(tmp_path / "other", mode="subprocess").clock
