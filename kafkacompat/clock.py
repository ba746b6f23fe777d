"""The broker's wall clock in milliseconds: the one place every timestamp and deadline reads.

Each broker owns a `BrokerClock`: wall time plus an offset that tests move forward with
`BrokerClock.advance` (never back). `now_ms` reads the clock of the broker whose code is running:
a `Broker` installs its clock in the context of the task that builds it, and Trio hands that
context to every task started from there and to worker threads (`trio.to_thread`). Several
in-process brokers thus keep separate clocks, and code with no broker around reads real time.

Only Kafka's notion of time moves: record timestamps the broker assigns (LogAppendTime, markers),
retention, segment age, session and rebalance timeouts, transaction timeouts, offsets expiry,
compaction lags, producer-id and fetch-session expiry. Network-level timing (idle connections,
throttling, request waits, SASL session lifetimes) stays on Trio's monotonic clock.

Trio-free, as storage reads it too: `advance` awaits the broker's catch-up callbacks on whatever
loop it is awaited on (the broker's own).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar, Token

__all__ = [
    "REAL_TIME",
    "BrokerClock",
    "current_clock",
    "now_ms",
    "reset_clock",
    "use_clock",
]

#: Called with the new time (ms) after the clock moved: runs whatever became due.
CatchUp = Callable[[int], Awaitable[None]]


class BrokerClock:
    """Wall time in ms plus ``offset_ms``, which only `advance` changes (on the broker's loop).

    Reading costs one addition over the wall clock; nothing else changes while it is never
    advanced.
    """

    __slots__ = ("_catch_up", "offset_ms")

    def __init__(self, offset_ms: int = 0) -> None:
        if offset_ms < 0:
            raise ValueError(f"a clock offset cannot be negative: {offset_ms}")
        self.offset_ms = offset_ms
        self._catch_up: list[CatchUp] = []

    def now_ms(self) -> int:
        """Milliseconds since the epoch, as Kafka's timestamps count them, plus the offset."""
        return int(time.time() * 1000) + self.offset_ms

    def on_advance(self, catch_up: CatchUp) -> None:
        """Have ``catch_up(now_ms)`` run (awaited, in registration order) after every advance."""
        self._catch_up.append(catch_up)

    async def advance(self, ms: int) -> int:
        """Move the clock ``ms`` forward, then run every catch-up; returns the new time.

        Await it on the loop of the broker that owns the clock: when it returns, every timer that
        the jump made due has run (sessions expired, transactions aborted, retention checked...).
        """
        if ms < 0:
            raise ValueError(f"the clock only moves forward, not by {ms} ms")
        self.offset_ms += ms
        now = self.now_ms()
        for catch_up in list(self._catch_up):
            await catch_up(now)
        return now

    def __repr__(self) -> str:
        return f"<BrokerClock offset {self.offset_ms} ms>"


class _RealTime(BrokerClock):
    __slots__ = ()

    async def advance(self, ms: int) -> int:
        raise RuntimeError("real time cannot be advanced: advance a broker's own clock")


#: What `now_ms` reads where no broker installed its clock: real time, never advanced.
REAL_TIME: BrokerClock = _RealTime()

_current: ContextVar[BrokerClock] = ContextVar("kafkacompat_clock", default=REAL_TIME)


def now_ms() -> int:
    """Milliseconds since the epoch by the clock of the broker whose code is running."""
    return int(time.time() * 1000) + _current.get().offset_ms


def current_clock() -> BrokerClock:
    """The clock `now_ms` reads here (`REAL_TIME` outside any broker)."""
    return _current.get()


def use_clock(clock: BrokerClock) -> Token[BrokerClock]:
    """Make ``clock`` the one `now_ms` reads in the current context and in every task and
    worker thread started from it from now on; `reset_clock` with the token undoes it."""
    return _current.set(clock)


def reset_clock(token: Token[BrokerClock]) -> None:
    """Undo a `use_clock`."""
    _current.reset(token)
