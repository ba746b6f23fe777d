"""Several log directories: placement, restart, moving a log (AlterReplicaLogDirs) while it is
appended to, and moves interrupted by a crash, finished or dropped at the next start."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import trio

from kafkacompat.cluster.topic_configs import topic_defaults
from kafkacompat.config import Config
from kafkacompat.errors import ErrorCode, KafkaError
from kafkacompat.partitions.manager import PartitionManager
from kafkacompat.storage.log_config import LogConfig
from kafkacompat.storage.log_copy import LogCopy
from kafkacompat.storage.log_dirs import parse_log_dirs
from kafkacompat.storage.log_manager import LogManager, remove_trees
from kafkacompat.storage.partition_log import PartitionLog

from .helpers import batch, decode


def _dirs(tmp_path: Path) -> tuple[Path, Path]:
    return tmp_path / "a", tmp_path / "b"


def _open(a: Path, b: Path, **kwargs: object) -> LogManager:
    return LogManager(a, log_dirs=[a, b], **kwargs)  # type: ignore[arg-type]


def _offsets(log: PartitionLog) -> list[int]:
    return [r[0] for r in decode(log.read(log.log_start_offset, 1 << 30).read_bytes())]


def _values(log: PartitionLog) -> list[bytes | None]:
    return [r[3] for r in decode(log.read(log.log_start_offset, 1 << 30).read_bytes())]


def _where(manager: LogManager) -> dict[tuple[str, int], str]:
    return {(t, p): log.directory.parent.name for t, p, log in manager.partition_logs()}


def _move(manager: LogManager, topic: str, index: int, target: Path) -> Path:
    copy = manager.start_move(topic, index, target)
    copy.copy_round(copy.plan())
    copy.finish()
    _, old = manager.commit_move(topic, index, copy)
    return old


def test_parse_log_dirs() -> None:
    assert parse_log_dirs("") == []
    assert parse_log_dirs(" /x , ,/y,/x") == [Path("/x"), Path("/y")]


def test_new_partitions_go_to_the_directory_with_fewest(tmp_path: Path) -> None:
    a, b = _dirs(tmp_path)
    manager = _open(a, b)
    assert manager.log_dirs == [a, b]
    manager.create_topic("t", 3)
    assert _where(manager) == {("t", 0): "a", ("t", 1): "b", ("t", 2): "a"}
    manager.create_topic("u", 1)
    manager.add_partitions("t", 5)
    assert _where(manager) == {
        ("t", 0): "a",
        ("t", 1): "b",
        ("t", 2): "a",
        ("u", 0): "b",
        ("t", 3): "a",
        ("t", 4): "b",
    }
    # Metadata and state stay in the first directory; each directory is locked.
    assert (a / "__metadata").is_dir() and (a / "__state").is_dir()
    assert sorted(p.name for p in b.iterdir()) == [".lock", "t-1", "t-4", "u-0"]
    with pytest.raises(KafkaError) as caught:
        LogManager(tmp_path / "c", log_dirs=[tmp_path / "c", b])
    assert caught.value.code == ErrorCode.KAFKA_STORAGE_ERROR
    LogManager(tmp_path / "c").close()  # its lock was given back
    manager.close()


def test_restart_finds_partitions_in_each_directory(tmp_path: Path) -> None:
    a, b = _dirs(tmp_path)
    manager = _open(a, b)
    manager.create_topic("t", 2)
    manager.log("t", 0).append(batch(3), now_ms=0)
    manager.log("t", 1).append(batch(5), now_ms=0)
    manager.close()
    assert (a / ".kafka_cleanshutdown").exists() and (b / ".kafka_cleanshutdown").exists()
    # A stray partition directory and a set-aside one in the second directory are removed.
    (b / "gone-0").mkdir()
    (b / "t-7.0123.deleted").mkdir()

    again = _open(a, b)
    assert _where(again) == {("t", 0): "a", ("t", 1): "b"}
    assert _offsets(again.log("t", 0)) == [0, 1, 2]
    assert _offsets(again.log("t", 1)) == [0, 1, 2, 3, 4]
    assert sorted(p.name for p in b.iterdir()) == [".lock", "t-1"]
    assert not (a / ".kafka_cleanshutdown").exists()
    again.delete_topic("t")
    assert sorted(p.name for p in b.iterdir()) == [".lock"]
    assert not (a / "t-0").exists()
    again.close()


def test_single_directory_layout_is_unchanged(tmp_path: Path) -> None:
    manager = LogManager(tmp_path)
    manager.create_topic("t", 2)
    manager.close()
    assert manager.log_dirs == [tmp_path]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".kafka_cleanshutdown",
        ".lock",
        "__metadata",
        "__state",
        "t-0",
        "t-1",
    ]


def test_move_while_appending_then_restart(tmp_path: Path) -> None:
    a, b = _dirs(tmp_path)
    manager = _open(a, b)
    manager.create_topic("t", 1, {"segment.bytes": "1000"})
    log = manager.log("t", 0)
    for i in range(6):
        log.append(batch(3, start=3 * i), now_ms=0)
    assert len(log.segments) > 2
    assert manager.log_dir_of("t", 0) == a

    copy = manager.start_move("t", 0, b)
    assert copy.directory.parent == b and copy.directory.name.endswith("-future")
    assert copy.copy_round(copy.plan()) == log.size_in_bytes
    # Appends (and a roll) while the copy catches up.
    for i in range(6, 9):
        log.append(batch(3, start=3 * i), now_ms=0)
    assert copy.copy_round(copy.plan()) > 0
    log.append(batch(3, start=27), now_ms=0)
    reports = {r.path.name: r for r in manager.log_dir_reports()}
    assert [(r.topic, r.is_future) for r in reports["a"].replicas] == [("t", False)]
    assert [(r.topic, r.is_future) for r in reports["b"].replicas] == [("t", True)]
    copy.finish()
    new, old = manager.commit_move("t", 0, copy)

    assert manager.log("t", 0) is new
    assert new.directory == b / "t-0"
    assert old.parent == a and old.name.endswith(".deleted") and old.exists()
    assert not (a / "t-0").exists()
    remove_trees([old])
    assert sorted(p.name for p in a.iterdir()) == [".lock", "__metadata", "__state"]
    assert _offsets(new) == list(range(30))
    assert _values(new) == [f"{i:08d}".encode().ljust(100, b"x") for i in range(30)]
    assert new.segment_base_offsets == log.segment_base_offsets
    new.append(batch(2, start=30), now_ms=0)
    assert new.log_end_offset == 32
    manager.close()

    again = _open(a, b)
    assert _where(again) == {("t", 0): "b"}
    assert _offsets(again.log("t", 0)) == list(range(32))
    again.close()


def test_copy_redone_where_the_source_changed(tmp_path: Path) -> None:
    a, b = _dirs(tmp_path)
    manager = _open(a, b)
    manager.create_topic("t", 1, {"segment.bytes": "1000"})
    log = manager.log("t", 0)
    for i in range(8):
        log.append(batch(2, start=2 * i), now_ms=0)
    copy = manager.start_move("t", 0, b)
    copy.copy_round(copy.plan())
    # Records deleted from the start (whole segments go), and the tail truncated and written
    # again with other records (a follower's divergent tail).
    log.delete_records_before(6)
    log.truncate_to(12)
    log.append(batch(3, start=100), now_ms=0)
    expected = _offsets(log)
    assert expected == list(range(6, 15))
    copy.finish()
    new, old = manager.commit_move("t", 0, copy)
    remove_trees([old])
    assert new.log_start_offset == 6
    assert new.segment_base_offsets == log.segment_base_offsets
    assert _offsets(new) == expected
    assert _values(new)[-3:] == [f"{i:08d}".encode().ljust(100, b"x") for i in (100, 101, 102)]
    assert sorted(p.name for p in (b / "t-0").iterdir() if p.suffix == ".log") == [
        f"{base:020d}.log" for base in new.segment_base_offsets
    ]
    manager.close()


def test_move_errors(tmp_path: Path) -> None:
    a, b = _dirs(tmp_path)
    manager = _open(a, b)
    manager.create_topic("t", 1)
    with pytest.raises(KafkaError) as caught:
        manager.log_dir(tmp_path / "elsewhere")
    assert caught.value.code == ErrorCode.LOG_DIR_NOT_FOUND
    assert manager.log_dir(str(b) + "/") == b
    with pytest.raises(KafkaError) as caught:
        manager.start_move("t", 3, b)
    assert caught.value.code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    copy = manager.start_move("t", 0, b)
    with pytest.raises(KafkaError) as caught:
        manager.start_move("t", 0, b)
    assert caught.value.code == ErrorCode.KAFKA_STORAGE_ERROR
    manager.abort_move("t", 0, copy)
    assert not copy.directory.exists()
    assert [r.replicas for r in manager.log_dir_reports()][1] == []
    shutil.rmtree(b)
    reports = manager.log_dir_reports()
    assert [(r.path, r.usage is None) for r in reports] == [(a, False), (b, True)]
    with pytest.raises(KafkaError) as caught:
        manager.log_dir(b)
    assert caught.value.code == ErrorCode.KAFKA_STORAGE_ERROR
    manager.close()


def _crash_mid_move(tmp_path: Path, *, commit: bool) -> tuple[Path, Path]:
    """A closed manager whose partition t-0 (in a) has a finished copy in b, as left by a
    crash before the commit or (``commit``) after the old log was set aside."""
    a, b = _dirs(tmp_path)
    manager = _open(a, b)
    manager.create_topic("t", 1)
    manager.create_topic("u", 1)  # lands in b
    manager.log("t", 0).append(batch(4), now_ms=0)
    manager.close()
    copy_dir = b / "t-0.0123456789abcdef0123456789abcdef-future"
    shutil.copytree(a / "t-0", copy_dir)
    (b / "x-0.fedcba9876543210fedcba9876543210-future").mkdir()  # of no hosted partition
    if commit:
        os.rename(a / "t-0", a / "t-0.0123456789abcdef0123456789abcdef.deleted")
    return a, b


def test_unfinished_move_is_dropped_at_start(tmp_path: Path) -> None:
    a, b = _crash_mid_move(tmp_path, commit=False)
    manager = _open(a, b)
    assert _where(manager) == {("t", 0): "a", ("u", 0): "b"}
    assert _offsets(manager.log("t", 0)) == [0, 1, 2, 3]
    assert sorted(p.name for p in b.iterdir()) == [".lock", "u-0"]
    manager.close()


def test_committed_move_is_finished_at_start(tmp_path: Path) -> None:
    a, b = _crash_mid_move(tmp_path, commit=True)
    manager = _open(a, b)
    assert _where(manager) == {("t", 0): "b", ("u", 0): "b"}
    assert _offsets(manager.log("t", 0)) == [0, 1, 2, 3]
    assert sorted(p.name for p in b.iterdir()) == [".lock", "t-0", "u-0"]
    assert sorted(p.name for p in a.iterdir()) == [".lock", "__metadata", "__state"]
    manager.close()


def test_a_log_in_two_directories_is_refused(tmp_path: Path) -> None:
    a, b = _dirs(tmp_path)
    manager = _open(a, b)
    manager.create_topic("t", 1)
    manager.close()
    shutil.copytree(a / "t-0", b / "t-0")
    with pytest.raises(KafkaError) as caught:
        _open(a, b)
    assert caught.value.code == ErrorCode.KAFKA_STORAGE_ERROR
    # The locks were given back: once one copy is removed the directories open.
    shutil.rmtree(b / "t-0")
    _open(a, b).close()


def test_move_back_and_forth_keeps_configs(tmp_path: Path) -> None:
    a, b = _dirs(tmp_path)
    manager = _open(a, b, defaults=LogConfig())
    manager.create_topic("t", 1, {"retention.ms": "5000"})
    manager.log("t", 0).append(batch(2), now_ms=0)
    remove_trees([_move(manager, "t", 0, b)])
    remove_trees([_move(manager, "t", 0, a)])
    log = manager.log("t", 0)
    assert log.directory == a / "t-0" and log.config.retention_ms == 5000
    assert _offsets(log) == [0, 1]
    assert not (b / "t-0").exists()
    assert isinstance(manager.start_move("t", 0, b), LogCopy)
    manager.close()


def test_copy_of_a_tail_truncated_and_grown_again_is_redone(tmp_path: Path) -> None:
    a, b = _dirs(tmp_path)
    manager = _open(a, b)
    manager.create_topic("t", 1)
    log = manager.log("t", 0)
    for i in range(3):
        log.append(batch(2, start=2 * i), now_ms=0)
    copy = manager.start_move("t", 0, b)
    copied = copy.copy_round(copy.plan())
    log.truncate_to(2)
    for i in range(3):
        log.append(batch(2, start=50 + 2 * i), now_ms=0)
    assert len(log.segments) == 1 and log.size_in_bytes > copied
    expected = _values(log)
    assert expected[2:] == [f"{i:08d}".encode().ljust(100, b"x") for i in range(50, 56)]
    copy.finish()
    new, old = manager.commit_move("t", 0, copy)
    remove_trees([old])
    assert _values(new) == expected
    assert _offsets(new) == list(range(8))
    manager.close()


# -- PartitionManager.move_replica: the swap under the partition lock ---------------------------


def _manager(a: Path, b: Path) -> PartitionManager:
    return PartitionManager(
        a,
        topic_defaults(Config(data_dir=a)),
        producer_expiration_ms=86_400_000,
        fsync_state=False,
        log_dirs=[a, b],
    )


async def test_partition_keeps_working_across_a_move(tmp_path: Path) -> None:
    a, b = _dirs(tmp_path)
    manager = _manager(a, b)
    await manager.create_topic("t", 1)
    partition = manager.partition("t", 0)
    await partition.append(batch(3))
    partition.leader_epochs.assign(4, 3)
    assert manager.log_dir_reports()[1].replicas == []

    # The swap waits for appends in flight (the lock held here).
    async with trio.open_nursery() as nursery, partition.lock:
        nursery.start_soon(manager.move_replica, "t", 0, str(b))
        while not manager.log_dir_reports()[1].replicas:
            await trio.sleep(0.01)
        (future,) = manager.log_dir_reports()[1].replicas
        assert (future.topic, future.partition, future.is_future) == ("t", 0, True)
        assert future.size == partition.size_in_bytes
        assert partition.log.directory == a / "t-0"
        partition.leader_epochs.assign(5, 3)  # changed without the lock, still kept
    assert partition.log.directory == b / "t-0"
    assert not (a / "t-0").exists()
    assert [(r.topic, r.is_future) for r in manager.log_dir_reports()[1].replicas] == [("t", False)]
    # Epoch 4 wrote nothing: 5, starting where it did, replaces it (as Kafka's cache).
    assert partition.leader_epochs.entries() == [(0, 0), (5, 3)]
    assert (await partition.append(batch(2, start=3))).base_offset == 3
    read = partition.read(0, 1 << 20)
    assert [r[0] for r in decode(read.read_bytes())] == [0, 1, 2, 3, 4]

    # A compaction between its plan and its swap holds the move off until it ends.
    partition.cleaning = True
    async with trio.open_nursery() as nursery:
        nursery.start_soon(manager.move_replica, "t", 0, str(a))
        await trio.sleep(0.3)
        assert partition.log.directory == b / "t-0"
        partition.cleaning = False
    assert partition.log.directory == a / "t-0"
    await manager.move_replica("t", 0, str(a))  # already there: nothing
    assert sorted(p.name for p in b.iterdir()) == [".lock"]
    manager.close()

    again = _manager(a, b)
    moved = again.partition("t", 0)
    assert moved.log.directory == a / "t-0"
    assert moved.leader_epochs.entries() == [(0, 0), (5, 3)]
    assert moved.log_end_offset == 5
    with pytest.raises(KafkaError) as caught:
        await again.move_replica("t", 0, "/nowhere")
    assert caught.value.code == ErrorCode.LOG_DIR_NOT_FOUND
    with pytest.raises(KafkaError) as caught:
        await again.move_replica("t", 1, str(b))
    assert caught.value.code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    again.close()


async def test_a_requested_move_is_checked_at_once_and_made_in_the_background(
    tmp_path: Path,
) -> None:
    a, b = _dirs(tmp_path)
    manager = _manager(a, b)
    await manager.create_topic("t", 1)
    await manager.partition("t", 0).append(batch(3))
    for path, topic, index, code in (
        ("/nowhere", "t", 0, ErrorCode.LOG_DIR_NOT_FOUND),
        (str(b), "t", 1, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION),
        (str(b), "x", 0, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION),
    ):
        with pytest.raises(KafkaError) as caught:
            manager.request_move(topic, index, path)
        assert caught.value.code == code
    original = manager.partition("t", 0).log
    manager.request_move("t", 0, str(b))
    manager.request_move("t", 0, str(a))  # queued behind the first: back again
    assert manager.partition("t", 0).log is original  # nothing moved yet

    def back_home() -> bool:
        log = manager.partition("t", 0).log
        futures = [
            r for report in manager.log_dir_reports() for r in report.replicas if r.is_future
        ]
        return log is not original and log.directory == a / "t-0" and not futures

    async with trio.open_nursery() as nursery:
        nursery.start_soon(manager.run_moves)
        with trio.fail_after(10):
            while not back_home():
                await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    assert not (b / "t-0").exists()
    partition = manager.partition("t", 0)
    assert [r[0] for r in decode(partition.read(0, 1 << 20).read_bytes())] == [0, 1, 2]
    manager.close()


def test_move_of_an_empty_log_and_of_an_empty_active_segment(tmp_path: Path) -> None:
    a, b = _dirs(tmp_path)
    manager = _open(a, b)
    manager.create_topic("t", 2)
    remove_trees([_move(manager, "t", 0, b)])
    assert manager.log("t", 0).directory == b / "t-0"
    assert manager.log("t", 0).log_end_offset == 0
    log = manager.log("t", 1)
    log.append(batch(2), now_ms=0)
    log.roll(0)
    assert log.segment_base_offsets == [0, 2]
    remove_trees([_move(manager, "t", 1, a)])
    moved = manager.log("t", 1)
    assert moved.segment_base_offsets == [0, 2] and moved.log_end_offset == 2
    assert sorted(p.name for p in (a / "t-1").iterdir() if p.suffix == ".log") == [
        f"{0:020d}.log",
        f"{2:020d}.log",
    ]
    manager.close()
