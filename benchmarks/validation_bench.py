"""What record validation costs per produced batch: µs per batch, validation on against off.

    python benchmarks/validation_bench.py [--appends 2000] [--repeat 5] [--dir /tmp]

For each batch shape (1 record of 100 B; 100 records in about 1 KiB; 100 records of 100 B),
uncompressed and lz4/zstd compressed, it times `validate_batch` alone and
`PartitionLog.append` (CRC, header checks, offset patching, one write, indexing) with the
record-level validation on and off (off: `assign_offsets` gets no validator, as before
validation existed). Best of ``--repeat`` runs; nothing is fsynced.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path
from unittest import mock

from kafkacompat.protocol.compression import Codec
from kafkacompat.protocol.record_codec import Record, encode_batch
from kafkacompat.protocol.record_validation import RecordRules, validate_batch
from kafkacompat.protocol.records import BatchValidator, read_header
from kafkacompat.storage import partition_log
from kafkacompat.storage.append_input import batch_validator
from kafkacompat.storage.log_config import LogConfig
from kafkacompat.storage.partition_log import PartitionLog

NOW = 1_700_000_000_000
#: The broker's defaults: message.timestamp.after.max.ms is one hour, so timestamps are checked.
CONFIG = LogConfig.from_overrides({"message.timestamp.after.max.ms": "3600000"})
SHAPES = {
    "1 x 100 B": (1, 100),
    "100 x ~10 B (1 KiB)": (100, 2),
    "100 x 100 B (10 KiB)": (100, 100),
}
CODECS = {"none": Codec.NONE, "lz4": Codec.LZ4, "zstd": Codec.ZSTD}


def make_batch(count: int, value_size: int, codec: int) -> bytes:
    """A client-like v2 batch: keys ``k<i>``, timestamps 1 ms apart, base offset 0."""
    records = [Record(i, NOW + i, f"k{i}".encode(), b"v" * value_size) for i in range(count)]
    return encode_batch(records, codec=codec)


def time_validate(data: bytes, n: int) -> float:
    """µs per `validate_batch` call."""
    header = read_header(data)
    rules = RecordRules(now_ms=NOW, topic_partition="t-0", timestamp_after_max_ms=3600000)
    start = time.perf_counter()
    for _ in range(n):
        validate_batch(data, header, rules)
    return (time.perf_counter() - start) / n * 1e6


def time_append(directory: Path, data: bytes, n: int, validation: bool) -> float:
    """µs per `PartitionLog.append` of ``data`` (a fresh log each run)."""
    shutil.rmtree(directory, ignore_errors=True)

    def no_validator(rules: RecordRules) -> BatchValidator | None:
        return None

    replacement = batch_validator if validation else no_validator
    with mock.patch.object(partition_log, "batch_validator", replacement):
        log = PartitionLog(directory, CONFIG, now_ms=NOW)
        start = time.perf_counter()
        for _ in range(n):
            log.append(data, now_ms=NOW)
        elapsed = time.perf_counter() - start
        log.close()
    return elapsed / n * 1e6


def measure(data: bytes, n: int, repeat: int, directory: Path) -> tuple[float, float, float]:
    """Best µs per batch: `validate_batch` alone, append without and with validation."""
    alone = min(time_validate(data, n) for _ in range(repeat))
    off = min(time_append(directory, data, n, False) for _ in range(repeat))
    on = min(time_append(directory, data, n, True) for _ in range(repeat))
    return alone, off, on


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--appends", type=int, default=2000, help="appends per timed run")
    parser.add_argument("--repeat", type=int, default=5, help="runs; the best one counts")
    parser.add_argument("--dir", type=Path, default=None, help="where the scratch log goes")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="validation-bench-", dir=args.dir))
    columns = ("batch", "codec", "bytes", "validate", "append off", "append on", "extra")
    print("{:<22}{:<6}{:>7}{:>10}{:>12}{:>11}{:>9}".format(*columns))
    try:
        for shape, (count, value_size) in SHAPES.items():
            for name, codec in CODECS.items():
                data = make_batch(count, value_size, codec)
                alone, off, on = measure(data, args.appends, args.repeat, scratch / "t-0")
                cells = (shape, name, len(data), alone, off, on, on - off)
                print("{:<22}{:<6}{:>7}{:>8.1f}µs{:>10.1f}µs{:>9.1f}µs{:>7.1f}µs".format(*cells))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
