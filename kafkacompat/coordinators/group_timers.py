"""The group coordinator's timer queue: deadlines keyed by what they are for.

One heap of (deadline, sequence, key); equal deadlines pop in the order they were scheduled.
Timers are never cancelled: whoever handles a key checks that it still matches what it holds and
ignores it otherwise (a stale timer).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TimerKey:
    """What a deadline is for: the owner it is routed to (a group type, or the offsets), a kind
    the owner understands, and the group and member it concerns."""

    owner: str
    kind: str
    group_id: str = ""
    member_id: str = ""


class TimerQueue:
    """Deadlines in ms; ``on_deadline`` is told whenever a new earliest deadline appears."""

    def __init__(self, on_deadline: Callable[[], None] = lambda: None) -> None:
        self._on_deadline = on_deadline
        self._heap: list[tuple[int, int, TimerKey]] = []
        self._seq = itertools.count()

    def schedule(self, deadline: int, key: TimerKey) -> None:
        earliest = self.next_deadline()
        heapq.heappush(self._heap, (deadline, next(self._seq), key))
        if earliest is None or deadline < earliest:
            self._on_deadline()

    def next_deadline(self) -> int | None:
        """The earliest deadline (possibly a stale one), or None when nothing is scheduled."""
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now: int) -> Iterator[tuple[int, TimerKey]]:
        """(deadline, key) of every timer due by ``now``, earliest first.

        Lazy: a timer scheduled while iterating is yielded too when it is already due.
        """
        while self._heap and self._heap[0][0] <= now:
            deadline, _, key = heapq.heappop(self._heap)
            yield deadline, key
