"""Child process for the crash test: appends batches with fsync-on-append and prints each
acknowledged ``base_offset last_offset sequence`` line until killed."""

from __future__ import annotations

import sys
from pathlib import Path

from kafkacompat.protocol.record_codec import Record, encode_batch
from kafkacompat.storage.log_config import LogConfig
from kafkacompat.storage.partition_log import PartitionLog


def main() -> None:
    directory, appends = Path(sys.argv[1]), int(sys.argv[2])
    config = LogConfig.from_overrides({"segment.bytes": "8000", "index.interval.bytes": "500"})
    log = PartitionLog(directory, config, fsync_on_append=True)
    start = log.log_end_offset
    for seq in range(start, start + appends):
        records = [Record(i, 1000 + seq, b"k", f"{seq}:{i}".encode() * 20) for i in range(3)]
        result = log.append(encode_batch(records), now_ms=1000 + seq)
        sys.stdout.write(f"{result.base_offset} {result.last_offset} {seq}\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
