"""`kafkacompat groups list|describe|reset-offsets|delete`: consumer groups without Kafka's tools.

Output and rules follow `kafka-consumer-groups.sh`: `describe` prints one line per partition with
the committed offset, the log end offset and the lag; `reset-offsets` plans new offsets clamped to
[log start, log end], prints the plan, and commits it only with --execute and only while the group
is inactive (Empty, or Dead: not there yet).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kafkacompat.client import (
    EARLIEST_TIMESTAMP,
    LATEST_TIMESTAMP,
    AdminClient,
    AdminError,
    GroupDescription,
    TopicPartition,
)

MISSING = "-"
INACTIVE_STATES = ("Empty", "Dead")
REBALANCING_STATES = ("PreparingRebalance", "CompletingRebalance", "Assigning", "Reconciling")
NO_EXECUTE_WARNING = (
    "WARN: No action will be performed as the --execute option is missing. "
    "You should add the --dry-run option explicitly if you are scripting this command."
)


class GroupsError(Exception):
    """A refusal to report to the user as it is (exit status 1)."""


def add_common(sub: argparse.ArgumentParser, *, group: bool = False) -> None:
    """The options every command that talks to a broker takes (and the group, when it needs
    one: GROUP or --group GROUP, as Kafka's tool spells it)."""
    if group:
        sub.add_argument("name", nargs="?", metavar="GROUP", help="the group (or use --group)")
        sub.add_argument("--group", help="the group")
    sub.add_argument(
        "--bootstrap-server",
        default="127.0.0.1:9092",
        metavar="HOST:PORT",
        help="the broker to talk to (default 127.0.0.1:9092)",
    )
    sub.add_argument("--timeout", type=float, default=30.0, help="seconds (default 30)")


def add_parser(commands: Any) -> None:
    """Add the `groups` subcommand to the top-level parser's subcommands."""
    groups = commands.add_parser("groups", help="list, describe, reset and delete consumer groups")
    actions = groups.add_subparsers(dest="action", required=True)

    listing = actions.add_parser("list", help="list groups (with --state/--type: as columns)")
    add_common(listing)
    listing.add_argument(
        "--state", nargs="?", const="", metavar="S[,S]", help="show states; keep only these"
    )
    listing.add_argument(
        "--type", nargs="?", const="", metavar="T[,T]", help="show types (classic, consumer)"
    )

    describe = actions.add_parser("describe", help="offsets and lag per partition, or members")
    add_common(describe, group=True)
    shown = describe.add_mutually_exclusive_group()
    shown.add_argument("--offsets", action="store_true", help="offsets and lag (the default)")
    shown.add_argument("--members", action="store_true", help="members and partition counts")

    reset = actions.add_parser("reset-offsets", help="move an inactive group's committed offsets")
    add_common(reset, group=True)
    scope = reset.add_mutually_exclusive_group(required=True)
    scope.add_argument(
        "--topic", action="append", metavar="T[:P,...]", help="a topic, or some of its partitions"
    )
    scope.add_argument("--all-topics", action="store_true", help="every topic with an offset")
    to = reset.add_mutually_exclusive_group(required=True)
    to.add_argument("--to-earliest", action="store_true", help="the log start offset")
    to.add_argument("--to-latest", action="store_true", help="the log end offset")
    to.add_argument("--to-current", action="store_true", help="the committed offset")
    to.add_argument("--to-offset", type=int, metavar="N", help="offset N")
    to.add_argument("--shift-by", type=int, metavar="N", help="the committed offset plus N")
    to.add_argument(
        "--to-datetime", metavar="ISO", help="the first offset at or after, e.g. 2026-01-01T00:00"
    )
    run_mode = reset.add_mutually_exclusive_group()
    run_mode.add_argument("--dry-run", action="store_true", help="print the plan (the default)")
    run_mode.add_argument("--execute", action="store_true", help="commit the plan")

    delete = actions.add_parser("delete", help="delete an inactive group and its offsets")
    add_common(delete, group=True)


# -- list ----------------------------------------------------------------------------------------


def _names(text: str | None) -> list[str]:
    return [n.strip() for n in (text or "").split(",") if n.strip()]


def format_listing(rows: list[tuple[str, str, str]], *, types: bool, states: bool) -> list[str]:
    """Kafka's GROUP [TYPE] [STATE] columns for (group, type, state) rows."""
    width = max([15, *(len(g) for g, _, _ in rows)]) + 10

    def line(group: str, kind: str, state: str) -> str:
        text = f"{group:<{width}}"
        text += f" {kind:<20}" if types else ""
        text += f" {state:<20}" if states else ""
        return text.rstrip()

    return [line("GROUP", "TYPE", "STATE"), *(line(*row) for row in rows)]


def _list(client: AdminClient, args: argparse.Namespace) -> None:
    listed = client.list_groups(_names(args.state), _names(args.type))
    if args.state is None and args.type is None:
        for group in listed:
            print(group.group_id)
        return
    rows = [(g.group_id, g.group_type.capitalize(), g.state) for g in listed]
    print(
        "\n".join(format_listing(rows, types=args.type is not None, states=args.state is not None))
    )


# -- describe ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OffsetRow:
    """One line of `describe`: a partition (or a member with none) and who consumes it."""

    topic: str | None
    partition: int | None
    current: int | None
    end: int | None
    consumer_id: str | None
    host: str | None
    client_id: str | None

    @property
    def lag(self) -> int | None:
        if self.current is None or self.end is None:
            return None
        return self.end - self.current


def offset_rows(
    group: GroupDescription,
    committed: Mapping[TopicPartition, int],
    ends: Mapping[TopicPartition, int],
) -> list[OffsetRow]:
    """Assigned partitions, then committed but unassigned ones, then members with nothing."""
    rows: list[OffsetRow] = []
    assigned: set[TopicPartition] = set()
    owners = sorted((tp, m) for m in group.members for tp in m.assignment)
    for tp, member in owners:
        assigned.add(tp)
        rows.append(
            OffsetRow(
                *tp,
                committed.get(tp),
                ends.get(tp),
                member.member_id,
                member.host,
                member.client_id,
            )
        )
    for tp in sorted(set(committed) - assigned):
        rows.append(OffsetRow(*tp, committed[tp], ends.get(tp), None, None, None))
    for member in group.members:
        if not member.assignment:
            rows.append(
                OffsetRow(None, None, None, None, member.member_id, member.host, member.client_id)
            )
    return rows


def _text(value: object) -> str:
    return MISSING if value is None else str(value)


def format_offsets(group_id: str, rows: list[OffsetRow]) -> list[str]:
    """Kafka's `--describe --offsets` table."""
    group_width = max(15, len(group_id))
    topic_width = max([15, *(len(_text(r.topic)) for r in rows)])
    id_width = max([15, *(len(_text(r.consumer_id)) for r in rows)])
    host_width = max([15, *(len(_text(r.host)) for r in rows)])

    def line(*cells: object) -> str:
        group, topic, partition, current, end, lag, consumer, host, client = map(_text, cells)
        return (
            f"{group:<{group_width}} {topic:<{topic_width}} {partition:<10} {current:<15} "
            f"{end:<15} {lag:<15} {consumer:<{id_width}} {host:<{host_width}} {client}"
        ).rstrip()

    header = line(
        "GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG",
        "CONSUMER-ID", "HOST", "CLIENT-ID",
    )  # fmt: skip
    body = [
        line(
            group_id,
            r.topic,
            r.partition,
            r.current,
            r.end,
            r.lag,
            r.consumer_id,
            r.host,
            r.client_id,
        )
        for r in rows
    ]
    return ["", header, *body]


def format_members(group: GroupDescription) -> list[str]:
    """Kafka's `--describe --members` table."""
    group_width = max(15, len(group.group_id))
    id_width = max([15, *(len(m.member_id) for m in group.members)])
    host_width = max([15, *(len(m.host) for m in group.members)])
    client_width = max([15, *(len(m.client_id) for m in group.members)])

    def line(member_id: str, host: str, client_id: str, count: str) -> str:
        return (
            f"{group.group_id if member_id != 'CONSUMER-ID' else 'GROUP':<{group_width}} "
            f"{member_id:<{id_width}} {host:<{host_width}} {client_id:<{client_width}} {count}"
        ).rstrip()

    members = sorted(group.members, key=lambda m: m.member_id)
    body = [line(m.member_id, m.host, m.client_id, str(len(m.assignment))) for m in members]
    return ["", line("CONSUMER-ID", "HOST", "CLIENT-ID", "#PARTITIONS"), *body]


def _state_notice(group: GroupDescription) -> None:
    """What Kafka's tool says about the group's state before its table."""
    if group.state == "Dead":
        raise GroupsError(f"Consumer group '{group.group_id}' does not exist.")
    if group.state == "Empty":
        print(f"Consumer group '{group.group_id}' has no active members.", file=sys.stderr)
    elif group.state in REBALANCING_STATES:
        print(f"Warning: Consumer group '{group.group_id}' is rebalancing.", file=sys.stderr)


def _describe(client: AdminClient, args: argparse.Namespace) -> None:
    group = client.describe_group(args.group)
    _state_notice(group)
    if args.members:
        if group.members:
            print("\n".join(format_members(group)))
        return
    committed = client.committed_offsets(args.group)
    partitions = set(committed) | {tp for m in group.members for tp in m.assignment}
    ends = client.list_offsets(partitions, LATEST_TIMESTAMP)
    rows = offset_rows(group, committed, ends)
    if rows:
        print("\n".join(format_offsets(args.group, rows)))


# -- reset-offsets -------------------------------------------------------------------------------


def parse_topic(text: str, counts: Mapping[str, int]) -> list[TopicPartition]:
    """``T`` (every partition of T) or ``T:P,P,...``, checked against the partition counts."""
    name, sep, listed = text.partition(":")
    if name not in counts:
        raise GroupsError(f"Topic '{name}' does not exist.")
    if not sep:
        return [(name, p) for p in range(counts[name])]
    try:
        partitions = [int(p) for p in listed.split(",") if p.strip()]
    except ValueError:
        raise ValueError(f"expected TOPIC:PARTITION,..., got {text!r}") from None
    for p in partitions:
        if not 0 <= p < counts[name]:
            raise GroupsError(f"Partition {name}-{p} does not exist.")
    return [(name, p) for p in partitions]


def parse_datetime(text: str) -> int:
    """Milliseconds since the epoch of an ISO 8601 time (local time when it has no zone)."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"--to-datetime needs an ISO 8601 time, got {text!r}") from None
    return int(moment.astimezone().timestamp() * 1000)


def plan_reset(
    args: argparse.Namespace,
    partitions: list[TopicPartition],
    committed: Mapping[TopicPartition, int],
    starts: Mapping[TopicPartition, int],
    ends: Mapping[TopicPartition, int],
    at_time: Mapping[TopicPartition, int] | None = None,
) -> dict[TopicPartition, int]:
    """The new offset per partition by the chosen rule, clamped to [log start, log end]."""
    plan = {}
    for tp in sorted(partitions):
        if tp not in starts or tp not in ends:
            raise GroupsError(f"Cannot read the offsets of partition {tp[0]}-{tp[1]}.")
        start, end = starts[tp], ends[tp]
        if args.to_earliest:
            wanted = start
        elif args.to_latest:
            wanted = end
        elif args.to_offset is not None:
            wanted = args.to_offset
        elif args.to_datetime is not None:
            found = (at_time or {}).get(tp, -1)
            wanted = end if found < 0 else found
        else:  # --shift-by, --to-current: from the committed offset
            if tp not in committed:
                raise GroupsError(
                    f"Expected a valid current offset for topic partition: {tp[0]}-{tp[1]}"
                )
            wanted = committed[tp] + (args.shift_by or 0)
        plan[tp] = min(max(wanted, start), end)
    return plan


def format_plan(group_id: str, plan: Mapping[TopicPartition, int]) -> list[str]:
    """Kafka's reset-offsets table."""

    def line(*cells: object) -> str:
        group, topic, partition, offset = (str(c) for c in cells)
        return f"{group:<30} {topic:<30} {partition:<10} {offset}".rstrip()

    rows = [line(group_id, t, p, offset) for (t, p), offset in sorted(plan.items())]
    return ["", line("GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"), *rows]


def _reset(client: AdminClient, args: argparse.Namespace) -> None:
    group = client.describe_group(args.group)
    if group.state not in INACTIVE_STATES:
        raise GroupsError(
            f"Assignments can only be reset if the group '{args.group}' is inactive, but the "
            f"current state is {group.state}."
        )
    committed = client.committed_offsets(args.group)
    if args.all_topics:
        partitions = sorted(committed)
    else:
        counts = client.partition_counts(sorted({t.partition(":")[0] for t in args.topic}))
        partitions = sorted({tp for text in args.topic for tp in parse_topic(text, counts)})
    starts = client.list_offsets(partitions, EARLIEST_TIMESTAMP)
    ends = client.list_offsets(partitions, LATEST_TIMESTAMP)
    at_time = None
    if args.to_datetime is not None:
        at_time = client.list_offsets(partitions, parse_datetime(args.to_datetime))
    plan = plan_reset(args, partitions, committed, starts, ends, at_time)
    if not args.dry_run and not args.execute:
        print(NO_EXECUTE_WARNING, file=sys.stderr)
    if args.execute and plan:
        client.commit_offsets(args.group, plan)
    print("\n".join(format_plan(args.group, plan)))


# -- entry ---------------------------------------------------------------------------------------


def _delete(client: AdminClient, args: argparse.Namespace) -> None:
    client.delete_group(args.group)
    print(f"Deletion of requested consumer groups ('{args.group}') was successful.")


def _group_id(args: argparse.Namespace) -> None:
    """Settle ``args.group`` from GROUP or --group."""
    args.group = args.group or args.name
    if not args.group:
        raise ValueError("a group is required (GROUP or --group GROUP)")


ACTIONS = {"list": _list, "describe": _describe, "reset-offsets": _reset, "delete": _delete}


def run(args: argparse.Namespace) -> int:
    """Run a `groups` action; the exit status: 0 done, 1 refused or unreachable, 2 bad
    arguments."""
    try:
        if args.action != "list":
            _group_id(args)
        with AdminClient(args.bootstrap_server, timeout=args.timeout) as client:
            ACTIONS[args.action](client, args)
    except ValueError as error:
        print(f"kafkacompat groups: {error}", file=sys.stderr)
        return 2
    except (GroupsError, AdminError) as error:
        print(f"kafkacompat groups: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        print(
            f"kafkacompat groups: cannot talk to {args.bootstrap_server}: {error}", file=sys.stderr
        )
        return 1
    return 0
