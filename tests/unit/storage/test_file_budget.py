"""Descriptors are a budget: one bounded cache of open segment files, all given back on
close and delete, and a topic creation that fails part-way leaves nothing behind."""

from __future__ import annotations

import errno
import os
import resource
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kafkacompat.errors import ErrorCode, KafkaError
from kafkacompat.storage import metadata_store
from kafkacompat.storage.file_cache import CachedFile, FileCache, effective_max_open_files
from kafkacompat.storage.log_manager import LogManager

from .helpers import batch, decode

CAP = 16
#: Descriptors open for a moment besides the cache's (index flush, checkpoint, a read's slice).
SLACK = 4
PARTITIONS = 200


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def open_paths() -> set[str]:
    paths = set()
    for name in os.listdir("/proc/self/fd"):
        try:
            paths.add(os.readlink(f"/proc/self/fd/{name}"))
        except OSError:
            continue  # the listing's own descriptor, closed by now
    return paths


def partition_dirs(root: Path, topic: str) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.name.startswith(f"{topic}-"))


@pytest.fixture
def before() -> Iterator[int]:
    """The descriptor count before the test's log manager opens its data directory."""
    yield open_fds()


def test_many_partitions_stay_within_the_budget(tmp_path: Path, before: int) -> None:
    manager = LogManager(tmp_path, max_open_files=CAP)
    start = open_fds()
    limit = start + CAP + SLACK
    # Small segments: every partition rolls, so older segments are read back too.
    manager.create_topic("t", PARTITIONS, {"segment.bytes": "1500"})
    assert open_fds() <= limit
    for round_ in range(3):
        for p in range(PARTITIONS):
            manager.log("t", p).append(batch(2, start=round_ * 2, value_size=300), now_ms=0)
            assert open_fds() <= limit
    assert len(manager.log("t", 0).segment_base_offsets) > 1
    for p in range(PARTITIONS):
        log = manager.log("t", p)
        got = [r[0] for r in decode(log.read(0, 1 << 20).read_bytes())]
        assert got == list(range(6))
        assert [r.offset for r in log.iter_records()] == list(range(6))
        log.flush()
        assert open_fds() <= limit
    assert len(manager.files) <= CAP

    manager.delete_topic("t")
    assert open_fds() == start
    assert len(manager.files) == 0
    assert partition_dirs(tmp_path, "t") == []
    manager.close()
    assert open_fds() == before


def test_restart_with_many_partitions_stays_within_the_budget(tmp_path: Path, before: int) -> None:
    manager = LogManager(tmp_path, max_open_files=CAP)
    manager.create_topic("t", PARTITIONS, {"segment.bytes": "1500"})
    for p in range(PARTITIONS):
        for i in range(3):
            manager.log("t", p).append(batch(2, start=2 * i, value_size=300), now_ms=0)
    manager.close()
    assert open_fds() == before

    for clean in (True, False):
        if not clean:  # every active segment is scanned and its indexes rebuilt
            (tmp_path / ".kafka_cleanshutdown").unlink()
        again = LogManager(tmp_path, max_open_files=CAP)
        assert open_fds() <= before + 1 + CAP + SLACK
        assert all(again.log("t", p).log_end_offset == 6 for p in range(PARTITIONS))
        again.close()
        assert open_fds() == before


def test_only_the_active_segment_holds_a_descriptor(tmp_path: Path) -> None:
    manager = LogManager(tmp_path, max_open_files=CAP)
    manager.create_topic("t", 1, {"segment.bytes": "1500"})
    log = manager.log("t", 0)
    for i in range(4):
        log.append(batch(2, start=2 * i, value_size=300), now_ms=0)
    directory = str(tmp_path / "t-0")
    *sealed, active = (f"{directory}/{base:020d}.log" for base in log.segment_base_offsets)
    assert sealed
    held = open_paths()
    assert active in held
    assert not held & set(sealed)
    log.read(0, 100)  # reading an old segment opens it until the cache needs the slot
    assert sealed[0] in open_paths()
    manager.close()


