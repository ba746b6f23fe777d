"""Reopening logs: clean restarts, torn and corrupt tails, lost indexes, SIGKILLed writers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from kafkacompat.storage import segment as segment_module
from kafkacompat.storage.log_config import LogConfig
from kafkacompat.storage.partition_log import PartitionLog

from .helpers import batch, decode

CONFIG = LogConfig.from_overrides({"segment.bytes": "2000", "index.interval.bytes": "400"})
SIZE = len(batch(2))


def fill(directory: Path, batches: int = 20) -> PartitionLog:
    log = PartitionLog(directory, CONFIG, now_ms=0)
    for i in range(batches):
        log.append(batch(2, start=2 * i, ts=1000 + i), now_ms=0)
    return log


def offsets(log: PartitionLog) -> list[int]:
    return [r[0] for r in decode(log.read(log.log_start_offset, 1 << 30).read_bytes())]


def segment_files(directory: Path, suffix: str) -> list[Path]:
    return sorted(directory.glob(f"*{suffix}"))


def test_clean_reopen_trusts_indexes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = fill(tmp_path)
    before = [log.read(o, 1000) for o in range(0, 40, 3)]
    log.close()
    index_bytes = [p.read_bytes() for p in segment_files(tmp_path, ".index")]
    assert any(index_bytes)

    def no_scan(*args: object) -> None:
        raise AssertionError("clean reopen must not scan")

    monkeypatch.setattr(segment_module, "scan_log", no_scan)
    reopened = PartitionLog(tmp_path, CONFIG, clean_shutdown=True)
    assert (reopened.log_end_offset, reopened.recovery_point) == (40, 40)
    assert [reopened.read(o, 1000) for o in range(0, 40, 3)] == before
    assert reopened.append(batch(1), now_ms=0).base_offset == 40


def test_unclean_reopen_scans_only_after_recovery_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = fill(tmp_path)
    log.flush()
    log.checkpoint()
    for i in range(20, 25):  # unflushed, no checkpoint: as if the broker died here
        log.append(batch(2, start=2 * i), now_ms=0)
    scanned: list[int] = []
    real_scan = segment_module.scan_log

    def counting_scan(fd: int, base: int, size: int, interval: int) -> object:
        scanned.append(base)
        return real_scan(fd, base, size, interval)

    monkeypatch.setattr(segment_module, "scan_log", counting_scan)
    reopened = PartitionLog(tmp_path, CONFIG)
    bases = reopened.segment_base_offsets
    holding_recovery_point = max(b for b in bases if b <= 40)
    assert holding_recovery_point < 40 and bases[0] < holding_recovery_point
    assert scanned == [b for b in bases if b >= holding_recovery_point]
    assert offsets(reopened) == list(range(50))


def test_torn_tail_is_truncated(tmp_path: Path) -> None:
    fill(tmp_path).close()
    last = segment_files(tmp_path, ".log")[-1]
    whole = last.stat().st_size
    os.truncate(last, whole - SIZE // 2)  # half of the last batch
    reopened = PartitionLog(tmp_path, CONFIG, clean_shutdown=True)
    assert reopened.log_end_offset == 38
    assert last.stat().st_size == whole - SIZE
    assert offsets(reopened) == list(range(38))
    assert reopened.append(batch(2), now_ms=0).base_offset == 38
    assert offsets(reopened) == list(range(40))


def test_truncated_mid_header(tmp_path: Path) -> None:
    fill(tmp_path).close()
    last = segment_files(tmp_path, ".log")[-1]
    os.truncate(last, last.stat().st_size - SIZE + 20)
    assert offsets(PartitionLog(tmp_path, CONFIG)) == list(range(38))


@pytest.mark.parametrize("where", ["body", "crc", "length", "garbage"])
def test_corrupt_tail_is_truncated(tmp_path: Path, where: str) -> None:
    fill(tmp_path).close()
    last = segment_files(tmp_path, ".log")[-1]
    data = bytearray(last.read_bytes())
    start = len(data) - SIZE
    if where == "body":
        data[-3] ^= 0xFF
    elif where == "crc":
        data[start + 18] ^= 0x01
    elif where == "length":
        data[start + 8 : start + 12] = (10**6).to_bytes(4, "big")
    else:
        data += os.urandom(100)
    last.write_bytes(bytes(data))
    reopened = PartitionLog(tmp_path, CONFIG)
    expected = 40 if where == "garbage" else 38
    assert offsets(reopened) == list(range(expected))
    assert last.stat().st_size == len(data) - (100 if where == "garbage" else SIZE)


def test_corrupt_middle_segment_drops_everything_after(tmp_path: Path) -> None:
    log = fill(tmp_path)
    bases = log.segment_base_offsets
    log.close()
    assert len(bases) >= 3
    second = segment_files(tmp_path, ".log")[1]
    data = bytearray(second.read_bytes())
    data[SIZE + 100] ^= 0xFF  # second batch of the second segment
    second.write_bytes(bytes(data))
    os.unlink(tmp_path / "partition.checkpoint")  # recovery point lost: rescan everything
    reopened = PartitionLog(tmp_path, CONFIG)
    assert reopened.segment_base_offsets == bases[:2]
    assert offsets(reopened) == list(range(bases[1] + 2))
    assert segment_files(tmp_path, ".log") == segment_files(tmp_path, ".log")[:2]
    assert len(segment_files(tmp_path, ".index")) == 2


@pytest.mark.parametrize("damage", ["delete", "garbage", "truncate"])
def test_damaged_indexes_are_rebuilt(tmp_path: Path, damage: str) -> None:
    log = fill(tmp_path)
    before = [log.read(o, 700) for o in range(40)]
    ts_before = [log.offset_for_timestamp(t) for t in range(995, 1025)]
    log.close()
    indexes = segment_files(tmp_path, ".index") + segment_files(tmp_path, ".timeindex")
    originals = [p.read_bytes() for p in indexes]
    for p in indexes:
        if damage == "delete":
            p.unlink()
        elif damage == "garbage":
            p.write_bytes(b"\x7f" * 24)
        else:
            p.write_bytes(p.read_bytes()[:-3])
    reopened = PartitionLog(tmp_path, CONFIG, clean_shutdown=True)
    assert [reopened.read(o, 700) for o in range(40)] == before
    assert [reopened.offset_for_timestamp(t) for t in range(995, 1025)] == ts_before
    reopened.close()
    assert [p.read_bytes() for p in indexes] == originals


def test_stray_files_removed(tmp_path: Path) -> None:
    fill(tmp_path).close()
    for name in ("00000000000000000099.index", "x.tmp", "00000000000000000000.log.deleted"):
        (tmp_path / name).write_bytes(b"junk")
    PartitionLog(tmp_path, CONFIG, clean_shutdown=True)
    names = {p.name for p in tmp_path.iterdir()}
    assert not names & {"00000000000000000099.index", "x.tmp", "00000000000000000000.log.deleted"}


def _parse(lines: list[str]) -> list[tuple[int, int, int]]:
    out = []
    for line in lines:
        base, last, seq = (int(x) for x in line.split())
        out.append((base, last, seq))
    return out


@pytest.mark.parametrize("kill_after", [7, 60, 150])
def test_sigkilled_writer_loses_no_acknowledged_append(tmp_path: Path, kill_after: int) -> None:
    writer = Path(__file__).with_name("crash_writer.py")
    lines = []
    with subprocess.Popen(
        [sys.executable, str(writer), str(tmp_path), "400"], stdout=subprocess.PIPE, text=True
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if len(lines) >= kill_after:
                os.kill(proc.pid, signal.SIGKILL)
                break
        lines += proc.stdout.read().splitlines(keepends=True)
    assert proc.returncode == -signal.SIGKILL
    acked = _parse([line for line in lines if line.endswith("\n")])
    assert len(acked) >= kill_after

    log = PartitionLog(tmp_path, LogConfig())
    records = decode(log.read(0, 1 << 30).read_bytes())
    assert [r[0] for r in records] == list(range(log.log_end_offset))  # no gaps, no garbage
    assert log.log_end_offset in (3 * len(acked), 3 * len(acked) + 3)  # at most one in flight
    by_offset = {r[0]: r for r in records}
    for base, last, seq in acked:
        assert (base, last) == (3 * seq, 3 * seq + 2)
        for i in range(3):
            assert by_offset[base + i][3] == f"{seq}:{i}".encode() * 20
    assert log.append(batch(1), now_ms=0).base_offset == log.log_end_offset - 1
