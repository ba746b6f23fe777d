"""Storage engine throughput next to plain Python file I/O on the same bytes, in one run.

    python benchmarks/storage_bench.py [--total-mib 64] [--dir /tmp]

For 1 KiB and 64 KiB record batches: PartitionLog.append (validation, offset patching, one
write, indexing) against ``f.write`` of the same batches, and PartitionLog.read + FileSlice.read
(1 MiB fetches) against sequential ``f.read`` of 1 MiB. Nothing is fsynced on either side.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from kafkacompat.protocol.record_codec import Record, encode_batch
from kafkacompat.protocol.records import read_header
from kafkacompat.storage.partition_log import PartitionLog

FETCH_BYTES = 1 << 20


def make_batch(batch_bytes: int) -> bytes:
    """A v2 batch of about ``batch_bytes`` as a client would send it (base offset 0)."""
    value_size = 1024 if batch_bytes >= 8192 else 100
    count = max(1, batch_bytes // (value_size + 20))
    records = [Record(i, 1_700_000_000_000 + i, b"key", b"v" * value_size) for i in range(count)]
    return encode_batch(records)


def best_of(runs: int, fn: Callable[[], float]) -> float:
    """Fastest of ``runs`` timings, each started with no dirty pages left to write back."""
    timings = []
    for _ in range(runs):
        os.sync()
        timings.append(fn())
    return min(timings)


def bench_append(directory: Path, data: bytes, n: int) -> float:
    log = PartitionLog(directory, now_ms=0)
    start = time.perf_counter()
    for _ in range(n):
        log.append(data, now_ms=1)
    elapsed = time.perf_counter() - start
    log.close()
    return elapsed


def bench_plain_write(path: Path, data: bytes, n: int) -> float:
    start = time.perf_counter()
    with path.open("wb") as f:
        for _ in range(n):
            f.write(data)
    return time.perf_counter() - start


def bench_read(directory: Path, batch_size: int, batch_records: int) -> tuple[float, int]:
    """Consume the whole log with 1 MiB fetches (batches are uniform, so the next offset
    follows from the byte count, as a consumer would get it from the last batch header)."""
    log = PartitionLog(directory, clean_shutdown=True)
    total, offset = 0, 0
    start = time.perf_counter()
    while offset < log.high_watermark:
        result = log.read(offset, FETCH_BYTES)
        for part in result.slices:
            got = len(part.read())
            total += got
            offset += got // batch_size * batch_records
    elapsed = time.perf_counter() - start
    log.close()
    return elapsed, total


def bench_plain_read(path: Path) -> tuple[float, int]:
    total = 0
    start = time.perf_counter()
    with path.open("rb") as f:
        while chunk := f.read(FETCH_BYTES):
            total += len(chunk)
    return time.perf_counter() - start, total


def run(batch_bytes: int, total_mib: int, root: Path, runs: int) -> dict[str, float]:
    data = make_batch(batch_bytes)
    records = read_header(data).records_count
    n = max(1, (total_mib << 20) // len(data))
    mib = n * len(data) / (1 << 20)
    results: dict[str, float] = {"batch": len(data), "mib": mib}
    log_dir = root / f"log-{batch_bytes}"

    def fresh_append() -> float:
        shutil.rmtree(log_dir, ignore_errors=True)
        return bench_append(log_dir, data, n)

    append_s = best_of(runs, fresh_append)
    write_s = best_of(runs, lambda: bench_plain_write(root / f"plain-{batch_bytes}", data, n))
    read_s, read_total = bench_read(log_dir, len(data), records)
    for _ in range(runs - 1):
        read_s = min(read_s, bench_read(log_dir, len(data), records)[0])
    plain_path = root / f"plain-{batch_bytes}"
    plain_read_s, plain_total = bench_plain_read(plain_path)
    for _ in range(runs - 1):
        plain_read_s = min(plain_read_s, bench_plain_read(plain_path)[0])
    assert read_total == plain_total == n * len(data), (read_total, plain_total)
    results |= {
        "append": mib / append_s,
        "write": mib / write_s,
        "read": mib / read_s,
        "plain_read": mib / plain_read_s,
        "appends_per_s": n / append_s,
    }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--total-mib", type=int, default=64)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        print(f"{'batch':>8} {'MiB':>6} | {'append':>9} {'f.write':>9} {'ratio':>6} | "
              f"{'read':>9} {'f.read':>9} {'ratio':>6} | {'appends/s':>10}")  # fmt: skip
        for batch_bytes in (1024, 64 * 1024):
            r = run(batch_bytes, args.total_mib, Path(tmp), args.runs)
            print(
                f"{int(r['batch']):>8} {r['mib']:>6.0f} | {r['append']:>7.0f}MB/s "
                f"{r['write']:>7.0f}MB/s {r['append'] / r['write']:>6.2f} | "
                f"{r['read']:>7.0f}MB/s {r['plain_read']:>7.0f}MB/s "
                f"{r['read'] / r['plain_read']:>6.2f} | {r['appends_per_s']:>10.0f}"
            )
    print("ratio = kafkacompat / plain Python file I/O on the same bytes (1.0 = as fast)")


if __name__ == "__main__":
    main()
