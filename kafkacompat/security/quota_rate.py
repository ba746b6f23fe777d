"""A rate sampled over a ring of time windows, and the throttle time it implies (Kafka's maths).

Kafka measures a client's use with a ``Rate`` over a ``WindowedSum``: ``quota.window.num``
samples of ``quota.window.size.seconds`` each. The rate is the sum of the live samples divided
by the time they span, where that span is never taken as less than ``num - 1`` full windows (so
a new client is not judged on its first instant). Over quota, the client is throttled for the
time X that brings the observed rate O back to the bound T over the window W: X = (O - T) / T * W.
All times are integer milliseconds, as Kafka counts them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["RateWindows", "SampledRate", "throttle_time_ms"]


@dataclass(frozen=True, slots=True)
class RateWindows:
    """How a rate is sampled: ``samples`` windows of ``window_ms`` each."""

    samples: int
    window_ms: int

    def __post_init__(self) -> None:
        if self.samples < 1 or self.window_ms < 1:
            raise ValueError("a rate needs at least one window of at least 1 ms")


@dataclass(slots=True)
class _Sample:
    start_ms: int
    last_event_ms: int
    value: float = 0.0

    def reset(self, now_ms: int) -> None:
        self.start_ms = now_ms
        self.last_event_ms = now_ms
        self.value = 0.0


class SampledRate:
    """A sum recorded into rotating samples, read as a per-second rate."""

    __slots__ = ("_current", "_samples", "last_record_ms", "windows")

    def __init__(self, windows: RateWindows) -> None:
        self.windows = windows
        #: One more sample than configured: the oldest may overlap the start of the window.
        self._samples: list[_Sample] = []
        self._current = 0
        self.last_record_ms = 0

    def record(self, value: float, now_ms: int) -> None:
        """Add ``value`` (may be negative: taking back a recorded use) at ``now_ms``."""
        sample = self._current_sample(now_ms)
        if now_ms - sample.start_ms >= self.windows.window_ms:
            sample = self._advance(now_ms)
        sample.value += value
        sample.last_event_ms = now_ms
        self.last_record_ms = now_ms

    def _current_sample(self, now_ms: int) -> _Sample:
        if not self._samples:
            self._samples.append(_Sample(now_ms, now_ms))
        return self._samples[self._current]

    def _advance(self, now_ms: int) -> _Sample:
        self._current = (self._current + 1) % (self.windows.samples + 1)
        if self._current >= len(self._samples):
            sample = _Sample(now_ms, now_ms)
            self._samples.append(sample)
            return sample
        sample = self._samples[self._current]
        sample.reset(now_ms)
        return sample

    def _purge(self, now_ms: int) -> None:
        """Forget samples with no event within the whole monitored span."""
        expire_ms = self.windows.samples * self.windows.window_ms
        for sample in self._samples:
            if now_ms - sample.last_event_ms >= expire_ms:
                sample.reset(now_ms)

    def window_size_ms(self, now_ms: int) -> int:
        """The span the rate is measured over: at least ``samples - 1`` full windows."""
        self._purge(now_ms)
        if not self._samples:
            self._samples.append(_Sample(now_ms, now_ms))
        oldest = min(sample.start_ms for sample in self._samples)
        elapsed = now_ms - oldest
        window = self.windows.window_ms
        full_windows = elapsed // window
        min_full_windows = self.windows.samples - 1
        if full_windows < min_full_windows:
            elapsed += (min_full_windows - full_windows) * window
        return max(elapsed, 1)

    def total(self, now_ms: int) -> float:
        """The sum of the live samples."""
        self._purge(now_ms)
        return sum(sample.value for sample in self._samples)

    def measure(self, now_ms: int) -> float:
        """The rate per second at ``now_ms``."""
        total = self.total(now_ms)
        return total / (self.window_size_ms(now_ms) / 1000)


def throttle_time_ms(rate: SampledRate, bound: float, now_ms: int) -> int:
    """How long to hold the client so that the rate falls back to ``bound`` (0: within it)."""
    value = rate.measure(now_ms)
    if value <= bound:
        return 0
    delay = (value - bound) / bound * rate.window_size_ms(now_ms)
    return math.floor(delay + 0.5)  # Java's Math.round
