"""The pure parts of `groups` and `top`: assignment decoding, reset plans, tables and rates."""

from __future__ import annotations

import argparse
import io
from typing import cast

import pytest

from kafkacompat import cli_top
from kafkacompat.cli import build_parser
from kafkacompat.cli_groups import (
    GroupsError,
    format_listing,
    offset_rows,
    parse_datetime,
    parse_topic,
    plan_reset,
)
from kafkacompat.cli_top import CLEAR_SCREEN, GroupLag, Snapshot, render, table
from kafkacompat.client import AdminClient, GroupDescription, GroupMember, decode_assignment
from kafkacompat.protocol.messages.consumer_protocol_assignment import (
    ENCODERS,
    ConsumerProtocolAssignment,
    TopicPartition,
)


def assignment_bytes(version: int, topics: dict[str, list[int]]) -> bytes:
    out = bytearray(version.to_bytes(2, "big"))
    parts = [TopicPartition(t, p) for t, p in topics.items()]
    ENCODERS[version](ConsumerProtocolAssignment(parts, b"user"), out)
    return bytes(out)


@pytest.mark.parametrize("version", [0, 1, 3])
def test_decode_assignment(version: int) -> None:
    data = assignment_bytes(version, {"b": [1, 0], "a": [2]})
    assert decode_assignment(data) == [("a", 2), ("b", 0), ("b", 1)]


def test_decode_assignment_empty_or_unreadable() -> None:
    assert decode_assignment(b"") == []
    assert decode_assignment(b"\x00\x00\x00\x00\x00\x05\x00") == []


def reset_args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["groups", "reset-offsets", "g", "--topic", "t", *argv])


PARTS = [("t", 0), ("t", 1)]
STARTS = {("t", 0): 2, ("t", 1): 0}
ENDS = {("t", 0): 10, ("t", 1): 4}
COMMITTED = {("t", 0): 5, ("t", 1): 1}


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--to-earliest"], [2, 0]),
        (["--to-latest"], [10, 4]),
        (["--to-current"], [5, 1]),
        (["--to-offset", "3"], [3, 3]),
        (["--to-offset", "0"], [2, 0]),
        (["--shift-by", "-4"], [2, 0]),
        (["--shift-by", "4"], [9, 4]),
    ],
)
def test_plan_reset_clamps_to_the_log(argv: list[str], expected: list[int]) -> None:
    plan = plan_reset(reset_args(*argv), PARTS, COMMITTED, STARTS, ENDS)
    assert list(plan.values()) == expected


def test_plan_reset_to_datetime_past_the_end_is_the_log_end() -> None:
    args = reset_args("--to-datetime", "2026-01-01T00:00:00Z")
    at_time = {("t", 0): 7, ("t", 1): -1}
    assert plan_reset(args, PARTS, COMMITTED, STARTS, ENDS, at_time) == {("t", 0): 7, ("t", 1): 4}


def test_plan_reset_shift_needs_a_committed_offset() -> None:
    with pytest.raises(GroupsError, match=r"Expected a valid current offset .*: t-1"):
        plan_reset(reset_args("--shift-by", "1"), PARTS, {("t", 0): 5}, STARTS, ENDS)


def test_parse_topic_and_datetime() -> None:
    assert parse_topic("t", {"t": 2}) == [("t", 0), ("t", 1)]
    assert parse_topic("t:1", {"t": 2}) == [("t", 1)]
    with pytest.raises(GroupsError, match="Partition t-2 does not exist"):
        parse_topic("t:2", {"t": 2})
    with pytest.raises(ValueError, match="TOPIC:PARTITION"):
        parse_topic("t:x", {"t": 2})
    assert parse_datetime("1970-01-01T00:00:01.5+00:00") == 1500
    assert parse_datetime("1970-01-01T00:00:01Z") == 1000
    with pytest.raises(ValueError, match="ISO 8601"):
        parse_datetime("yesterday")


def test_offset_rows_order_and_lag() -> None:
    members = [
        GroupMember("m2", None, "c2", "/h", [("t", 1)]),
        GroupMember("m1", None, "c1", "/h", [("t", 0)]),
        GroupMember("m3", None, "c3", "/h", []),
    ]
    group = GroupDescription("g", "Stable", "consumer", "range", members)
    rows = offset_rows(group, {("t", 1): 3, ("u", 0): 1}, {("t", 0): 4, ("t", 1): 5})
    assert [(r.topic, r.partition, r.current, r.end, r.lag, r.consumer_id) for r in rows] == [
        ("t", 0, None, 4, None, "m1"),
        ("t", 1, 3, 5, 2, "m2"),
        ("u", 0, 1, None, None, None),
        (None, None, None, None, None, "m3"),
    ]


def test_listing_columns_widen_with_long_names() -> None:
    name = "g" * 20
    assert format_listing([(name, "Classic", "Empty")], types=False, states=True) == [
        f"{'GROUP':<30} STATE",
        f"{name:<30} Empty",
    ]


def test_top_rates_from_end_offset_deltas() -> None:
    before = Snapshot(10.0, {("t", 0): 5, ("t", 1): 5}, {"t": 2}, [])
    after = Snapshot(12.0, {("t", 0): 9, ("t", 1): 7}, {"t": 2}, [GroupLag("g", "Empty", 3)])
    lines = render(after, before, "title")
    topics = [["TOPIC", "PARTITIONS", "LOG-END-OFFSET", "MSG/S-IN"], ["t", "2", "16", "3.0"]]
    groups = [["GROUP", "STATE", "LAG"], ["g", "Empty", "3"]]
    assert lines[2:] == [*table(topics), "", *table(groups)]
    assert render(before, None, "title")[3].split()[-1] == "-"


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(("out", "separator"), [(Terminal(), CLEAR_SCREEN), (io.StringIO(), "\n")])
def test_top_clears_a_terminal_and_separates_plain_refreshes(
    monkeypatch: pytest.MonkeyPatch, out: io.StringIO, separator: str
) -> None:
    snapshots = iter([Snapshot(float(i), {}, {}, []) for i in range(3)])
    monkeypatch.setattr(cli_top, "take_snapshot", lambda client: next(snapshots))
    args = build_parser().parse_args(["top", "--iterations", "3", "--interval", "0"])
    cli_top.watch(cast(AdminClient, None), args, out)
    frames = out.getvalue().split(f"{separator}kafkacompat top: ")
    assert len(frames) == 3 if separator == "\n" else len(frames) == 4 and frames[0] == ""
