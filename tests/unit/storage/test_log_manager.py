"""LogManager: topics on disk, configs, restarts, retention and the clean-shutdown marker."""

from __future__ import annotations

import dataclasses
import os
import uuid
from pathlib import Path

import pytest

from kafkacompat.errors import ErrorCode, KafkaError
from kafkacompat.storage import segment as segment_module
from kafkacompat.storage.log_config import LogConfig
from kafkacompat.storage.log_manager import LogManager, remove_trees

from .helpers import apply_retention, batch, decode


def test_create_topic_and_restart(tmp_path: Path) -> None:
    manager = LogManager(tmp_path)
    meta = manager.create_topic("orders", 3, {"retention.ms": "1000", "cleanup.policy": "compact"})
    assert (meta.name, meta.partitions, dict(meta.configs)) == (
        "orders",
        3,
        {"retention.ms": "1000", "cleanup.policy": "compact"},
    )
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("orders")) == [
        "orders-0",
        "orders-1",
        "orders-2",
    ]
    manager.log("orders", 1).append(batch(4), now_ms=0)
    manager.close()
    assert (tmp_path / ".kafka_cleanshutdown").exists()

    again = LogManager(tmp_path)
    assert not (tmp_path / ".kafka_cleanshutdown").exists()
    assert again.topics() == [meta]
    assert again.topic_config("orders").retention_ms == 1000
    assert again.log("orders", 1).log_end_offset == 4
    assert [r[0] for r in decode(again.log("orders", 1).read(0, 1 << 20).read_bytes())] == [
        0,
        1,
        2,
        3,
    ]
    again.close()


