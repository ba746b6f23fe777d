"""The internal key/value state store: durability, atomic groups, torn tails, compaction."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kafkacompat.storage.state_store import StateStore


def test_put_get_delete_and_replay(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    offsets = store.namespace("group_offsets")
    offsets.put(b"g1/t/0", b"42")
    offsets.put(b"g1/t/1", b"7")
    offsets.put(b"g1/t/0", b"43")
    offsets.delete(b"g1/t/1")
    store.namespace("producers").put(b"pid-1", b"\x00" * 10)
    store.close()
    again = StateStore(tmp_path)
    assert dict(again.namespace("group_offsets").items()) == {b"g1/t/0": b"43"}
    assert again.namespace("producers").get(b"pid-1") == b"\x00" * 10
    assert again.namespace("producers").get(b"nope") is None
    assert len(again.namespace("empty")) == 0


def test_put_many_is_atomic_under_torn_write(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    ns = store.namespace("txn")
    ns.put(b"a", b"1")
    size_before = ns.file_size
    ns.put_many([(b"b", b"2"), (b"c", b"3"), (b"a", None)])
    store.close()
    path = tmp_path / "txn.log"
    for cut in range(size_before + 1, path.stat().st_size):
        data = path.read_bytes()
        torn = tmp_path / "torn"
        torn.mkdir(exist_ok=True)
        (torn / "txn.log").write_bytes(data[:cut])
        replayed = StateStore(torn).namespace("txn")
        assert dict(replayed.items()) == {b"a": b"1"}, cut
        assert (torn / "txn.log").stat().st_size == size_before  # tail cut off
    assert dict(StateStore(tmp_path).namespace("txn").items()) == {b"b": b"2", b"c": b"3"}


def test_corrupt_frame_stops_replay(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    ns = store.namespace("n")
    ns.put(b"k1", b"v1")
    first = ns.file_size
    ns.put(b"k2", b"v2")
    ns.put(b"k3", b"v3")
    store.close()
    path = tmp_path / "n.log"
    data = bytearray(path.read_bytes())
    data[first + 9] ^= 0xFF
    path.write_bytes(bytes(data))
    assert dict(StateStore(tmp_path).namespace("n").items()) == {b"k1": b"v1"}
    assert path.stat().st_size == first


def test_compaction_rewrites_live_entries(tmp_path: Path) -> None:
    store = StateStore(tmp_path, fsync=False, compact_min_bytes=4096)
    ns = store.namespace("offsets")
    for i in range(2000):
        ns.put(f"key-{i % 10}".encode(), f"value-{i}".encode())
    assert ns.file_size < 4096 + 200
    expected = {f"key-{k}".encode(): f"value-{1990 + k}".encode() for k in range(10)}
    assert dict(ns.items()) == expected
    store.close()
    assert dict(StateStore(tmp_path).namespace("offsets").items()) == expected
    assert not list(tmp_path.glob("*.tmp"))


def test_bad_namespace_name(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        StateStore(tmp_path).namespace("../escape")
    assert os.listdir(tmp_path) == []
