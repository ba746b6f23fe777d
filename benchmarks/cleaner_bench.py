"""Log cleaner benchmark: cleaning throughput and memory on one partition.

Builds a compacted log of ``--records`` records over ``--keys`` keys (``--value-bytes`` values,
``--batch-records`` per batch, ``--codec``), closes every segment, then times one cleaning
(`cleaner.clean_log`): MB/s of log read (both passes), records/s, and the size before and
after. A second cleaning of a fresh copy runs under tracemalloc for the peak of Python memory
the cleaning allocates (the offset map and buffers); the peak resident set growth (VmHWM) of the
untraced run is shown too.

    python benchmarks/cleaner_bench.py [--records 100000 --keys 1000 --value-bytes 1024]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
import tracemalloc
from pathlib import Path

from kafkacompat.protocol.compression import codec_from_name
from kafkacompat.protocol.record_codec import Record, encode_batch
from kafkacompat.storage.cleaner import CleanerStats, clean_log
from kafkacompat.storage.log_config import LogConfig
from kafkacompat.storage.partition_log import PartitionLog

NOW = 10**13
MB = 1024 * 1024


def vm_hwm_kib() -> int:
    """Peak resident set size of this process so far (KiB)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def build(directory: Path, args: argparse.Namespace, config: LogConfig) -> int:
    log = PartitionLog(directory, config, now_ms=0)
    codec = codec_from_name(args.codec)
    pad = b"v" * args.value_bytes
    offset = 0
    while offset < args.records:
        count = min(args.batch_records, args.records - offset)
        records = [
            Record(i, 1000 + offset + i, b"key-%06d" % ((offset + i) % args.keys), pad)
            for i in range(count)
        ]
        log.append(encode_batch(records, codec=codec), now_ms=0)
        offset += count
    log.roll()
    size = log.size_in_bytes
    log.close()
    return size


def run(directory: Path, config: LogConfig, buffer: int) -> tuple[CleanerStats, float, int]:
    log = PartitionLog(directory, config, clean_shutdown=True)
    try:
        started = time.perf_counter()
        stats = clean_log(log, now_ms=NOW, dedupe_buffer_bytes=buffer)
        seconds = time.perf_counter() - started
        assert stats is not None
        return stats, seconds, log.size_in_bytes
    finally:
        log.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--keys", type=int, default=1000)
    parser.add_argument("--value-bytes", type=int, default=1024)
    parser.add_argument("--batch-records", type=int, default=10)
    parser.add_argument("--codec", default="uncompressed")
    parser.add_argument("--segment-bytes", type=int, default=16 * MB)
    parser.add_argument("--dedupe-buffer-bytes", type=int, default=128 * MB)
    args = parser.parse_args()
    config = LogConfig.from_overrides(
        {"cleanup.policy": "compact", "segment.bytes": str(args.segment_bytes)}
    )
    with tempfile.TemporaryDirectory() as tmp:
        template = Path(tmp) / "template"
        started = time.perf_counter()
        size = build(template, args, config)
        print(
            f"log: {args.records} records over {args.keys} keys, {args.value_bytes} B values, "
            f"{args.batch_records}/batch, {args.codec}: {size / MB:.1f} MiB "
            f"(built in {time.perf_counter() - started:.1f} s)"
        )
        timed, traced = Path(tmp) / "timed", Path(tmp) / "traced"
        shutil.copytree(template, timed)
        shutil.copytree(template, traced)
        shutil.rmtree(template)
        hwm = vm_hwm_kib()
        stats, seconds, after = run(timed, config, args.dedupe_buffer_bytes)
        rss_growth = vm_hwm_kib() - hwm
        read = stats.map_bytes_read + stats.bytes_read
        print(
            f"clean: {seconds:.2f} s ({stats.map_seconds:.2f} s mapping), "
            f"{size / MB / seconds:.1f} MB/s of log, {stats.records_read / seconds:,.0f} "
            f"records/s; read {read / MB:.1f} MiB in both passes, wrote "
            f"{stats.bytes_written / MB:.2f} MiB; {size / MB:.1f} -> {after / MB:.2f} MiB, "
            f"{stats.records_kept} of {stats.records_read} records kept, "
            f"{stats.segments_read} segments -> {stats.segments_written}"
        )
        tracemalloc.start()
        run(traced, config, args.dedupe_buffer_bytes)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        print(
            f"memory: peak Python allocations {peak / MB:.1f} MiB (tracemalloc), "
            f"peak RSS growth {rss_growth / 1024:.1f} MiB; map {stats.map_entries} entries"
        )


if __name__ == "__main__":
    main()
