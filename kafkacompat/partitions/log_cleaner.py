"""The log cleaner: compacts the partitions of compacted topics in the background.

Every ``log.cleaner.backoff.ms`` it looks for partitions whose dirty ratio reached
``min.cleanable.dirty.ratio`` (or whose oldest dirty record waited ``max.compaction.lag.ms``) and
cleans them, at most ``log.cleaner.threads`` at a time, the work itself on worker threads. Each
cleaning is one log line (bytes cleaned, dirty ratio, duration) and, when ``on_cleaned`` is set
(metrics), one call with its `CleanerStats`. `clean_now` runs a pass at once
(tests, tools), cleaning every compacted partition with anything dirty.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import trio

from kafkacompat.clock import now_ms
from kafkacompat.errors import KafkaError, is_resource_exhausted
from kafkacompat.partitions.manager import PartitionManager
from kafkacompat.partitions.partition import Partition
from kafkacompat.storage.cleaner import CleanerStats

__all__ = ["CleanedHook", "LogCleaner"]

#: Called on the loop after each cleaning with the partition and what the cleaning did.
CleanedHook = Callable[[Partition, CleanerStats], None]

log = logging.getLogger("kafkacompat.cleaner")


class LogCleaner:
    def __init__(
        self,
        partitions: PartitionManager,
        *,
        threads: int,
        backoff_ms: int,
        dedupe_buffer_bytes: int,
    ) -> None:
        self._partitions = partitions
        self._limiter = trio.CapacityLimiter(max(1, threads))
        self._backoff_s = backoff_ms / 1000
        # Each thread has its share of the dedupe buffer, as in Kafka.
        self._map_bytes = max(1 << 20, dedupe_buffer_bytes // max(1, threads))
        self._stopping = False
        #: Told about every cleaning (metrics); None: nobody is.
        self.on_cleaned: CleanedHook | None = None

    async def run(self) -> None:
        """Clean what is due, then sleep for the backoff, forever."""
        try:
            while True:
                await self._pass(force=False)
                await trio.sleep(self._backoff_s)
        finally:
            self._stopping = True

    async def clean_due(self) -> list[CleanerStats]:
        """One pass over what is due now (the clock moved), as the background task makes."""
        return await self._pass(force=False)

    async def clean_now(self) -> list[CleanerStats]:
        """One pass over every compacted partition with dirty data, whatever its ratio."""
        return await self._pass(force=True)

    async def _pass(self, *, force: bool) -> list[CleanerStats]:
        now = now_ms()
        due = [
            p
            for p in self._partitions.partitions()
            if p.config.compact_enabled and (force or p.needs_cleaning(now))
        ]
        done: list[CleanerStats] = []
        async with trio.open_nursery() as nursery:
            for partition in due:
                nursery.start_soon(self._clean_one, partition, done)
        return done

    async def _clean_one(self, partition: Partition, done: list[CleanerStats]) -> None:
        name = f"{partition.topic}-{partition.index}"
        async with self._limiter:
            try:
                stats = await partition.clean(
                    dedupe_buffer_bytes=self._map_bytes, stopping=lambda: self._stopping
                )
            except KafkaError as exc:
                log.warning("cleaning %s stopped: %s", name, exc)
                return
            except OSError as exc:
                if is_resource_exhausted(exc):
                    log.error("cleaning %s failed: %s", name, exc)
                else:
                    log.exception("cleaning %s failed", name)
                return
        if stats is None:
            return
        done.append(stats)
        if self.on_cleaned is not None:
            self.on_cleaned(partition, stats)
        seconds = max(stats.seconds, 1e-6)
        log.info(
            "cleaned %s: offsets %d-%d, %.1f MB read, %.1f MB written (%.0f%% kept), "
            "%d of %d records kept, dirty ratio %.2f, %.3f s (%.1f MB/s)%s",
            name,
            stats.first_dirty_offset,
            stats.end_offset,
            stats.bytes_read / 1e6,
            stats.bytes_written / 1e6,
            100 * stats.bytes_written / max(stats.bytes_read, 1),
            stats.records_kept,
            stats.records_read,
            stats.dirty_ratio,
            stats.seconds,
            stats.bytes_read / 1e6 / seconds,
            "; the offset map filled up, the rest next time" if stats.partial else "",
        )
