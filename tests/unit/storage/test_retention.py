"""The retention rule in isolation."""

from __future__ import annotations

from kafkacompat.storage.retention import SegmentStats, deletable_prefix


def segs(*spec: tuple[int, int, int]) -> list[SegmentStats]:
    return [SegmentStats(*s) for s in spec]


def test_the_active_segment_only_when_deletable_and_not_empty() -> None:
    one = segs((0, 100, 0))
    kw = {"now_ms": 10**9, "retention_ms": 0, "retention_bytes": -1, "log_start_offset": 50}
    assert deletable_prefix(one, **kw) == 0
    assert deletable_prefix(one, **kw, active_deletable=True) == 1
    assert deletable_prefix(segs((0, 0, 0)), **kw, active_deletable=True) == 0
    two = segs((0, 100, 0), (10, 100, 5000))
    assert deletable_prefix(two, **{**kw, "now_ms": 5000, "retention_ms": 1000},
                            active_deletable=True) == 1  # fmt: skip
    by_size = {**kw, "retention_ms": -1, "retention_bytes": 0}
    assert deletable_prefix(two, **by_size, active_deletable=True) == 2


def test_time_size_and_start_offset() -> None:
    s = segs((0, 100, 1000), (10, 100, 2000), (20, 100, 3000), (30, 100, 4000))
    kw = {"retention_ms": -1, "retention_bytes": -1, "log_start_offset": 0}
    assert deletable_prefix(s, now_ms=10**9, **kw) == 0
    assert deletable_prefix(s, now_ms=3000, **{**kw, "retention_ms": 999}) == 2
    assert deletable_prefix(s, now_ms=3000, **{**kw, "retention_ms": 1000}) == 1
    assert deletable_prefix(s, now_ms=0, **{**kw, "retention_bytes": 250}) == 1
    assert deletable_prefix(s, now_ms=0, **{**kw, "retention_bytes": 200}) == 2
    assert deletable_prefix(s, now_ms=0, **{**kw, "retention_bytes": 0}) == 3
    assert deletable_prefix(s, now_ms=0, **{**kw, "log_start_offset": 19}) == 1
    assert deletable_prefix(s, now_ms=0, **{**kw, "log_start_offset": 20}) == 2
    off = {**kw, "retention_ms": 0, "retention_bytes": 0, "delete_enabled": False}
    assert deletable_prefix(s, now_ms=10**9, **off) == 0
