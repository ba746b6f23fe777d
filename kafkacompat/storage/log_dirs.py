"""The log directories (``log.dirs``): parsing, locking, finding partitions in them at start
(finishing or dropping an interrupted move), placing new partitions, and describing them."""

from __future__ import annotations

import fcntl
import os
import re
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from kafkacompat.errors import ErrorCode, KafkaError
from kafkacompat.storage.fsutil import fsync_dir
from kafkacompat.storage.log_copy import FUTURE_DIR

__all__ = [
    "PARTITION_DIR",
    "FoundPartitions",
    "LogDirReport",
    "ReplicaReport",
    "dir_usage",
    "lock_dir",
    "parse_log_dirs",
    "place",
]

PARTITION_DIR = re.compile(r"^(.+)-(\d+)$")

Key = tuple[str, int]


def parse_log_dirs(text: str) -> list[Path]:
    """``log.dirs``: comma-separated paths, blanks and repeats (same absolute path) dropped."""
    dirs: list[Path] = []
    seen: set[Path] = set()
    for item in text.split(","):
        if item.strip():
            path = Path(item.strip())
            if path.absolute() not in seen:
                seen.add(path.absolute())
                dirs.append(path)
    return dirs


def lock_dir(directory: Path) -> int:
    """Create ``directory`` and hold its ``.lock`` (KAFKA_STORAGE_ERROR when another process
    does); returns the descriptor that holds it."""
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise KafkaError(ErrorCode.KAFKA_STORAGE_ERROR, f"{directory} is in use") from None
    return fd


@dataclass(slots=True)
class FoundPartitions:
    """Partition directories found in the log directories at start."""

    current: dict[Key, list[Path]] = field(default_factory=dict)
    future: dict[Key, list[Path]] = field(default_factory=dict)

    @classmethod
    def scan(cls, dirs: Iterable[Path]) -> FoundPartitions:
        found = cls()
        for directory in dirs:
            for path in sorted(directory.iterdir()):
                if not path.is_dir():
                    continue
                if match := FUTURE_DIR.match(path.name):
                    found.future.setdefault((match[1], int(match[2])), []).append(path)
                elif match := PARTITION_DIR.match(path.name):
                    found.current.setdefault((match[1], int(match[2])), []).append(path)
        return found

    def resolve(self, key: Key) -> tuple[Path | None, bool]:
        """Where the partition's log is, and whether a future copy was promoted to it: its
        one directory; without one, a future copy is promoted (a move whose old log was
        already set aside); None: nowhere yet. A future
        copy next to the current log is an unfinished move and is removed. A log found in two
        directories is KAFKA_STORAGE_ERROR, as in Kafka: one of them must be removed by hand."""
        current = self.current.get(key, [])
        futures = self.future.pop(key, [])
        if len(current) > 1:
            raise KafkaError(
                ErrorCode.KAFKA_STORAGE_ERROR,
                f"partition {key[0]}-{key[1]} found in {', '.join(map(str, current))}",
            )
        if current:
            for future in futures:
                shutil.rmtree(future)
            return current[0], False
        if not futures:
            return None, False
        promoted = futures[0].with_name(f"{key[0]}-{key[1]}")
        os.rename(futures[0], promoted)
        fsync_dir(promoted.parent)
        for future in futures[1:]:
            shutil.rmtree(future)
        return promoted, True

    def leftover_futures(self) -> list[Path]:
        """Future copies of partitions not hosted (after every `resolve`)."""
        return [path for paths in self.future.values() for path in paths]


def place(dirs: Sequence[Path], counts: dict[Path, int]) -> Path:
    """Kafka's placement of a new log: the directory with the fewest partitions, the first
    of them in ``log.dirs`` order on a tie."""
    return min(dirs, key=lambda d: counts.get(d, 0))


def dir_usage(directory: Path) -> tuple[int, int] | None:
    """``(total, usable)`` bytes of the directory's file system; None when the directory is
    missing or unreadable (KAFKA_STORAGE_ERROR)."""
    try:
        if not directory.is_dir() or not os.access(directory, os.R_OK | os.W_OK | os.X_OK):
            return None
        usage = shutil.disk_usage(directory)
    except OSError:
        return None
    return usage.total, usage.free


@dataclass(frozen=True, slots=True)
class ReplicaReport:
    topic: str
    partition: int
    size: int
    is_future: bool


@dataclass(frozen=True, slots=True)
class LogDirReport:
    """One log directory as DescribeLogDirs shows it; ``usage`` None: unusable."""

    path: Path
    usage: tuple[int, int] | None
    replicas: list[ReplicaReport]
