"""`kafkacompat topics list|create|describe|alter|delete`: topic administration without Kafka's tools.

The output of `describe` follows `kafka-topics.sh --describe`: a topic line with its overrides, then
one line per partition.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from kafkacompat.client import AdminClient, AdminError, TopicDescription
from kafkacompat.errors import ErrorCode


def add_parser(commands: Any) -> None:
    """Add the `topics` subcommand to the top-level parser's subcommands."""
    topics = commands.add_parser("topics", help="list, create, describe, alter and delete topics")
    actions = topics.add_subparsers(dest="action", required=True)

    def action(name: str, help_text: str, *, topic: bool = True) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = actions.add_parser(name, help=help_text)
        sub.add_argument(
            "--bootstrap-server",
            default="127.0.0.1:9092",
            metavar="HOST:PORT",
            help="the broker to talk to (default 127.0.0.1:9092)",
        )
        sub.add_argument("--timeout", type=float, default=30.0, help="seconds (default 30)")
        if topic:
            sub.add_argument("name", nargs="?", help="the topic (or use --topic)")
            sub.add_argument("--topic", help="the topic")
        return sub

    action("list", "list topic names", topic=False)
    create = action("create", "create a topic")
    create.add_argument("--partitions", type=int, default=-1, help="(default: the broker's)")
    create.add_argument(
        "--replication-factor", type=int, default=-1, help="(default: the broker's)"
    )
    create.add_argument(
        "--config", action="append", default=[], metavar="NAME=VALUE", help="a topic config"
    )
    create.add_argument("--if-not-exists", action="store_true", help="no error if it exists")
    create.add_argument("--validate-only", action="store_true", help="check, do not create")
    describe = action("describe", "show partitions and config overrides")
    describe.add_argument("--all-configs", action="store_true", help="show every config")
    alter = action("alter", "add partitions or change configs")
    alter.add_argument("--partitions", type=int, help="the new, larger partition count")
    alter.add_argument("--add-config", action="append", default=[], metavar="NAME=VALUE")
    alter.add_argument("--delete-config", action="append", default=[], metavar="NAME")
    delete = action("delete", "delete a topic and its data")
    delete.add_argument("--if-exists", action="store_true", help="no error if it does not exist")


def _pairs(items: list[str]) -> dict[str, str]:
    pairs = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"expected NAME=VALUE, got {item!r}")
        pairs[name.strip()] = value.strip()
    return pairs


def _join(nodes: list[int]) -> str:
    return ",".join(str(n) for n in nodes)


def format_description(topic: TopicDescription, *, all_configs: bool = False) -> str:
    overrides = ",".join(
        f"{name}={value}"
        for name, (value, source) in sorted(topic.configs.items())
        if source == "DYNAMIC_TOPIC_CONFIG"
    )
    factor = len(topic.partitions[0].replicas) if topic.partitions else 0
    lines = [
        f"Topic: {topic.name}\tTopicId: {topic.topic_id}\tPartitionCount: {len(topic.partitions)}"
        f"\tReplicationFactor: {factor}\tConfigs: {overrides}"
    ]
    lines += [
        f"\tTopic: {topic.name}\tPartition: {p.partition}\tLeader: {p.leader}"
        f"\tReplicas: {_join(p.replicas)}\tIsr: {_join(p.isr)}"
        for p in topic.partitions
    ]
    if all_configs:
        lines.append("\tAll configs:")
        lines += [
            f"\t\t{name}={value} ({source})"
            for name, (value, source) in sorted(topic.configs.items())
        ]
    return "\n".join(lines)


def _topic_name(args: argparse.Namespace) -> str:
    name: str | None = args.topic or args.name
    if not name:
        raise ValueError("a topic name is required (NAME or --topic NAME)")
    return name


def _run(client: AdminClient, args: argparse.Namespace) -> None:
    if args.action == "list":
        for name in client.list_topics():
            print(name)
        return
    name = _topic_name(args)
    if args.action == "create":
        try:
            client.create_topic(
                name,
                args.partitions,
                args.replication_factor,
                _pairs(args.config),
                validate_only=args.validate_only,
            )
        except AdminError as error:
            if not (args.if_not_exists and error.code == ErrorCode.TOPIC_ALREADY_EXISTS):
                raise
            return
        verb = "Topic creation would succeed for" if args.validate_only else "Created topic"
        print(f"{verb} {name}.")
    elif args.action == "describe":
        description = client.describe_topic(name)
        print(format_description(description, all_configs=args.all_configs))
    elif args.action == "alter":
        changes: dict[str, str | None] = dict(_pairs(args.add_config))
        changes.update(dict.fromkeys(args.delete_config))
        if args.partitions is None and not changes:
            raise ValueError("nothing to alter: give --partitions, --add-config or --delete-config")
        if args.partitions is not None:
            client.create_partitions(name, args.partitions)
        if changes:
            client.alter_topic_configs(name, changes)
        print(f"Altered topic {name}.")
    elif args.action == "delete":
        try:
            client.delete_topic(name)
        except AdminError as error:
            if not (args.if_exists and error.code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION):
                raise
            return
        print(f"Deleted topic {name}.")


def run(args: argparse.Namespace) -> int:
    """Run a `topics` action; the exit status: 0 done, 1 refused by the broker or unreachable, 2
    bad arguments."""
    try:
        with AdminClient(args.bootstrap_server, timeout=args.timeout) as client:
            _run(client, args)
    except ValueError as error:
        print(f"kafkacompat topics: {error}", file=sys.stderr)
        return 2
    except AdminError as error:
        print(f"kafkacompat topics: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        print(
            f"kafkacompat topics: cannot talk to {args.bootstrap_server}: {error}", file=sys.stderr
        )
        return 1
    return 0
