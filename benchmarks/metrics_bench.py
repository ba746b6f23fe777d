"""What metrics cost: produce throughput with the HTTP listener (the metrics hooks: requests,
request queue/send/total times, connection counting; a scrape every few seconds) on and off.

    python benchmarks/metrics_bench.py [--seconds 8] [--repeats 3] [--scrape-every 5] [--pin]
        [--source CHECKOUT] [--out FILE]

Rows: produce 1 KiB (1 partition, acks=1, the throughput producer of workloads.py) and one
message per request (linger 0, one in flight). Each repeat starts a fresh broker subprocess per
mode, alternating which mode goes first, so a noisy machine weighs on both alike; the table
shows medians of msgs/s and of the broker's CPU µs per message (utime+stime from /proc), and
on/off ratios. Results go to ``benchmarks/results/metrics-<date>.md``.
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import workloads
from broker_process import BrokerProcess, compile_package

HERE = Path(__file__).resolve().parent
TICKS = os.sysconf("SC_CLK_TCK")
_HTTP = re.compile(r"http listening on (\S+):(\d+)")
ONE_PER_REQUEST = {
    "linger.ms": 0,
    "batch.num.messages": 1,
    "max.in.flight.requests.per.connection": 1,
    "queue.buffering.max.messages": 1000,
}
MODES = {
    "off": ("-o", "group.initial.rebalance.delay.ms=0"),
    "on": ("-o", "group.initial.rebalance.delay.ms=0", "-o", "http.listener=127.0.0.1:0"),
}


def cpu_seconds(pid: int) -> float:
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def pin_process(pid: int, cpus: set[int]) -> None:
    """Pin every thread of a process (threads it starts later inherit it)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        os.sched_setaffinity(int(task.name), cpus)


def http_address(broker: BrokerProcess, timeout: float = 10) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        match = _HTTP.search(broker.log_path.read_text(errors="replace"))
        if match:
            return f"{match[1]}:{match[2]}"
        time.sleep(0.02)
    raise TimeoutError("no 'http listening on' line in the broker log")


class Scraper:
    """Scrapes /metrics every `interval` seconds, as Prometheus would, while a workload runs."""

    def __init__(self, address: str, interval: float) -> None:
        self.url = f"http://{address}/metrics"
        self.interval = interval
        self.stop = threading.Event()
        self.scrapes = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.wait(self.interval):
            with urllib.request.urlopen(self.url, timeout=10) as response:
                response.read()
            self.scrapes += 1

    def __enter__(self) -> Scraper:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop.set()
        self.thread.join(15)


Workload = Callable[[ProcessPoolExecutor, str, str, float], dict[str, float]]


def produce_1k(pool: ProcessPoolExecutor, bootstrap: str, topic: str, seconds: float) -> Any:
    return pool.submit(workloads.produce_for, bootstrap, topic, 1024, 1, 1, seconds).result()


def one_per_request(pool: ProcessPoolExecutor, bootstrap: str, topic: str, seconds: float) -> Any:
    call = pool.submit(workloads.produce_for, bootstrap, topic, 100, 1, 1, seconds, ONE_PER_REQUEST)
    return call.result()


WORKLOADS: dict[str, tuple[str, Workload]] = {
    "produce-1k": ("produce 1 KiB, 1 partition, acks=1", produce_1k),
    "single": ("one message per request (100 B, linger 0, 1 in flight)", one_per_request),
}


