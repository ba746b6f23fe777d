"""`kafkacompat cluster`: a local cluster in the foreground — an etcd (from PATH) and N brokers
on consecutive ports, each a `kafkacompat serve` process with its own data directory and log —
until Ctrl-C."""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import threading
from pathlib import Path

__all__ = ["add_parser", "run"]


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "cluster",
        help="run a local cluster: etcd and N brokers, in the foreground",
        description=__doc__,
    )
    parser.add_argument("--brokers", type=int, default=3, help="how many brokers (default 3)")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path("kafkacompat-cluster"),
        help="where etcd's and every broker's data live (default ./kafkacompat-cluster)",
    )
    parser.add_argument(
        "--port", type=int, default=9092, help="the first broker's port; the others follow"
    )
    parser.add_argument(
        "-o",
        "--override",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a broker setting by its Kafka name, for every broker (repeatable)",
    )


def run(args: argparse.Namespace) -> int:
    from kafkacompat.testing_cluster import LocalCluster

    if shutil.which("etcd") is None:
        print("kafkacompat cluster: etcd is not installed (Debian: etcd-server)", file=sys.stderr)
        return 1
    if args.brokers < 1:
        print("kafkacompat cluster: --brokers must be at least 1", file=sys.stderr)
        return 2
    settings: dict[str, int | bool | str] = {}
    for item in args.override:
        name, sep, value = item.partition("=")
        if not sep:
            print(
                f"kafkacompat cluster: --override needs NAME=VALUE, got {item!r}", file=sys.stderr
            )
            return 2
        settings[name.strip()] = value.strip()
    cluster = LocalCluster(
        args.data_dir.resolve(), args.brokers, settings, first_port=args.port, dev=False
    )
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        cluster.start()
    except (OSError, RuntimeError, TimeoutError) as exc:
        cluster.stop()
        print(f"kafkacompat cluster: {exc}", file=sys.stderr)
        return 1
    try:
        print(f"etcd: {cluster.etcd.url} (data in {cluster.etcd.data_dir})")
        for node_id, broker in cluster.brokers.items():
            print(f"broker {node_id}: {broker.bootstrap} (log {broker.log_path})")
        print(f"bootstrap servers: {cluster.bootstrap}")
        print("Ctrl-C stops every broker and etcd", flush=True)
        stop.wait()
    finally:
        for broker in cluster.brokers.values():
            broker.stop()
        cluster.etcd.stop()
    return 0
