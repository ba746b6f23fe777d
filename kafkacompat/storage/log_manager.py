"""The storage entry point: log directories of partition logs; the first also keeps topic
metadata and state."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from kafkacompat.errors import ErrorCode, KafkaError
from kafkacompat.storage.file_cache import (
    DEFAULT_MAX_OPEN_FILES,
    FileCache,
    effective_max_open_files,
)
from kafkacompat.storage.fsutil import atomic_write, fsync_dir
from kafkacompat.storage.log_config import DEFAULT_LOG_CONFIG, LogConfig, validate_topic_configs
from kafkacompat.storage.log_copy import FUTURE_SUFFIX, LogCopy
from kafkacompat.storage.log_dirs import (
    PARTITION_DIR,
    FoundPartitions,
    LogDirReport,
    ReplicaReport,
    dir_usage,
    lock_dir,
    place,
)
from kafkacompat.storage.metadata_store import MetadataStore, TopicMetadata
from kafkacompat.storage.partition_log import DELETED_SUFFIX, PartitionLog
from kafkacompat.storage.recovery import CLEAN_SHUTDOWN_FILE
from kafkacompat.storage.state_store import StateStore
from kafkacompat.storage.topic_names import validate_topic_name

__all__ = ["LogManager"]

STATE_DIR = "__state"


class LogManager:
    """Opens ``data_dir`` and the other ``log_dirs`` (recovering logs after an unclean
    shutdown) and owns every log. ``data_dir`` keeps topic metadata and state; partition logs
    may be in any log directory (a new one goes where the fewest are), each of which is locked
    and has its own clean-shutdown marker. One directory (``log_dirs`` empty) is laid out
    exactly as before log directories existed.

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
        log_dirs: Sequence[Path] = (),
    ) -> None:
        self.data_dir = data_dir
        #: Every log directory, ``data_dir`` first.
        self.log_dirs = [data_dir, *(d for d in log_dirs if d.absolute() != data_dir.absolute())]
        self.defaults = defaults
        self.fsync_on_append = fsync_on_append
        self.files = FileCache(effective_max_open_files(max_open_files))
        self._lock_fds: list[int] = []
        self._logs: dict[tuple[str, int], PartitionLog] = {}
        #: Moves in progress (AlterReplicaLogDirs), by partition.
        self._copies: dict[tuple[str, int], LogCopy] = {}
        try:
            for directory in self.log_dirs:
                self._lock_fds.append(lock_dir(directory))
            clean = {d: (d / CLEAN_SHUTDOWN_FILE).exists() for d in self.log_dirs}
            self.metadata = MetadataStore(data_dir)
            self.state = StateStore(data_dir / STATE_DIR, fsync=fsync_state)
            found = FoundPartitions.scan(self.log_dirs)
            for topic in self.metadata.topics():
                config = topic.log_config(defaults)
                for partition in topic.hosted_indexes():
                    where, promoted = found.resolve((topic.name, partition))
                    # A promoted copy is durable but was never closed as a log: recover it.
                    trusted = where is not None and clean[where.parent] and not promoted
                    self._open_log(topic.name, partition, config, trusted, now_ms, where)
        except BaseException:
            self._release_all()
            raise
        for path in found.leftover_futures():
            shutil.rmtree(path)
        for directory in self.log_dirs:
            self._remove_stray_partition_dirs(directory)
            if clean[directory]:
                (directory / CLEAN_SHUTDOWN_FILE).unlink()
                fsync_dir(directory)

    def _open_log(
        self,
        topic: str,
        partition: int,
        config: LogConfig,
        clean: bool,
        now_ms: int | None,
        directory: Path | None = None,
    ) -> PartitionLog:
        """Open the partition's log in ``directory`` (None: a new one, placed by `place`)."""
        if directory is None:
            directory = self._new_partition_dir(topic, partition)
        log = PartitionLog(
            directory,
            config,
            clean_shutdown=clean,
            fsync_on_append=self.fsync_on_append,
            now_ms=now_ms,
            files=self.files,
        )
        self._logs[(topic, partition)] = log
        return log

    def _new_partition_dir(
        self, topic: str, partition: int, counts: dict[Path, int] | None = None
    ) -> Path:
        """Where a new log goes (`place`); ``counts`` (partitions by directory, from
        `_dir_counts`) is updated for the next one."""
        if len(self.log_dirs) == 1:
            return self.data_dir / f"{topic}-{partition}"
        counts = self._dir_counts() if counts is None else counts
        directory = place(self.log_dirs, counts)
        counts[directory] = counts.get(directory, 0) + 1
        return directory / f"{topic}-{partition}"

    def _dir_counts(self) -> dict[Path, int]:
        counts: dict[Path, int] = {}
        if len(self.log_dirs) > 1:
            for log in self._logs.values():
                counts[log.directory.parent] = counts.get(log.directory.parent, 0) + 1
        return counts

    def _release_all(self) -> None:
        """Give back every descriptor (a failed start): segment files and the locks."""
        for log in self._logs.values():
            log.close_files()
        self._logs.clear()
        self.files.close_all()
        for fd in self._lock_fds:
            os.close(fd)
        self._lock_fds = []

    def _remove_stray_partition_dirs(self, directory: Path) -> None:
        """Drop directories of topics whose creation or deletion a crash interrupted."""
        for path in directory.iterdir():
            match = PARTITION_DIR.match(path.name)
            deleted = path.name.endswith(DELETED_SUFFIX)
            if path.is_dir() and (
                deleted
                or (match and self._log_path((match[1], int(match[2]))) != path)
                or path.name.endswith(FUTURE_SUFFIX)
            ):
                shutil.rmtree(path)

    def _log_path(self, key: tuple[str, int]) -> Path | None:
        log = self._logs.get(key)
        return None if log is None else log.directory

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
        made: list[Path] = []
        what = f"topic {name!r}"
        counts = self._dir_counts()
        try:
            for partition in indexes:
                what = f"partition {name}-{partition}"
                directory = self._new_partition_dir(name, partition, counts)
                made.append(directory)
                self._open_log(name, partition, config, False, None, directory)
            what = f"the metadata of topic {name!r}"
            for parent in {d.parent for d in made}:
                fsync_dir(parent)
            self.metadata.put(meta)
        except BaseException as exc:
            self._discard_partitions(name, indexes[: len(made)], made)
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

    def _discard_partitions(self, name: str, indexes: list[int], dirs: list[Path]) -> None:
        """Close and remove these partitions of ``name`` and their directories (best effort)."""
        for partition in indexes:
            log = self._logs.pop((name, partition), None)
            if log is not None:
                log.close_files()
        for directory in dirs:
            shutil.rmtree(directory, ignore_errors=True)
        for parent in {d.parent for d in dirs}:
            with contextlib.suppress(OSError):
                fsync_dir(parent)

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
        for parent in {log.directory.parent for log in logs}:
            with contextlib.suppress(OSError):
                fsync_dir(parent)
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

    # --- log directories (DescribeLogDirs, AlterReplicaLogDirs) ------------------------------

    def log_dir(self, path: str | Path) -> Path:
        """The log directory named by ``path`` (compared with links resolved), or
        LOG_DIR_NOT_FOUND; KAFKA_STORAGE_ERROR when it cannot be used now."""
        wanted = os.path.realpath(path)
        for directory in self.log_dirs:
            if os.path.realpath(directory) == wanted:
                if dir_usage(directory) is None:
                    raise KafkaError(ErrorCode.KAFKA_STORAGE_ERROR, f"{directory} is unusable")
                return directory
        raise KafkaError(ErrorCode.LOG_DIR_NOT_FOUND, f"{path} is not a log directory")

    def log_dir_of(self, topic: str, partition: int) -> Path:
        """The log directory holding the partition (UNKNOWN_TOPIC_OR_PARTITION)."""
        return self.log(topic, partition).directory.parent

    def start_move(self, topic: str, partition: int, target: Path) -> LogCopy:
        """Begin copying the partition's log into the log directory ``target`` (see
        `LogCopy`); `commit_move` or `abort_move` ends it."""
        key = (topic, partition)
        if key in self._copies:
            raise KafkaError(ErrorCode.KAFKA_STORAGE_ERROR, f"{topic}-{partition} is moving")
        try:
            copy = LogCopy(self.log(topic, partition), target)
        except OSError as exc:
            raise KafkaError(ErrorCode.KAFKA_STORAGE_ERROR, str(exc)) from exc
        self._copies[key] = copy
        return copy

    def commit_move(self, topic: str, partition: int, copy: LogCopy) -> tuple[PartitionLog, Path]:
        """Swap a finished copy in (`LogCopy.finish` done, appends still held off): the old
        directory is set aside first (the commit: a copy without a current log is promoted at
        start), then the copy renamed into place and opened. Returns the new log and the old
        directory for `remove_trees`; on failure the old log stays in use."""
        key = (topic, partition)
        old = self.log(topic, partition)
        log, aside = copy.swap_in(
            lambda final: PartitionLog(
                final,
                old.config,
                clean_shutdown=True,
                fsync_on_append=self.fsync_on_append,
                files=self.files,
            )
        )
        old.close_files()
        self._logs[key] = log
        del self._copies[key]
        return log, aside

    def abort_move(self, topic: str, partition: int, copy: LogCopy) -> None:
        """Drop a move's copy (best effort)."""
        if self._copies.get((topic, partition)) is copy:
            del self._copies[(topic, partition)]
        copy.discard()

    def log_dir_reports(self) -> list[LogDirReport]:
        """Every log directory with its usage and the replicas in it (moving ones as future
        replicas in their target)."""
        replicas: dict[Path, list[ReplicaReport]] = {d: [] for d in self.log_dirs}
        for (topic, partition), log in list(self._logs.items()):
            report = ReplicaReport(topic, partition, log.size_in_bytes, is_future=False)
            replicas.setdefault(log.directory.parent, []).append(report)
        for (topic, partition), copy in list(self._copies.items()):
            report = ReplicaReport(topic, partition, copy.copied_bytes, is_future=True)
            replicas.setdefault(copy.directory.parent, []).append(report)
        return [LogDirReport(d, dir_usage(d), replicas[d]) for d in self.log_dirs]

    # --- periodic work and shutdown ----------------------------------------------------------

    def partition_logs(self) -> list[tuple[str, int, PartitionLog]]:
        """Every open partition log, as a list that later topic changes do not disturb."""
        # list() copies in one step, so a catalogue change on a worker thread cannot interleave.
        return [(topic, partition, log) for (topic, partition), log in list(self._logs.items())]

    def close(self) -> None:
        """Flush and close everything, then mark the shutdown clean for a fast restart (a
        move still copying is dropped at the next start)."""
        if not self._lock_fds:
            return
        try:
            for log in self._logs.values():
                log.close()
            self.state.close()
            for directory in self.log_dirs:
                with contextlib.suppress(OSError):  # an unusable directory is recovered
                    atomic_write(directory / CLEAN_SHUTDOWN_FILE, b"")
        finally:
            for log in self._logs.values():
                log.close_files()
            self.files.close_all()
            for fd in self._lock_fds:
                os.close(fd)
            self._lock_fds = []


def remove_trees(paths: list[Path]) -> None:
    """Remove detached partition directories."""
    for path in paths:
        shutil.rmtree(path, ignore_errors=True)
