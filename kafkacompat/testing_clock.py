"""Time control for tests: move an in-process broker's clock forward from the test's thread.

``kafka_broker.clock.advance(minutes=2)`` jumps the broker's clock (`kafkacompat.clock`) and
returns once everything the jump made due has run on the broker's loop: retention has deleted
the segments past ``retention.ms``, group members past ``session.timeout.ms`` are gone and their
groups rebalance, transactions past their timeout are aborted, committed offsets past
``offsets.retention.minutes`` have expired, and the cleaner has compacted what became due under
``min.compaction.lag.ms`` / ``delete.retention.ms``. No sleeping: assert right after it.

The clock never moves back; a restarted broker keeps the time it had. Real time is the default:
a clock never advanced runs exactly as before.
"""

from __future__ import annotations

import time
from typing import Protocol

__all__ = ["BrokerTime", "ClockTarget"]


class ClockTarget(Protocol):
    """What `BrokerTime` drives: a broker that can say its offset and move its clock."""

    @property
    def clock_offset_ms(self) -> int: ...

    def advance_clock(self, ms: int) -> int: ...


class BrokerTime:
    """The clock of one in-process broker, seen and moved from the test's thread (thread-safe)."""

    def __init__(self, target: ClockTarget) -> None:
        self._target = target

    @property
    def offset_ms(self) -> int:
        """How far (ms) the broker's clock runs ahead of real time."""
        return self._target.clock_offset_ms

    def now_ms(self) -> int:
        """The broker's time: ms since the epoch, as its timestamps and deadlines count them."""
        return int(time.time() * 1000) + self.offset_ms

    def advance(
        self,
        seconds: float = 0,
        *,
        ms: int = 0,
        minutes: float = 0,
        hours: float = 0,
        days: float = 0,
    ) -> int:
        """Move the broker's clock forward by the sum of the given amounts; returns its new time
        (ms) once every timer that became due has run. Never moves back."""
        total = ms + round((seconds + 60 * (minutes + 60 * (hours + 24 * days))) * 1000)
        if total < 0:
            raise ValueError(f"the broker's clock only moves forward, not by {total} ms")
        return self._target.advance_clock(total)

    def __repr__(self) -> str:
        return f"<BrokerTime {self.offset_ms} ms ahead of real time>"