def test_closing_a_log_gives_back_its_descriptors(tmp_path: Path, before: int) -> None:
    manager = LogManager(tmp_path, max_open_files=CAP)
    manager.create_topic("t", 8)
    for p in range(8):
        manager.log("t", p).append(batch(2), now_ms=0)
    held = open_fds()
    manager.log("t", 3).close()
    assert open_fds() == held - 1
    assert len(manager.files) == 7
    manager.close()
    assert len(manager.files) == 0
    assert open_fds() == before


def fail_log_opens(monkeypatch: pytest.MonkeyPatch, topic: str, from_partition: int) -> None:
    """Make opening a segment file of ``topic``-N (N >= ``from_partition``) fail with EMFILE."""
    real_open = os.open

    def open_(path: str | os.PathLike[str], flags: int, *args: int, **kw: object) -> int:
        p = Path(path)
        if p.suffix == ".log" and p.parent.name.startswith(f"{topic}-"):
            partition = int(p.parent.name.rsplit("-", 1)[1])
            if partition >= from_partition:
                raise OSError(errno.EMFILE, os.strerror(errno.EMFILE), str(path))
        return real_open(path, flags, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", open_)


def test_create_failing_half_way_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manager = LogManager(tmp_path, max_open_files=CAP)
    start = open_fds()
    fail_log_opens(monkeypatch, "t", 120)
    with pytest.raises(KafkaError) as info:
        manager.create_topic("t", PARTITIONS)
    assert info.value.code == ErrorCode.KAFKA_STORAGE_ERROR
    assert "partition t-120" in str(info.value)
    assert "no topic was created" in str(info.value)
    assert manager.topic("t") is None
    assert manager.log_or_none("t", 0) is None
    assert partition_dirs(tmp_path, "t") == []
    assert open_fds() == start
    assert len(manager.files) == 0

    monkeypatch.undo()
    manager.create_topic("t", 2)  # the name is free again
    manager.close()
    again = LogManager(tmp_path)
    assert [t.partitions for t in again.topics()] == [2]
    again.close()


def test_add_partitions_failing_half_way_keeps_the_topic_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manager = LogManager(tmp_path, max_open_files=CAP)
    manager.create_topic("t", 2)
    manager.log("t", 1).append(batch(3), now_ms=0)
    start = open_fds()
    fail_log_opens(monkeypatch, "t", 30)
    with pytest.raises(KafkaError) as info:
        manager.add_partitions("t", 50)
    assert info.value.code == ErrorCode.KAFKA_STORAGE_ERROR
    assert "keeps its 2 partitions" in str(info.value)
    meta = manager.topic("t")
    assert meta is not None and meta.partitions == 2
    assert partition_dirs(tmp_path, "t") == ["t-0", "t-1"]
    assert manager.log_or_none("t", 2) is None
    assert open_fds() <= start
    assert manager.log("t", 1).log_end_offset == 3
    monkeypatch.undo()
    manager.close()


def test_disk_full_writing_metadata_rolls_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manager = LogManager(tmp_path, max_open_files=CAP)
    start = open_fds()

    def disk_full(*args: object, **kw: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(metadata_store, "atomic_write", disk_full)
    with pytest.raises(KafkaError) as info:
        manager.create_topic("t", 20)
    assert info.value.code == ErrorCode.KAFKA_STORAGE_ERROR
    assert "metadata" in str(info.value)
    assert manager.topic("t") is None
    assert partition_dirs(tmp_path, "t") == []
    assert open_fds() == start
    monkeypatch.undo()
    manager.close()
    again = LogManager(tmp_path)
    assert again.topics() == []
    again.close()


def test_delete_failing_half_way_gives_back_every_descriptor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manager = LogManager(tmp_path, max_open_files=CAP)
    start = open_fds()
    manager.create_topic("t", 10)
    for p in range(10):
        manager.log("t", p).append(batch(2), now_ms=0)
    real_rename = os.rename

    def rename(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        if Path(src).name == "t-4":
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        real_rename(src, dst)

    monkeypatch.setattr("kafkacompat.storage.partition_log.os.rename", rename)
    manager.delete_topic("t")
    assert manager.topic("t") is None
    assert partition_dirs(tmp_path, "t") == []
    assert open_fds() == start
    monkeypatch.undo()
    manager.close()


# --- the cache itself ------------------------------------------------------------------------


def make_files(tmp_path: Path, cache: FileCache, count: int) -> list[CachedFile]:
    return [cache.file(tmp_path / f"{i}.log", create=True) for i in range(count)]


def test_cache_evicts_the_least_recently_used(tmp_path: Path) -> None:
    cache = FileCache(3)
    a, b, c = make_files(tmp_path, cache, 3)
    a.acquire()
    a.release()  # a becomes the most recently used
    d = cache.file(tmp_path / "d.log", create=True)
    assert [f.is_open for f in (a, b, c, d)] == [True, False, True, True]
    fd = b.acquire()  # reopened by path on demand, closing c
    os.write(fd, b"xy")
    b.release()
    assert [f.is_open for f in (a, b, c, d)] == [True, True, False, True]
    assert os.pread(b.acquire(), 2, 0) == b"xy"
    b.release()
    assert len(cache) == 3
    cache.close_all()
    assert len(cache) == 0


def test_pinned_descriptors_are_never_closed_under_their_user(tmp_path: Path) -> None:
    cache = FileCache(2)
    a, b = make_files(tmp_path, cache, 2)
    fa, fb = a.acquire(), b.acquire()
    c = cache.file(tmp_path / "c.log", create=True)
    assert a.is_open and b.is_open and c.is_open  # over the cap rather than fail
    a.close()  # closed for good, but only once its user lets go
    os.fstat(fa)
    a.release()
    with pytest.raises(OSError):
        os.fstat(fa)
    with pytest.raises(OSError):
        a.acquire()
    b.release()
    os.fstat(fb)
    cache.close_all()
    with pytest.raises(OSError):
        os.fstat(fb)


def test_out_of_descriptors_gives_back_idle_ones_and_retries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = FileCache(10)
    files = make_files(tmp_path, cache, 4)
    real_open = os.open
    failures = [1]

    def open_(*args: object) -> int:
        if failures[0]:
            failures[0] -= 1
            raise OSError(errno.EMFILE, "too many open files")
        return real_open(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", open_)
    late = cache.file(tmp_path / "late.log", create=True)
    assert late.is_open
    assert not any(f.is_open for f in files)
    cache.close_all()


def test_cap_is_at_most_a_quarter_of_the_descriptor_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(resource, "getrlimit", lambda _: (1024, 4096))
    assert effective_max_open_files(1024) == 256
    assert effective_max_open_files(100) == 100
    monkeypatch.setattr(
        resource,
        "getrlimit",
        lambda _: (resource.RLIM_INFINITY, resource.RLIM_INFINITY),
    )
    assert effective_max_open_files(5000) == 5000
    with pytest.raises(ValueError):
        effective_max_open_files(0)


def test_threads_never_use_a_descriptor_closed_under_them(tmp_path: Path) -> None:
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible
    try:
        cache = FileCache(2)
        files = make_files(tmp_path, cache, 8)
        for i, f in enumerate(files):
            os.write(f.acquire(), bytes([i]) * 64)
            f.release()
        errors: list[str] = []

        def reader(offset: int) -> None:
            for n in range(3000):
                i = (offset + n) % len(files)
                fd = files[i].acquire()
                try:
                    time.sleep(0)  # let another thread evict and reuse descriptor numbers
                    data = os.pread(fd, 64, 0)
                finally:
                    files[i].release()
                if data != bytes([i]) * 64:
                    errors.append(f"file {i} read {data[:1]!r}")
                    return

        threads = [threading.Thread(target=reader, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    assert errors == []
    assert len(cache) <= 2
    cache.close_all()
    assert not any(f.is_open for f in files)