def test_clean_shutdown_marker_skips_recovery(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manager = LogManager(tmp_path)
    manager.create_topic("t", 1)
    manager.log("t", 0).append(batch(2), now_ms=0)
    manager.close()

    def no_scan(*args: object) -> None:
        raise AssertionError("no recovery after a clean shutdown")

    monkeypatch.setattr(segment_module, "scan_log", no_scan)
    LogManager(tmp_path).close()


def test_unclean_shutdown_recovers(tmp_path: Path) -> None:
    manager = LogManager(tmp_path)
    manager.create_topic("t", 1)
    manager.log("t", 0).append(batch(2), now_ms=0)
    manager.log("t", 0).append(batch(2), now_ms=0)
    log_file = tmp_path / "t-0" / f"{0:020d}.log"
    with log_file.open("ab") as f:
        f.write(b"\x00\x00\x00\x00\x00\x00\x00\x09torn")
    for fd in manager._lock_fds:  # simulate a crash: the locks die with the process
        os.close(fd)
    manager._lock_fds = []
    again = LogManager(tmp_path)
    assert again.log("t", 0).log_end_offset == 4
    assert log_file.stat().st_size == 2 * len(batch(2))


def test_topic_errors(tmp_path: Path) -> None:
    manager = LogManager(tmp_path)
    manager.create_topic("a", 1)
    cases = [
        (lambda: manager.create_topic("a", 1), ErrorCode.TOPIC_ALREADY_EXISTS),
        (lambda: manager.create_topic("b", 0), ErrorCode.INVALID_PARTITIONS),
        (lambda: manager.create_topic("bad name", 1), ErrorCode.INVALID_TOPIC_EXCEPTION),
        (lambda: manager.create_topic("..", 1), ErrorCode.INVALID_TOPIC_EXCEPTION),
        (lambda: manager.create_topic("x" * 250, 1), ErrorCode.INVALID_TOPIC_EXCEPTION),
        (lambda: manager.create_topic("c", 1, {"retention.ms": "soon"}), ErrorCode.INVALID_CONFIG),
        (lambda: manager.create_topic("c", 1, {"no.such.config": "1"}), ErrorCode.INVALID_CONFIG),
        (lambda: manager.delete_topic("missing"), ErrorCode.UNKNOWN_TOPIC_OR_PARTITION),
        (lambda: manager.log("a", 1), ErrorCode.UNKNOWN_TOPIC_OR_PARTITION),
        (lambda: manager.add_partitions("a", 1), ErrorCode.INVALID_PARTITIONS),
        (lambda: manager.add_partitions("zz", 3), ErrorCode.UNKNOWN_TOPIC_OR_PARTITION),
    ]
    for call, code in cases:
        with pytest.raises(KafkaError) as err:
            call()
        assert err.value.code == code
    assert [t.name for t in manager.topics()] == ["a"]
    assert not (tmp_path / "c-0").exists()


def test_validate_only_creates_nothing(tmp_path: Path) -> None:
    manager = LogManager(tmp_path)
    meta = manager.create_topic("v", 2, validate_only=True)
    assert meta.partitions == 2
    assert manager.topics() == [] and not (tmp_path / "v-0").exists()


def test_delete_topic_removes_data(tmp_path: Path) -> None:
    manager = LogManager(tmp_path)
    manager.create_topic("gone", 2)
    manager.create_topic("kept", 1)
    manager.log("gone", 0).append(batch(1), now_ms=0)
    manager.delete_topic("gone")
    assert not (tmp_path / "gone-0").exists() and not (tmp_path / "gone-1").exists()
    manager.close()
    again = LogManager(tmp_path)
    assert [t.name for t in again.topics()] == ["kept"]
    recreated = again.create_topic("gone", 1)
    assert again.log("gone", 0).log_end_offset == 0
    assert recreated.topic_id != uuid.UUID(int=0)


def test_add_partitions_and_set_configs(tmp_path: Path) -> None:
    manager = LogManager(tmp_path)
    topic_id = uuid.uuid4()
    manager.create_topic("grow", 1, topic_id=topic_id)
    manager.add_partitions("grow", 3)
    assert manager.log("grow", 2).log_end_offset == 0
    manager.set_topic_configs("grow", {"message.timestamp.type": "LogAppendTime"})
    result = manager.log("grow", 2).append(batch(1), now_ms=777)
    assert result.log_append_time == 777
    manager.close()
    again = LogManager(tmp_path)
    meta = again.require_topic("grow")
    assert (meta.topic_id, meta.partitions) == (topic_id, 3)
    assert dict(meta.configs) == {"message.timestamp.type": "LogAppendTime"}
    assert again.log("grow", 2).config.log_append_time


def test_stray_partition_dirs_removed(tmp_path: Path) -> None:
    LogManager(tmp_path).close()
    (tmp_path / "half-created-0").mkdir()
    (tmp_path / "half-created-0" / f"{0:020d}.log").write_bytes(b"")
    LogManager(tmp_path).close()
    assert not (tmp_path / "half-created-0").exists()


def test_data_dir_lock(tmp_path: Path) -> None:
    manager = LogManager(tmp_path)
    with pytest.raises(KafkaError) as err:
        LogManager(tmp_path)
    assert err.value.code == ErrorCode.KAFKA_STORAGE_ERROR
    manager.close()
    LogManager(tmp_path).close()


def test_broker_defaults_and_retention(tmp_path: Path) -> None:
    defaults = LogConfig.from_overrides({"segment.bytes": "700", "retention.ms": "100"})
    manager = LogManager(tmp_path, defaults)
    manager.create_topic("r", 1)
    manager.create_topic("forever", 1, {"retention.ms": "-1"})
    for topic in ("r", "forever"):
        for i in range(4):
            manager.log(topic, 0).append(batch(2, ts=i, start=2 * i), now_ms=0)
    assert manager.log("r", 0).segment_base_offsets == [0, 4]
    # Every record of "r" is past retention: both segments go, the active one rolled first.
    assert sum(apply_retention(log, 10_000) for _, _, log in manager.partition_logs()) == 2
    assert manager.log("r", 0).log_start_offset == 8
    assert manager.log("r", 0).segment_base_offsets == [8]
    assert manager.log("forever", 0).log_start_offset == 0
    manager.close()


def test_detached_topic_is_gone_from_metadata_and_swept_after_a_crash(tmp_path: Path) -> None:
    manager = LogManager(tmp_path)
    manager.create_topic("doomed", 2)
    manager.log("doomed", 0).append(batch(3), now_ms=0)
    detached = manager.detach_topic("doomed")
    # Set aside at once: not a topic any more, its directories renamed, not yet removed.
    assert manager.topic("doomed") is None
    assert [p.parent for p in detached] == [tmp_path, tmp_path]
    assert all(p.name.startswith(f"doomed-{i}.") and p.is_dir() for i, p in enumerate(detached))
    assert not (tmp_path / "doomed-0").exists()
    # A crash before the removal: the next start sweeps the leftovers.
    manager.close()
    again = LogManager(tmp_path)
    assert not any(p.exists() for p in detached)
    assert again.topics() == []
    again.close()


def partition_dirs(data_dir: Path, topic: str) -> list[str]:
    return sorted(p.name for p in data_dir.iterdir() if p.name.startswith(f"{topic}-"))


def test_hosting_some_partitions_of_a_topic(tmp_path: Path) -> None:
    manager = LogManager(tmp_path)
    meta = manager.create_topic("t", 4, hosted=[1, 3])
    assert (meta.hosted, meta.hosted_indexes()) == (frozenset({1, 3}), [1, 3])
    assert partition_dirs(tmp_path, "t") == ["t-1", "t-3"]
    assert manager.log_or_none("t", 0) is None
    manager.log("t", 3).append(batch(2), now_ms=0)

    manager.add_partitions("t", 6, hosted=[1, 3, 5])
    assert partition_dirs(tmp_path, "t") == ["t-1", "t-3", "t-5"]
    manager.set_topic_configs("t", {"retention.ms": "5"})
    assert manager.log("t", 5).config.retention_ms == 5

    detached = manager.set_hosted("t", [0, 3])
    assert [p.name.split(".")[0] for p in detached] == ["t-1", "t-5"]
    remove_trees(detached)
    assert partition_dirs(tmp_path, "t") == ["t-0", "t-3"]
    manager.close()

    again = LogManager(tmp_path)
    assert again.topic("t") == dataclasses.replace(
        meta, partitions=6, configs={"retention.ms": "5"}, hosted=frozenset({0, 3})
    )
    assert [(t, p) for t, p, _ in again.partition_logs()] == [("t", 0), ("t", 3)]
    assert again.log("t", 3).log_end_offset == 2
    again.delete_topic("t")
    assert partition_dirs(tmp_path, "t") == []
    again.close()


def test_a_topic_without_a_hosted_set_keeps_every_partition(tmp_path: Path) -> None:
    manager = LogManager(tmp_path)
    manager.create_topic("all", 2)
    manager.add_partitions("all", 3)
    assert manager.topic("all").hosted is None  # type: ignore[union-attr]
    assert partition_dirs(tmp_path, "all") == ["all-0", "all-1", "all-2"]
    manager.close()
