"""Crash safety of compaction: a process SIGKILLed at each step of the swap protocol leaves a
log that the next open turns into the old or the new state, never a mix."""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from kafkacompat.storage import cleaner_swap
from kafkacompat.storage.cleaner import clean_log, first_dirty_offset
from kafkacompat.storage.cleaner_swap import CLEANER_SWAP_FILE
from kafkacompat.storage.partition_log import PartitionLog
from kafkacompat.storage.txn_index import AbortedTxn

from .cleaner_helpers import (
    KV,
    Row,
    cleaned_files,
    compact_config,
    kv_batch,
    rows,
    value,
    write_txn,
)

NOW = 10**7
ROOT = Path(__file__).resolve().parents[3]
#: Steps a cleaning passes before its commit: a crash there leaves the old log.
BEFORE_COMMIT = {"cleaned-partial", "cleaned-written"}


def build(directory: Path) -> None:
    """A log whose second cleaning (the one the child runs) merges segments, removes a
    tombstone and an abort marker (and its index entry) cleaned before, and removes aborted
    data while keeping its marker: old and new states differ in every way."""
    log = PartitionLog(directory, compact_config(), now_ms=0)
    write_txn(log, 5, [(b"k1", value("aborted"))], commit=False)
    write_txn(log, 5, [(b"t5", value("kept"))], commit=True, sequence=1)
    for i in range(40):
        pairs: list[KV] = [(f"k{(3 * i + j) % 7}".encode(), value(f"{i}-{j}")) for j in range(3)]
        log.append(kv_batch(pairs, ts=1000 + i), now_ms=0)
    log.append(kv_batch([(b"k0", None)], ts=2000), now_ms=0)
    log.roll()
    clean_log(log, now_ms=NOW)  # the tombstone and the first abort marker are clean now
    write_txn(log, 6, [(b"k2", value("aborted"))], commit=False, ts=3000)
    write_txn(log, 6, [(b"t6", value("kept"))], commit=True, sequence=1, ts=3000)
    for i in range(12):
        pairs = [(f"k{(5 * i + j) % 7 + 1}".encode(), value(f"b{i}-{j}")) for j in range(3)]
        log.append(kv_batch(pairs, ts=3000 + i), now_ms=0)
    log.roll()
    log.close()


@dataclass(frozen=True)
class State:
    rows: list[Row]
    aborted: list[AbortedTxn]

    @classmethod
    def of(cls, log: PartitionLog) -> State:
        return cls(rows(log), log.txn_index.collect(0, 2**62))


@dataclass(frozen=True)
class States:
    template: Path
    old: State
    new: State


def run_child(directory: Path, step: str, action: str) -> list[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "tests.unit.storage.cleaner_crash_child", str(directory), step,
         action, str(NOW)],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode in (-9, 0), proc.stderr
    return proc.stdout.split()


@pytest.fixture(scope="module")
def states(tmp_path_factory: pytest.TempPathFactory) -> States:
    """The built log (a template to copy), its state, and its state once cleaned."""
    template = tmp_path_factory.mktemp("template")
    build(template)
    old_log = PartitionLog(template, compact_config())
    old = State.of(old_log)
    old_log.close()
    cleaned_dir = tmp_path_factory.mktemp("cleaned")
    shutil.copytree(template, cleaned_dir, dirs_exist_ok=True)
    new_log = PartitionLog(cleaned_dir, compact_config())
    stats = clean_log(new_log, now_ms=NOW)
    assert stats is not None and stats.segments_written < stats.segments_read  # merged
    new = State.of(new_log)
    new_log.close()
    assert new.rows != old.rows and len(old.aborted) == 2 and len(new.aborted) == 1
    return States(template, old, new)


@pytest.mark.parametrize("step", cleaner_swap.STEPS)
def test_sigkill_at_each_step_leaves_the_old_or_the_new_log(
    tmp_path: Path, step: str, states: States
) -> None:
    shutil.copytree(states.template, tmp_path, dirs_exist_ok=True)
    seen = run_child(tmp_path, step, "clean")
    assert seen[-1] == step  # killed right there
    log = PartitionLog(tmp_path, compact_config())
    assert State.of(log) == (states.old if step in BEFORE_COMMIT else states.new)
    assert cleaned_files(tmp_path) == []
    assert not (tmp_path / CLEANER_SWAP_FILE).exists()
    if step not in BEFORE_COMMIT:
        assert first_dirty_offset(log) == log.active_segment_base
    # The log goes on: it cleans (again) to the same state and takes appends.
    clean_log(log, now_ms=NOW)
    assert State.of(log) == states.new
    end = states.new.rows[-1][0] + 1
    assert log.append(kv_batch([(b"k1", b"after")]), now_ms=0).base_offset == end


@pytest.mark.parametrize("second", ["old-deleted", "swapped", "checkpointed"])
def test_sigkill_during_the_roll_forward_of_a_previous_crash(
    tmp_path: Path, second: str, states: States
) -> None:
    shutil.copytree(states.template, tmp_path, dirs_exist_ok=True)
    assert run_child(tmp_path, "old-deleted", "clean")[-1] == "old-deleted"
    assert run_child(tmp_path, second, "open")[-1] == second  # the open's recovery dies too
    assert State.of(PartitionLog(tmp_path, compact_config())) == states.new
