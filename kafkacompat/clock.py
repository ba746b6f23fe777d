"""The broker's wall clock in milliseconds: the one place every timestamp and deadline reads."""

from __future__ import annotations

import time

__all__ = ["now_ms"]


def now_ms() -> int:
    """Milliseconds since the epoch, as Kafka's timestamps count them."""
    return int(time.time() * 1000)
