"""The storage entry point: a data directory of partition logs, topic metadata and state."""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import re
import shutil
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path

from kafkacompat.errors import ErrorCode, KafkaError
from kafkacompat.storage.file_cache import (
    DEFAULT_MAX_OPEN_FILES,
    FileCache,
    effective_max_open_files,
)
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
    """Opens ``data_dir`` (recovering logs after an unclean shutdown) and owns every log.

    Segment descriptors of all logs share one `FileCache` of at most ``max_open_files``
    (``log.open.files.max``; never more than a quarter of the soft ``RLIMIT_NOFILE``).
    """

    def __init__(
        self,
        data_dir: Path,
        defaults: LogConfig = DEFAULT_LOG_CONFIG,
        *,
        fsync_on_append: bool = False,
        fsync_state: bool = True,
        now_ms: int | None = None,
        max_open_files: int = DEFAULT_MAX_OPEN_FILES,
    ) -> None:
        self.data_dir = data_dir
        self.defaults = defaults
        self.fsync_on_append = fsync_on_append
        self.files = FileCache(effective_max_open_files(max_open_files))
        data_dir.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(data_dir / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self._lock_fd)
            raise KafkaError(ErrorCode.KAFKA_STORAGE_ERROR, f"{data_dir} is in use") from None
        marker = data_dir / CLEAN_SHUTDOWN_FILE
        clean = marker.exists()
        self._logs: dict[tuple[str, int], PartitionLog] = {}
        try:
            self.metadata = MetadataStore(data_dir)
            self.state = StateStore(data_dir / STATE_DIR, fsync=fsync_state)
            for topic in self.metadata.topics():
                config = topic.log_config(defaults)
                for partition in topic.hosted_indexes():
                    self._open_log(topic.name, partition, config, clean, now_ms)
        except BaseException:
            self._release_all()
            raise
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
            files=self.files,
        )
        self._logs[(topic, partition)] = log
        return log

    def _release_all(self) -> None:
        """Give back every descriptor (a failed start): segment files and the lock."""
        for log in self._logs.values():
            log.close_files()
        self._logs.clear()
        self.files.close_all()
        os.close(self._lock_fd)
        self._lock_fd = -1

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
        hosted: Iterable[int] | None = None,
    ) -> TopicMetadata:
        """Create a topic and its empty partition logs (TOPIC_ALREADY_EXISTS, INVALID_PARTITIONS,
        INVALID_TOPIC_EXCEPTION, INVALID_CONFIG). ``hosted``: the partitions kept here (a
        cluster member's replicas); None: all."""
        validate_topic_name(name)
        if self.metadata.get(name) is not None:
            raise KafkaError(ErrorCode.TOPIC_ALREADY_EXISTS, f"topic {name!r} already exists")
        if partitions < 1:
            raise KafkaError(ErrorCode.INVALID_PARTITIONS, "partition count must be positive")
        overrides = validate_topic_configs(configs or {})
        meta = TopicMetadata(
            name,
            topic_id or uuid.uuid4(),
            partitions,
            overrides,
            None if hosted is None else frozenset(hosted),
        )
        if validate_only:
            return meta
        self._create_partitions(meta, meta.hosted_indexes(), None)
        return meta

    def _create_partitions(
        self, meta: TopicMetadata, indexes: list[int], previous: TopicMetadata | None
    ) -> None:
        """Create partitions ``indexes`` of ``meta`` and record ``meta``, all or nothing: on a
        failure every directory and descriptor made is removed, the metadata is left as
        ``previous`` (None: no topic) and KAFKA_STORAGE_ERROR is raised."""
        name, config = meta.name, meta.log_config(self.defaults)
        made: list[int] = []
        what = f"topic {name!r}"
        try:
            for partition in indexes:
                what = f"partition {name}-{partition}"
                made.append(partition)
                self._open_log(name, partition, config, False, None)
            what = f"the metadata of topic {name!r}"
            fsync_dir(self.data_dir)
            self.metadata.put(meta)
        except BaseException as exc:
            self._discard_partitions(name, made)
            if self.metadata.get(name) is meta:
                with contextlib.suppress(OSError):
                    if previous is None:
                        self.metadata.remove(name)
                    else:
                        self.metadata.put(previous)
            if not isinstance(exc, OSError):
                raise
            if previous is None:
                kept = "no topic was created"
            else:
                kept = f"the topic keeps its {previous.partitions} partitions"
            raise KafkaError(
                ErrorCode.KAFKA_STORAGE_ERROR,
                f"creating {what} failed ({exc.strerror or exc}); {kept}",
            ) from exc

    def _discard_partitions(self, name: str, indexes: list[int]) -> None:
        """Close and remove these partitions of ``name`` (best effort)."""
        for partition in indexes:
            log = self._logs.pop((name, partition), None)
            if log is not None:
                log.close_files()
        for partition in indexes:
            shutil.rmtree(self._partition_dir(name, partition), ignore_errors=True)
        with contextlib.suppress(OSError):
            fsync_dir(self.data_dir)

    def delete_topic(self, name: str) -> None:
        """Forget the topic, then remove its data from disk."""
        remove_trees(self.detach_topic(name))

    def detach_topic(self, name: str) -> list[Path]:
        """Forget the topic and set its partition directories aside; returns them for
        `remove_trees` (the slow part, which a caller may run elsewhere).

        Every descriptor of the topic is given back whatever fails; a directory that cannot
        be renamed is removed in place (or, failing that, at the next start).
        """
        self.require_topic(name)
        logs = [self._logs.pop(key) for key in self._keys_of(name)]
        try:
            self.metadata.remove(name)
        except OSError as exc:
            raise KafkaError(
                ErrorCode.KAFKA_STORAGE_ERROR,
                f"deleting topic {name!r} failed ({exc.strerror or exc})",
            ) from exc
        finally:
            detached = self._detach_logs(logs)
        return detached

    def _keys_of(self, name: str) -> list[tuple[str, int]]:
        return [key for key in self._logs if key[0] == name]

    def _detach_logs(self, logs: list[PartitionLog]) -> list[Path]:
        """Set the logs' directories aside (removing in place what cannot be renamed)."""
        detached: list[Path] = []
        for log in logs:
            try:
                detached.append(log.detach())
            except OSError:
                log.close_files()
                shutil.rmtree(log.directory, ignore_errors=True)
        with contextlib.suppress(OSError):
            fsync_dir(self.data_dir)
        return detached

    def set_hosted(self, name: str, hosted: Iterable[int]) -> list[Path]:
        """Keep exactly the partitions ``hosted`` of the topic here: logs of newly hosted ones
        are created, those no longer hosted are set aside and returned for `remove_trees`
        (a replica moved away, as Kafka's StopReplica with deletion)."""
        meta = self.require_topic(name)
        meta = dataclasses.replace(meta, hosted=frozenset(hosted))
        new = [i for i in meta.hosted_indexes() if (name, i) not in self._logs]
        self._create_partitions(meta, new, self.metadata.get(name))
        dropped = [key for key in self._keys_of(name) if key[1] not in (meta.hosted or ())]
        return self._detach_logs([self._logs.pop(key) for key in dropped])

    def add_partitions(
        self,
        name: str,
        new_total: int,
        *,
        validate_only: bool = False,
        hosted: Iterable[int] | None = None,
    ) -> None:
        """Grow the topic to ``new_total`` partitions (INVALID_PARTITIONS if not larger);
        ``hosted`` (a cluster member's replicas) replaces the set of partitions kept here."""
        meta = self.require_topic(name)
        if new_total <= meta.partitions:
            raise KafkaError(
                ErrorCode.INVALID_PARTITIONS,
                f"topic {name!r} has {meta.partitions} partitions, cannot go to {new_total}",
            )
        if validate_only:
            return
        keep = meta.hosted if hosted is None else frozenset(hosted)
        grown = dataclasses.replace(meta, partitions=new_total, hosted=keep)
        new = [i for i in grown.hosted_indexes() if i >= meta.partitions]
        self._create_partitions(grown, new, meta)

    def set_topic_configs(self, name: str, configs: Mapping[str, str | None]) -> TopicMetadata:
        """Replace the topic's config overrides (AlterConfigs semantics) and apply them."""
        meta = self.require_topic(name)
        meta = dataclasses.replace(meta, configs=validate_topic_configs(configs))
        config = meta.log_config(self.defaults)
        self.metadata.put(meta)
        for key in self._keys_of(name):
            self._logs[key].update_config(config)
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
        # list() copies in one step, so a catalogue change on a worker thread cannot interleave.
        return [(topic, partition, log) for (topic, partition), log in list(self._logs.items())]

    def close(self) -> None:
        """Flush and close everything, then mark the shutdown clean for a fast restart."""
        if self._lock_fd < 0:
            return
        try:
            for log in self._logs.values():
                log.close()
            self.state.close()
            atomic_write(self.data_dir / CLEAN_SHUTDOWN_FILE, b"")
        finally:
            for log in self._logs.values():
                log.close_files()
            self.files.close_all()
            os.close(self._lock_fd)
            self._lock_fd = -1


def remove_trees(paths: list[Path]) -> None:
    """Remove detached partition directories."""
    for path in paths:
        shutil.rmtree(path, ignore_errors=True)