def measure(
    pool: ProcessPoolExecutor, mode: str, work: Workload, args: argparse.Namespace, n: int
) -> tuple[float, float, int]:
    """(msgs/s, broker CPU µs per message, scrapes) of one run on a fresh broker."""
    with tempfile.TemporaryDirectory(prefix="metrics-bench-") as tmp:
        broker = BrokerProcess(Path(tmp) / "data", *MODES[mode], source=args.source)
        broker.start()
        if args.pin:
            pin_process(broker.pid, {0})
        try:
            topic = f"bench-{mode}-{n}"
            pool.submit(workloads.create_topic, broker.bootstrap, topic, 1).result()
            before = cpu_seconds(broker.pid)
            if mode == "on":
                with Scraper(http_address(broker), args.scrape_every) as scraper:
                    result = work(pool, broker.bootstrap, topic, args.seconds)
                scrapes = scraper.scrapes
            else:
                result = work(pool, broker.bootstrap, topic, args.seconds)
                scrapes = 0
            cpu = cpu_seconds(broker.pid) - before
        finally:
            broker.stop()
    rate = result["messages"] / result["seconds"]
    return rate, cpu / result["messages"] * 1e6, scrapes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--scrape-every", type=float, default=5.0)
    parser.add_argument("--only", choices=list(WORKLOADS), action="append")
    parser.add_argument(
        "--pin",
        action="store_true",
        help="run the broker on CPU 0 and the clients on CPU 1 (same placement every run)",
    )
    parser.add_argument(
        "--source",
        type=Path,
        help="run brokers from this checkout (e.g. a `git archive` of a commit to compare)",
    )
    parser.add_argument("--out", type=Path, help="write the table here, not to results/")
    args = parser.parse_args()
    compile_package(args.source)
    load_before = os.getloadavg()[0]
    started = time.monotonic()
    rates: dict[tuple[str, str], list[float]] = {}
    cpus: dict[tuple[str, str], list[float]] = {}
    scrapes = 0
    spawn = get_context("spawn")
    if args.pin:
        pool = ProcessPoolExecutor(
            2, mp_context=spawn, initializer=os.sched_setaffinity, initargs=(0, {1})
        )
    else:
        pool = ProcessPoolExecutor(2, mp_context=spawn)
    with pool:
        for key in args.only or list(WORKLOADS):
            _label, work = WORKLOADS[key]
            for n in range(args.repeats):
                order = ("off", "on") if n % 2 == 0 else ("on", "off")
                for mode in order:
                    rate, cpu_us, scraped = measure(pool, mode, work, args, n)
                    scrapes += scraped
                    rates.setdefault((key, mode), []).append(rate)
                    cpus.setdefault((key, mode), []).append(cpu_us)
                    print(f"{key} {mode} #{n}: {rate:,.0f} msgs/s, {cpu_us:.1f} µs/msg", flush=True)
    lines = [
        f"# Metrics on vs off — {datetime.date.today()}",
        "",
        f"{args.repeats} repeats of {args.seconds:g} s per row and mode, medians; 'on' is "
        f"`http.listener` set (metrics hooks: request, record and error counters; request "
        f"queue/local/send/total times of a sample; connections) with /metrics scraped every "
        f"{args.scrape_every:g} s ({scrapes} scrapes in all)"
        f"{'; broker pinned to CPU 0, clients to CPU 1' if args.pin else ''}"
        f"{f'; brokers run from {args.source}' if args.source else ''}. Load before the run: "
        f"{load_before:.2f}; {os.cpu_count()} CPUs; {time.monotonic() - started:.0f} s.",
        "",
        "| workload | off msgs/s | on msgs/s | on/off | off broker µs/msg | on broker µs/msg | "
        "CPU on/off |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for key in args.only or list(WORKLOADS):
        label, _work = WORKLOADS[key]
        off, on = statistics.median(rates[(key, "off")]), statistics.median(rates[(key, "on")])
        cpu_off = statistics.median(cpus[(key, "off")])
        cpu_on = statistics.median(cpus[(key, "on")])
        lines.append(
            f"| {label} | {off:,.0f} | {on:,.0f} | {on / off:.3f} | {cpu_off:.1f} | "
            f"{cpu_on:.1f} | {cpu_on / cpu_off:.3f} |"
        )
    lines += [
        "",
        f"Per repeat (each repeat runs both modes back to back; load after the run: "
        f"{os.getloadavg()[0]:.2f}):",
        "",
        "| workload | off msgs/s | on msgs/s | on/off per repeat | spread of off (max/min) |",
        "|---|---|---|---|---:|",
    ]
    for key in args.only or list(WORKLOADS):
        offs, ons = rates[(key, "off")], rates[(key, "on")]
        paired = sorted(b / a for a, b in zip(offs, ons, strict=True))
        lines.append(
            f"| {key} | {', '.join(f'{r:,.0f}' for r in offs)} | "
            f"{', '.join(f'{r:,.0f}' for r in ons)} | median {statistics.median(paired):.3f} "
            f"({paired[0]:.3f}-{paired[-1]:.3f}) | {max(offs) / min(offs):.2f} |"
        )
    report = "\n".join(lines) + "\n"
    print(report)
    out = args.out or HERE / "results" / f"metrics-{datetime.date.today()}.md"
    out.parent.mkdir(exist_ok=True)
    out.write_text(report)
    print(f"written to {out}")


if __name__ == "__main__":
    main()
