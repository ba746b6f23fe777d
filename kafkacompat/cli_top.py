"""`kafkacompat top`: a terminal view of messages in per topic and lag per group, refreshed.

Rates come from the change of each topic's log end offsets (ListOffsets) between two refreshes;
a group's lag is the sum over its committed partitions of log end minus committed offset. On a
terminal each refresh clears the screen (ANSI); otherwise refreshes follow each other as plain
text, separated by a blank line.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO

from kafkacompat.cli_groups import add_common
from kafkacompat.client import LATEST_TIMESTAMP, AdminClient, AdminError, TopicPartition

CLEAR_SCREEN = "\x1b[H\x1b[2J"


def add_parser(commands: Any) -> None:
    """Add the `top` subcommand to the top-level parser's subcommands."""
    top = commands.add_parser("top", help="watch messages/s per topic and lag per group")
    add_common(top)
    top.add_argument("--interval", type=float, default=1.0, help="seconds between refreshes")
    top.add_argument(
        "--iterations", type=int, default=0, metavar="N", help="stop after N refreshes"
    )


@dataclass(frozen=True, slots=True)
class GroupLag:
    group_id: str
    state: str
    lag: int


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The cluster at one moment: log end offsets and group lags."""

    at: float
    ends: dict[TopicPartition, int]
    partitions: dict[str, int]
    groups: list[GroupLag]

    def topic_end(self, topic: str) -> int:
        return sum(end for (t, _), end in self.ends.items() if t == topic)


def take_snapshot(client: AdminClient) -> Snapshot:
    counts = client.partition_counts()
    ends = client.list_offsets(
        [(t, p) for t, n in counts.items() for p in range(n)], LATEST_TIMESTAMP
    )
    groups = []
    for listing in client.list_groups():
        committed = client.committed_offsets(listing.group_id)
        lag = sum(max(ends[tp] - offset, 0) for tp, offset in committed.items() if tp in ends)
        groups.append(GroupLag(listing.group_id, listing.state, lag))
    return Snapshot(time.monotonic(), ends, counts, groups)


def table(rows: list[list[str]]) -> list[str]:
    """Left-aligned columns two spaces apart."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]


def render(current: Snapshot, previous: Snapshot | None, title: str) -> list[str]:
    """One refresh: a title, the topics table, the groups table."""
    topics = [["TOPIC", "PARTITIONS", "LOG-END-OFFSET", "MSG/S-IN"]]
    for topic, count in current.partitions.items():
        end = current.topic_end(topic)
        rate = "-"
        if previous is not None and topic in previous.partitions and current.at > previous.at:
            delta = max(end - previous.topic_end(topic), 0)
            rate = f"{delta / (current.at - previous.at):.1f}"
        topics.append([topic, str(count), str(end), rate])
    groups = [["GROUP", "STATE", "LAG"]]
    groups += [[g.group_id, g.state, str(g.lag)] for g in current.groups]
    return [title, "", *table(topics), "", *table(groups)]


def watch(client: AdminClient, args: argparse.Namespace, out: TextIO) -> None:
    clear = out.isatty()
    previous: Snapshot | None = None
    shown = 0
    while True:
        current = take_snapshot(client)
        stamp = datetime.now(UTC).strftime("%H:%M:%S UTC")
        title = f"kafkacompat top: {args.bootstrap_server} at {stamp}, every {args.interval:g}s"
        frame = "\n".join(render(current, previous, title))
        separator = CLEAR_SCREEN if clear else "\n" if shown else ""
        out.write(f"{separator}{frame}\n")
        out.flush()
        shown += 1
        if args.iterations and shown >= args.iterations:
            return
        previous = current
        time.sleep(max(args.interval, 0.0))


def run(args: argparse.Namespace) -> int:
    """Run `top` until interrupted or done; the exit status: 0, or 1 when the broker cannot be
    reached or refuses."""
    try:
        with AdminClient(args.bootstrap_server, timeout=args.timeout) as client:
            watch(client, args, sys.stdout)
    except KeyboardInterrupt:
        return 0
    except AdminError as error:
        print(f"kafkacompat top: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        print(f"kafkacompat top: cannot talk to {args.bootstrap_server}: {error}", file=sys.stderr)
        return 1
    return 0
