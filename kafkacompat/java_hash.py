"""Java's integer hashing, as Kafka uses it to place things (coordinator partitions, replica
fetchers): ``String.hashCode`` and 32-bit wrap-around."""

from __future__ import annotations

__all__ = ["java_int", "java_string_hash"]


def java_int(value: int) -> int:
    """``value`` wrapped to a Java ``int`` (32-bit two's complement)."""
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


def java_string_hash(text: str) -> int:
    """Java's ``String.hashCode`` (UTF-16 code units, 32-bit wrap-around)."""
    h = 0
    raw = text.encode("utf-16-be")
    for i in range(0, len(raw), 2):
        h = (31 * h + (raw[i] << 8 | raw[i + 1])) & 0xFFFFFFFF
    return java_int(h)
