"""Closing idle connections (``connections.max.idle.ms``), as Kafka's selector does.

A connection notes when it starts waiting for a request; one reaper task wakes now and then
and cancels the connections that have waited too long. A connection busy with a request is
never idle. This costs a request one clock read, where a timeout around every receive would
cost a cancel scope.
"""

from __future__ import annotations

import math

import trio

#: How often the reaper looks, at most: an idle connection lives up to this much past its limit.
MAX_CHECK_INTERVAL = 1.0


class IdleTimer:
    """One connection's idle state: since when it has been waiting, and how to close it."""

    __slots__ = ("scope", "waiting_since")

    def __init__(self, scope: trio.CancelScope) -> None:
        self.waiting_since = math.inf
        self.scope = scope


class IdleConnections:
    """Every open connection's idle timer, and the task that closes the idle ones."""

    def __init__(self, max_idle_seconds: float) -> None:
        self.max_idle_seconds = max_idle_seconds
        self._timers: set[IdleTimer] = set()

    def add(self, scope: trio.CancelScope) -> IdleTimer:
        timer = IdleTimer(scope)
        self._timers.add(timer)
        return timer

    def remove(self, timer: IdleTimer) -> None:
        self._timers.discard(timer)

    def __len__(self) -> int:
        return len(self._timers)

    async def run(self) -> None:
        """Cancel connections idle for longer than the limit, forever."""
        interval = min(MAX_CHECK_INTERVAL, self.max_idle_seconds / 4)
        while True:
            await trio.sleep(interval)
            cutoff = trio.current_time() - self.max_idle_seconds
            for timer in self._timers:
                if timer.waiting_since <= cutoff:
                    timer.scope.cancel()
