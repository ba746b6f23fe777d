"""Opening a partition directory: find its segments, trust or recover each, drop debris."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from kafkacompat.storage.cleaner_swap import recover_swap
from kafkacompat.storage.segment import LogSegment

__all__ = ["load_segments"]

_STRAY_SUFFIXES = (".tmp", ".deleted", ".cleaned", ".swap")


def load_segments(
    directory: Path,
    recovery_point: int,
    *,
    clean_shutdown: bool,
    open_segment: Callable[[int], LogSegment],
) -> list[LogSegment]:
    """Open every segment of ``directory`` in offset order.

    After a clean shutdown, and for segments wholly below ``recovery_point``, the index files
    are trusted when they pass sanity checks; every other segment is scanned, its indexes
    rebuilt and a bad tail cut off. A segment with a bad tail ends the log: later segments are
    deleted. A committed compaction swap is finished first (`cleaner_swap.recover_swap`);
    temporary files (uncommitted ``*.cleaned`` among them) and indexes without a log are
    removed. On failure every segment opened so far gives its descriptor back.
    """
    recover_swap(directory)
    bases: set[int] = set()
    for path in directory.iterdir():
        if path.name.endswith(_STRAY_SUFFIXES):
            path.unlink()
        elif path.suffix == ".log" and len(path.stem) == 20 and path.stem.isdigit():
            bases.add(int(path.stem))
    for path in directory.iterdir():
        if path.suffix in (".index", ".timeindex") and (
            not path.stem.isdigit() or int(path.stem) not in bases
        ):
            path.unlink()
    segments: list[LogSegment] = []
    try:
        for base in sorted(bases):
            segments.append(open_segment(base))
        for i, segment in enumerate(segments):
            following = segments[i + 1].base_offset if i + 1 < len(segments) else None
            flushed = following is not None and following <= recovery_point
            if (clean_shutdown or flushed) and segment.load():
                continue
            dropped = segment.recover()
            if dropped or (following is not None and segment.next_offset > following):
                for later in segments[i + 1 :]:
                    later.delete()
                del segments[i + 1 :]
            segment.sync()
    except BaseException:
        for segment in segments:
            segment.close_file()
        raise
    return segments
