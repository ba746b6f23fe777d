"""`kafkacompat serve`: run a broker from the command line (and `topics`, `groups`, `top` and
`faults`: see cli_topics, cli_groups, cli_top and cli_faults)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

import trio

from kafkacompat import __version__
from kafkacompat.cli_cluster import add_parser as add_cluster_parser
from kafkacompat.cli_cluster import run as run_cluster
from kafkacompat.cli_faults import add_parser as add_faults_parser
from kafkacompat.cli_faults import run as run_faults
from kafkacompat.cli_groups import add_parser as add_groups_parser
from kafkacompat.cli_groups import run as run_groups
from kafkacompat.cli_top import add_parser as add_top_parser
from kafkacompat.cli_top import run as run_top
from kafkacompat.cli_topics import add_parser as add_topics_parser
from kafkacompat.cli_topics import run as run_topics
from kafkacompat.config import (
    DEFAULT_PORT,
    DEV_OVERRIDES,
    Config,
    ConfigError,
    HostPort,
    parse_setting,
    read_properties,
)

log = logging.getLogger("kafkacompat")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kafkacompat", description="A Kafka-compatible broker.")
    parser.add_argument("--version", action="version", version=f"kafkacompat {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run a broker")
    serve.add_argument(
        "--listen",
        default=f"127.0.0.1:{DEFAULT_PORT}",
        help="HOST:PORT to listen on; port 0 picks a free port (default 127.0.0.1:9092)",
    )
    serve.add_argument(
        "--advertised-listener",
        help="HOST:PORT clients are told to connect to (default: the listen address)",
    )
    serve.add_argument(
        "--data-dir", type=Path, help="where data lives (default ./kafkacompat-data)"
    )
    serve.add_argument("--node-id", type=int, help="this broker's node id (default 1)")
    serve.add_argument("--cluster-id", help="cluster id (default: generated on first start)")
    serve.add_argument(
        "--metadata-store",
        metavar="etcd://HOST:PORT[,HOST:PORT...][/PREFIX]",
        help="run as a broker of the cluster kept in this etcd (metadata.store.url); "
        "default: a single broker",
    )
    serve.add_argument(
        "--config",
        type=Path,
        help="a server.properties-style file; its settings come before --override",
    )
    serve.add_argument(
        "-o",
        "--override",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a broker setting by its Kafka name, e.g. -o num.partitions=3 (repeatable)",
    )
    serve.add_argument(
        "--dev",
        action="store_true",
        help=(
            "settings for tests and local use: group.initial.rebalance.delay.ms=0, "
            "log.segment.bytes=16 MiB, no fsync (log.flush.interval.* at their maximum)"
        ),
    )
    serve.add_argument(
        "--emulate-kafka",
        metavar="RELEASE",
        help="serve only the API versions this Kafka release served, e.g. 2.8 (0.11 to 4.0)",
    )
    serve.add_argument(
        "--max-version",
        action="append",
        default=[],
        metavar="API=N",
        help="serve API (Kafka's name, e.g. Fetch) up to version N at most (repeatable)",
    )
    serve.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    serve.add_argument(
        "--add-scram",
        action="append",
        default=[],
        metavar="MECHANISM=[name=USER,password=PASSWORD]",
        help="create or replace a SCRAM user before start, as kafka-storage format --add-scram "
        "(optional iterations=, salt=; repeatable)",
    )
    add_topics_parser(commands)
    add_groups_parser(commands)
    add_cluster_parser(commands)
    add_top_parser(commands)
    add_faults_parser(commands)
    return parser


def config_from_args(args: argparse.Namespace) -> Config:
    """Merge, lowest first: defaults, --dev, the --config file, the flags, --override; the
    emulated release and the per-API caps are checked here, so a typo fails before start-up."""
    from kafkacompat.broker.api_versions import (
        EMULATE_SETTING,
        MAX_VERSIONS_SETTING,
        check_version_settings,
    )
    from kafkacompat.storage.log_dirs import parse_log_dirs

    settings: dict[str, int | bool | str] = dict(DEV_OVERRIDES) if args.dev else {}
    file_values = read_properties(args.config) if args.config else {}
    structural = {
        "listeners": file_values.pop("listeners", None),
        "advertised.listeners": file_values.pop("advertised.listeners", None),
        "log.dirs": file_values.pop("log.dirs", None) or file_values.pop("log.dir", None),
        "node.id": file_values.pop("node.id", None) or file_values.pop("broker.id", None),
        "cluster.id": file_values.pop("cluster.id", None),
    }
    for name, text in file_values.items():
        settings[name] = parse_setting(name, text)
    if args.metadata_store:
        settings["metadata.store.url"] = args.metadata_store
    if args.emulate_kafka is not None:
        settings[EMULATE_SETTING] = args.emulate_kafka
    if args.max_version:
        settings[MAX_VERSIONS_SETTING] = ",".join(args.max_version)
    for item in args.override:
        name, sep, text = item.partition("=")
        if not sep:
            raise ConfigError(f"--override needs NAME=VALUE, got {item!r}")
        settings[name.strip()] = parse_setting(name.strip(), text)
    listen = args.listen if args.listen != f"127.0.0.1:{DEFAULT_PORT}" else None
    if listen is None and _named_listeners(structural["listeners"]):
        # Several listeners, or one that is not PLAINTEXT: Kafka's settings as they are.
        settings["listeners"] = structural.pop("listeners") or ""
        if structural["advertised.listeners"]:
            settings["advertised.listeners"] = structural.pop("advertised.listeners") or ""
    advertised = args.advertised_listener or structural.get("advertised.listeners")
    if structural["log.dirs"] and "log.dirs" not in settings:
        settings["log.dirs"] = structural["log.dirs"]
    # The first of several log directories holds topic metadata and state, as in Kafka.
    log_dirs = parse_log_dirs(str(settings.get("log.dirs", "")))
    data_dir = args.data_dir or (log_dirs[0] if log_dirs else "kafkacompat-data")
    node_id = args.node_id if args.node_id is not None else int(structural["node.id"] or 1)
    config = Config(
        listen=HostPort.parse(listen or structural.get("listeners") or args.listen),
        advertised=HostPort.parse(advertised) if advertised else None,
        data_dir=Path(data_dir),
        node_id=node_id,
        cluster_id=args.cluster_id or structural["cluster.id"],
        settings=settings,
    )
    check_version_settings(config)
    return config


def _named_listeners(text: str | None) -> bool:
    """Whether a ``listeners`` value needs more than ``--listen`` can say."""
    if not text:
        return False
    entries = [e.strip() for e in text.split(",") if e.strip()]
    return len(entries) > 1 or not entries[0].upper().startswith("PLAINTEXT://")


def _add_scram_users(config: Config, arguments: list[str]) -> None:
    """The --add-scram users, written into the data directory before the broker opens it."""
    if not arguments:
        return
    from kafkacompat.security.scram_users import add_scram_users, parse_add_scram

    add_scram_users(config.data_dir, [parse_add_scram(text) for text in arguments])


#: The longest a cluster member spends handing its leadership away before it stops anyway.
CONTROLLED_SHUTDOWN_SECONDS = 15


async def run_until_signalled(config: Config) -> None:
    """Serve until SIGINT or SIGTERM, then shut down cleanly."""
    from kafkacompat.server.listener import serve

    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            running = await nursery.start(serve, config)
            async for signum in signals:
                log.info("received %s, shutting down", signal.Signals(signum).name)
                cluster = running.broker.cluster
                if cluster is not None and config.get_bool("controlled.shutdown.enable"):
                    # Still serving meanwhile: clients are redirected, not failed.
                    with trio.move_on_after(CONTROLLED_SHUTDOWN_SECONDS):
                        await cluster.controlled_shutdown()
                nursery.cancel_scope.cancel()
                break


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "topics":
        return run_topics(args)
    if args.command == "groups":
        return run_groups(args)
    if args.command == "cluster":
        return run_cluster(args)
    if args.command == "top":
        return run_top(args)
    if args.command == "faults":
        return run_faults(args)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        config = config_from_args(args)
        _add_scram_users(config, args.add_scram)
        trio.run(run_until_signalled, config)
    except BaseException as exc:  # a bad setting or a busy port: one line, no traceback
        cause = _sole_cause(exc)
        if isinstance(cause, ConfigError):
            print(f"kafkacompat: {cause}", file=sys.stderr)
            return 2
        if isinstance(cause, OSError):
            print(f"kafkacompat: {cause}", file=sys.stderr)
            return 1
        raise
    return 0


def _sole_cause(exc: BaseException) -> BaseException:
    """The one exception inside nested exception groups (Trio's nurseries wrap what fails at
    start), or ``exc`` itself."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc
