"""What the metrics hooks cost one running broker: the hooks switched off and on in place, every
few seconds, under one steady producer.

    python benchmarks/metrics_toggle_bench.py [--windows 16] [--window 2] [--pin] [--source DIR]
        [--only single|produce-1k] [--switch all|counting|timing]

Separate broker processes (`metrics_bench.py`) differ from one start to the next by more than
the 1-3% looked for here. So one broker (in this process, on its own thread, the HTTP listener
set so the metrics are installed) serves one producer (a child process) the whole time, and the
hooks are put in and taken out of the lists the pipeline and the connection loops read,
alternating off/on, on/off (ABBA). Each window's cost is the broker thread's CPU time
(`time.thread_time`, read on the broker's loop as the hooks are switched) per record appended
in it (the partition's end offset, read at the same moment). No scrapes: the hooks only.
Rows as `metrics_bench.py`: produce 1 KiB, one message per request.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import workloads
from metrics_bench import ONE_PER_REQUEST

if TYPE_CHECKING:
    from kafkacompat.testing import BrokerThread

WORKLOADS: dict[str, tuple[str, int, dict[str, Any] | None]] = {
    "produce-1k": ("produce 1 KiB, 1 partition, acks=1", 1024, None),
    "single": ("one message per request (100 B, linger 0, 1 in flight)", 100, ONE_PER_REQUEST),
}
WARM_UP = 3.0


class Switch:
    """Puts the broker's metrics hooks in or takes them out, on its loop, and reads the broker
    thread's CPU seconds and the partition's end offset at that moment."""

    def __init__(self, broker: BrokerThread, topic: str, switched: str) -> None:
        self.broker = broker
        self.topic = topic
        pipeline = broker.running.broker.pipeline
        self.observe, self.connection = pipeline.observe_hooks, pipeline.connection_hooks
        self.hooks = (list(self.observe), list(self.connection))
        assert all(self.hooks), "the HTTP listener installs the metrics hooks"
        # Hooks left on throughout: the pipeline's (counting) or the connection loop's (timing).
        if switched == "timing":
            self.observe = []
        elif switched == "counting":
            self.connection = []

    def __call__(self, on: bool) -> tuple[float, int]:
        return self.broker.call(self._switch, on)

    async def _switch(self, on: bool) -> tuple[float, int]:
        self.observe[:] = self.hooks[0] if on else []
        self.connection[:] = self.hooks[1] if on else []
        partition = self.broker.running.broker.partitions.partition_or_none(self.topic, 0)
        assert partition is not None
        return time.thread_time(), partition.high_watermark


def measure(
    pool: ProcessPoolExecutor, key: str, args: argparse.Namespace
) -> dict[str, list[float]]:
    """µs of broker CPU per record of each window, by mode."""
    _label, size, settings = WORKLOADS[key]
    from kafkacompat.testing import local_config, running_broker

    found: dict[str, list[float]] = {"off": [], "on": []}
    with tempfile.TemporaryDirectory(prefix="metrics-toggle-") as tmp:
        config = local_config(Path(tmp) / "data", settings={"http.listener": "127.0.0.1:0"})
        with running_broker(config) as broker:
            topic = f"toggle-{key}"
            pool.submit(workloads.create_topic, broker.bootstrap, topic, 1).result()
            switch = Switch(broker, topic, args.switch)
            seconds = WARM_UP + args.windows * args.window + 1.0
            producing = pool.submit(
                workloads.produce_for, broker.bootstrap, topic, size, 1, 1, seconds, settings
            )
            time.sleep(WARM_UP)
            modes = [("off", "on") if n % 2 == 0 else ("on", "off") for n in range(args.windows)]
            order = [mode for pair in modes for mode in pair][: args.windows]
            cpu, offset = switch(order[0] == "on")
            for index, mode in enumerate(order):
                time.sleep(args.window)
                following = order[index + 1] if index + 1 < len(order) else "on"
                cpu_after, offset_after = switch(following == "on")
                records = offset_after - offset
                assert records > 0, "the producer stalled"
                found[mode].append((cpu_after - cpu) / records * 1e6)
                cpu, offset = cpu_after, offset_after
            producing.result()
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--windows", type=int, default=16, help="windows per row (even)")
    parser.add_argument("--window", type=float, default=2.0, help="seconds per window")
    parser.add_argument("--only", choices=list(WORKLOADS), action="append")
    parser.add_argument(
        "--pin", action="store_true", help="the broker on CPU 0, the producer on CPU 1"
    )
    parser.add_argument(
        "--switch",
        choices=("all", "counting", "timing"),
        default="all",
        help="which hooks to switch: all, the pipeline's counting only, the loop's timing only",
    )
    parser.add_argument(
        "--source", type=Path, help="the checkout whose package to run (default: this one)"
    )
    args = parser.parse_args()
    sys.path.insert(0, str(args.source or Path(__file__).resolve().parent.parent))
    spawn = get_context("spawn")
    if args.pin:
        os.sched_setaffinity(0, {0})
        pool = ProcessPoolExecutor(
            1, mp_context=spawn, initializer=os.sched_setaffinity, initargs=(0, {1})
        )
    else:
        pool = ProcessPoolExecutor(1, mp_context=spawn)
    load_before = os.getloadavg()[0]
    lines = [
        f"{args.windows} windows of {args.window:g} s per row, hooks off and on alternately "
        f"(ABBA) in one broker{'; broker on CPU 0, producer on CPU 1' if args.pin else ''}"
        f"{f'; package from {args.source}' if args.source else ''}"
        f"{'' if args.switch == 'all' else f'; only the {args.switch} hooks switched'}. "
        f"Load before: {load_before:.2f}.",
        "",
        "| workload | off µs/record | on µs/record | on/off (medians) | on/off (pairs: median, "
        "range) |",
        "|---|---:|---:|---:|---|",
    ]
    with pool:
        for key in args.only or list(WORKLOADS):
            found = measure(pool, key, args)
            off, on = found["off"], found["on"]
            pairs = sorted(b / a for a, b in zip(off, on, strict=False))
            print(f"{key} off: {', '.join(f'{v:.2f}' for v in off)}", flush=True)
            print(f"{key} on:  {', '.join(f'{v:.2f}' for v in on)}", flush=True)
            lines.append(
                f"| {WORKLOADS[key][0]} | {statistics.median(off):.2f} | "
                f"{statistics.median(on):.2f} | "
                f"{statistics.median(on) / statistics.median(off):.3f} | "
                f"{statistics.median(pairs):.3f} ({pairs[0]:.3f}-{pairs[-1]:.3f}) |"
            )
    lines.append("")
    lines.append(f"Load after: {os.getloadavg()[0]:.2f}.")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
