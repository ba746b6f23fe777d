"""The storage entry point: a data directory of partition logs, topic metadata and state."""

from __future__ import annotations

import dataclasses
import fcntl
import os
import re
import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path

from kafkacompat.errors import ErrorCode, KafkaError
from kafkacompat.storage.fsutil import atomic_write, fsync_dir
from kafkacompat.storage.log_config import DEFAULT_LOG_CONFIG, LogConfig, validate_topic_configs
from kafkacompat.storage.metadata_store import MetadataStore, TopicMetadata
from kafkacompat.storage.partition_log import DELETED_SUFFIX, PartitionLog
from kafkacompat.storage.recovery import CLEAN_SHUTDOWN_FILE
from kafkacompat.storage.state_store import StateStore
from kafkacompat.storage.topic_names import validate_topic_name

__all__ = ["LogManager"]

_PARTITION_DIR = re.compile(r"^(.+)-(\d+)$")
STATE_DIR = "__state"


class LogManager:
    """Opens ``data_dir`` (recovering logs after an unclean shutdown) and owns every log."""

    def __init__(
        self,
        data_dir: Path,
        defaults: LogConfig = DEFAULT_LOG_CONFIG,
        *,
        fsync_on_append: bool = False,
        fsync_state: bool = True,
        now_ms: int | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.defaults = defaults
        self.fsync_on_append = fsync_on_append
        data_dir.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(data_dir / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self._lock_fd)
            raise KafkaError(ErrorCode.KAFKA_STORAGE_ERROR, f"{data_dir} is in use") from None
        marker = data_dir / CLEAN_SHUTDOWN_FILE
        clean = marker.exists()
        self.metadata = MetadataStore(data_dir)
        self.state = StateStore(data_dir / STATE_DIR, fsync=fsync_state)
        self._logs: dict[tuple[str, int], PartitionLog] = {}
        for topic in self.metadata.topics():
            config = topic.log_config(defaults)
            for partition in range(topic.partitions):
                self._open_log(topic.name, partition, config, clean, now_ms)
        self._remove_stray_partition_dirs()
        if clean:
            marker.unlink()
            fsync_dir(data_dir)

    def _partition_dir(self, topic: str, partition: int) -> Path:
        return self.data_dir / f"{topic}-{partition}"

    def _open_log(
        self, topic: str, partition: int, config: LogConfig, clean: bool, now_ms: int | None
    ) -> PartitionLog:
        log = PartitionLog(
            self._partition_dir(topic, partition),
            config,
            clean_shutdown=clean,
            fsync_on_append=self.fsync_on_append,
            now_ms=now_ms,
        )
        self._logs[(topic, partition)] = log
        return log

    def _remove_stray_partition_dirs(self) -> None:
        """Drop directories of topics whose creation or deletion a crash interrupted."""
        for path in self.data_dir.iterdir():
            match = _PARTITION_DIR.match(path.name)
            deleted = path.name.endswith(DELETED_SUFFIX)
            if path.is_dir() and (
                deleted or (match and (match[1], int(match[2])) not in self._logs)
            ):
                shutil.rmtree(path)

    # --- topics ------------------------------------------------------------------------------

    def create_topic(
        self,
        name: str,
        partitions: int,
        configs: Mapping[str, str | None] | None = None,
        *,
        topic_id: uuid.UUID | None = None,
        validate_only: bool = False,
    ) -> TopicMetadata:
        """Create a topic and its empty partition logs (TOPIC_ALREADY_EXISTS, INVALID_PARTITIONS,
        INVALID_TOPIC_EXCEPTION, INVALID_CONFIG)."""
        validate_topic_name(name)
        if self.metadata.get(name) is not None:
            raise KafkaError(ErrorCode.TOPIC_ALREADY_EXISTS, f"topic {name!r} already exists")
        if partitions < 1:
            raise KafkaError(ErrorCode.INVALID_PARTITIONS, "partition count must be positive")
        overrides = validate_topic_configs(configs or {})
        meta = TopicMetadata(name, topic_id or uuid.uuid4(), partitions, overrides)
        if validate_only:
            return meta
        config = meta.log_config(self.defaults)
        for partition in range(partitions):
            self._open_log(name, partition, config, False, None)
        fsync_dir(self.data_dir)
        self.metadata.put(meta)
        return meta

    def delete_topic(self, name: str) -> None:
        """Forget the topic, then remove its data from disk."""
        remove_trees(self.detach_topic(name))

    def detach_topic(self, name: str) -> list[Path]:
        """Forget the topic and set its partition directories aside; returns them for
        `remove_trees` (the slow part, which a caller may run elsewhere)."""
        meta = self.require_topic(name)
        self.metadata.remove(name)
        detached = [self._logs.pop((name, p)).detach() for p in range(meta.partitions)]
        fsync_dir(self.data_dir)
        return detached

    def add_partitions(self, name: str, new_total: int, *, validate_only: bool = False) -> None:
        """Grow the topic to ``new_total`` partitions (INVALID_PARTITIONS if not larger)."""
        meta = self.require_topic(name)
        if new_total <= meta.partitions:
            raise KafkaError(
                ErrorCode.INVALID_PARTITIONS,
                f"topic {name!r} has {meta.partitions} partitions, cannot go to {new_total}",
            )
        if validate_only:
            return
        config = meta.log_config(self.defaults)
        for partition in range(meta.partitions, new_total):
            self._open_log(name, partition, config, False, None)
        fsync_dir(self.data_dir)
        self.metadata.put(dataclasses.replace(meta, partitions=new_total))

    def set_topic_configs(self, name: str, configs: Mapping[str, str | None]) -> TopicMetadata:
        """Replace the topic's config overrides (AlterConfigs semantics) and apply them."""
        meta = self.require_topic(name)
        meta = dataclasses.replace(meta, configs=validate_topic_configs(configs))
        config = meta.log_config(self.defaults)
        self.metadata.put(meta)
        for partition in range(meta.partitions):
            self._logs[(name, partition)].update_config(config)
        return meta

    def topic(self, name: str) -> TopicMetadata | None:
        return self.metadata.get(name)

    def topic_by_id(self, topic_id: uuid.UUID) -> TopicMetadata | None:
        return self.metadata.get_by_id(topic_id)

    def require_topic(self, name: str) -> TopicMetadata:
        meta = self.metadata.get(name)
        if meta is None:
            raise KafkaError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"unknown topic {name!r}")
        return meta

    def topics(self) -> list[TopicMetadata]:
        return self.metadata.topics()

    def topic_config(self, name: str) -> LogConfig:
        return self.require_topic(name).log_config(self.defaults)

    def log_or_none(self, topic: str, partition: int) -> PartitionLog | None:
        return self._logs.get((topic, partition))

    def log(self, topic: str, partition: int) -> PartitionLog:
        """The partition's log, or UNKNOWN_TOPIC_OR_PARTITION."""
        log = self._logs.get((topic, partition))
        if log is None:
            raise KafkaError(
                ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"unknown partition {topic}-{partition}"
            )
        return log

    # --- periodic work and shutdown ----------------------------------------------------------

    def partition_logs(self) -> list[tuple[str, int, PartitionLog]]:
        """Every open partition log, as a list that later topic changes do not disturb."""
        return [(topic, partition, log) for (topic, partition), log in self._logs.items()]

    def run_retention(self, now_ms: int) -> int:
        """Apply retention to every log; return the number of segments deleted."""
        return sum(log.apply_retention(now_ms) for log in self._logs.values())

    def flush_due(self, now_ms: int) -> int:
        """Flush logs whose ``flush.ms`` elapsed; return how many were flushed."""
        return sum(log.maybe_flush(now_ms) for log in self._logs.values())

    def checkpoint(self) -> None:
        """Persist every log's recovery point and log start offset."""
        for log in self._logs.values():
            log.checkpoint()

    def close(self) -> None:
        """Flush and close everything, then mark the shutdown clean for a fast restart."""
        if self._lock_fd < 0:
            return
        for log in self._logs.values():
            log.close()
        self.state.close()
        atomic_write(self.data_dir / CLEAN_SHUTDOWN_FILE, b"")
        os.close(self._lock_fd)
        self._lock_fd = -1


def remove_trees(paths: list[Path]) -> None:
    """Remove detached partition directories."""
    for path in paths:
        shutil.rmtree(path, ignore_errors=True)
