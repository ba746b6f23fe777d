"""kcat (Debian's package, with its own librdkafka): the scenarios a command-line tool can express.

kcat has no admin mode, so topics with more than one partition are made with
`python -m kafkacompat topics create` (which speaks the protocol to any broker); kcat can neither
abort a transaction nor describe configs. Keys, values and headers are text on kcat's command line.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from typing import Any

from compat_tests.harness import (
    Context,
    Skip,
    check,
    expect_equal,
    run,
    wait_until,
)

MAX_BYTES = 2 * 1024 * 1024
HEADERS = [("trace", "t"), ("n", "1")]


def kcat() -> str:
    path = os.environ.get("KCAT") or shutil.which("kcat")
    if path is None:
        raise Skip("kcat is not installed")
    return path


def _tail(stderr: bytes) -> str:
    lines = [line for line in stderr.decode(errors="replace").splitlines() if line.strip()]
    return " / ".join(lines[-2:])


def produce(ctx: Context, topic: str, lines: list[str], *options: str) -> None:
    """kcat -P of ``key<TAB>value`` lines; -Z makes an empty value a null (a tombstone)."""
    command = [kcat(), "-P", "-b", ctx.bootstrap, "-t", topic, "-K", "\t", "-Z", *options]
    command += ["-X", f"message.max.bytes={MAX_BYTES}", "-X", "acks=all"]
    data = "".join(line + "\n" for line in lines).encode()
    result = subprocess.run(command, input=data, capture_output=True, timeout=30)
    check(result.returncode == 0, f"kcat -P failed: {_tail(result.stderr)}")


def consume(ctx: Context, topic: str, count: int, *options: str) -> list[dict[str, Any]]:
    command = [kcat(), "-C", "-b", ctx.bootstrap, "-t", topic, "-p", "0", "-o", "beginning"]
    command += ["-c", str(count), "-e", "-J", "-X", f"fetch.message.max.bytes={MAX_BYTES}"]
    result = subprocess.run([*command, *options], capture_output=True, timeout=30)
    check(result.returncode == 0, f"kcat -C failed: {_tail(result.stderr)}")
    return [json.loads(line) for line in result.stdout.splitlines()]


def create_topic(ctx: Context, topic: str, partitions: int) -> None:
    command = [sys.executable, "-m", "kafkacompat", "topics", "create"]
    command += ["--bootstrap-server", ctx.bootstrap, topic, "--partitions", str(partitions)]
    try:
        result = subprocess.run(command, capture_output=True, timeout=30)
    except FileNotFoundError:
        raise Skip("needs `kafkacompat topics create` for a multi-partition topic") from None
    if result.returncode != 0 and b"No module named" in result.stderr:
        raise Skip("needs `kafkacompat topics create` for a multi-partition topic")
    check(result.returncode == 0, f"topic creation failed: {_tail(result.stderr)}")


def round_trip(ctx: Context, pairs: list[tuple[str, str]], *options: str) -> None:
    topic = ctx.topic()
    headers = [arg for name, value in HEADERS for arg in ("-H", f"{name}={value}")]
    produce(ctx, topic, [f"{k}\t{v}" for k, v in pairs], *headers, *options)
    got = consume(ctx, topic, len(pairs))
    expect_equal(len(got), len(pairs), "records consumed")
    flat_headers = [item for pair in HEADERS for item in pair]
    for i, (record, (key, value)) in enumerate(zip(got, pairs, strict=True)):
        want = (i, key or None, value or None, flat_headers)
        have = (record["offset"], record["key"], record["payload"], record.get("headers"))
        expect_equal(have, want, f"record {i}")


def metadata(ctx: Context) -> None:
    topic = ctx.topic()
    produce(ctx, topic, ["k\tv"])  # auto-creates the topic
    command = [kcat(), "-L", "-b", ctx.bootstrap, "-t", topic, "-J"]
    result = subprocess.run(command, capture_output=True, timeout=30, check=True)
    described = json.loads(result.stdout)
    brokers = {b["id"] for b in described["brokers"]}
    expect_equal(len(brokers), 1, "brokers")
    topics = {t["topic"]: t for t in described["topics"]}
    check(topic in topics, "topic listed")
    partitions = topics[topic]["partitions"]
    expect_equal([p["partition"] for p in partitions], [0], "partitions")
    check(partitions[0]["leader"] in brokers, "the leader is a broker")


def keyed_headers(ctx: Context) -> None:
    round_trip(ctx, [(f"key-{i % 4}", f"value-{i}") for i in range(20)])


def codec(name: str) -> Any:
    def scenario(ctx: Context) -> None:
        pairs = [(f"k{i}", f"record {i} " + "abcdefgh" * 50) for i in range(200)]
        round_trip(ctx, pairs, "-z", name, "-X", "linger.ms=20")

    return scenario


def large_message(ctx: Context) -> None:
    value = os.urandom(450 * 1024).hex()  # 900 KiB of text: kcat's input is line-based
    round_trip(ctx, [("big", value)])


def tombstone(ctx: Context) -> None:
    round_trip(ctx, [("user-1", "alive"), ("user-1", ""), ("user-2", "x")])


_ASSIGNED = re.compile(r"assigned: (.*)")
_PARTITION = re.compile(r"\[(\d+)\]")


class Member:
    """`kcat -G`: a balanced consumer; its assignments are read from its rebalance messages."""

    def __init__(self, ctx: Context, topic: str, group: str) -> None:
        command = [kcat(), "-b", ctx.bootstrap, "-G", group, "-J", "-u"]
        command += ["-X", "auto.offset.reset=earliest"]
        command += ["-X", "session.timeout.ms=10000", "-X", "heartbeat.interval.ms=500", topic]
        self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.assigned: set[int] = set()
        self.values: list[str] = []
        self.stderr: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read_out, daemon=True).start()
        threading.Thread(target=self._read_err, daemon=True).start()

    def _read_out(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.values.append(json.loads(line)["payload"])

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            line = raw.decode(errors="replace")
            self.stderr.put(line)
            match = _ASSIGNED.search(line)
            if match:
                self.assigned = {int(p) for p in _PARTITION.findall(match[1])}
            elif "revoked" in line:
                self.assigned = set()

    def leave(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def group_rebalance(ctx: Context) -> None:
    topic, group = ctx.topic(), ctx.group()
    create_topic(ctx, topic, 2)
    first = Member(ctx, topic, group)
    second = None
    try:
        wait_until(lambda: first.assigned == {0, 1}, 30, "the first member to hold both partitions")
        second = Member(ctx, topic, group)
        wait_until(
            lambda: len(first.assigned) == 1 and first.assigned | second.assigned == {0, 1},
            30,
            "the partitions to be split",
        )
        for partition in (0, 1):
            lines = [f"k\tv{i}" for i in range(partition, 20, 2)]
            produce(ctx, topic, lines, "-p", str(partition))
        wanted = {f"v{i}" for i in range(20)}
        wait_until(lambda: set(first.values) | set(second.values) >= wanted, 30, "both halves read")
        check(first.values and second.values, "each member read its own partition")
        second.leave()
        second = None
        wait_until(lambda: first.assigned == {0, 1}, 30, "the first member to take both back")
        produce(ctx, topic, ["k\tafter"], "-p", "0")
        produce(ctx, topic, ["k\tafter"], "-p", "1")
        wait_until(lambda: first.values.count("after") == 2, 30, "records after the hand-back")
    finally:
        if second is not None:
            second.leave()
        first.leave()


def group_resume(ctx: Context) -> None:
    """kcat -G commits what it consumed when it exits (auto commit on close)."""
    topic, group = ctx.topic(), ctx.group()
    produce(ctx, topic, [f"\ta{i}" for i in range(10)])

    def consume_group(count: int) -> list[tuple[int, str]]:
        command = [kcat(), "-b", ctx.bootstrap, "-G", group, "-J", "-c", str(count)]
        command += ["-X", "auto.offset.reset=earliest", topic]
        result = subprocess.run(command, capture_output=True, timeout=40)
        check(result.returncode == 0, f"kcat -G failed: {_tail(result.stderr)}")
        records = [json.loads(line) for line in result.stdout.splitlines()]
        return [(r["offset"], r["payload"]) for r in records]

    expect_equal(consume_group(10), [(i, f"a{i}") for i in range(10)], "first member's records")
    produce(ctx, topic, [f"\tb{i}" for i in range(5)])
    expect_equal(consume_group(5), [(10 + i, f"b{i}") for i in range(5)], "resumed records")


def offsets_by_time(ctx: Context) -> None:
    """kcat cannot set a record's timestamp: records are produced 300 ms apart instead."""
    topic = ctx.topic()
    for i in range(3):
        produce(ctx, topic, [f"\tt{i}"])
        time.sleep(0.3)
    stamps = [r["ts"] for r in consume(ctx, topic, 3)]
    check(stamps[0] < stamps[1] < stamps[2], f"increasing timestamps {stamps}")

    def lookup(timestamp: int) -> str:
        command = [kcat(), "-Q", "-b", ctx.bootstrap, "-t", f"{topic}:0:{timestamp}"]
        result = subprocess.run(command, capture_output=True, timeout=30)
        check(result.returncode == 0, f"kcat -Q failed: {_tail(result.stderr)}")
        return result.stdout.decode()

    check(" offset 1" in lookup(stamps[0] + 1), f"offset 1 for ts+1: {lookup(stamps[0] + 1)!r}")
    check(" offset 0" in lookup(stamps[0]), f"offset 0 for ts: {lookup(stamps[0])!r}")


def idempotent_producer(ctx: Context) -> None:
    round_trip(ctx, [(f"k{i % 3}", f"v{i}") for i in range(200)], "-X", "enable.idempotence=true")


def transactional_producer(ctx: Context) -> None:
    """kcat commits one transaction around all its input; it cannot abort one."""
    topic = ctx.topic()
    produce(
        ctx, topic, [f"\tcommitted-{i}" for i in range(5)], "-X", f"transactional.id={ctx.prefix}"
    )
    got = consume(ctx, topic, 5, "-X", "isolation.level=read_committed")
    expect_equal(
        [r["payload"] for r in got], [f"committed-{i}" for i in range(5)], "read_committed"
    )


IMPLS = {
    "metadata": metadata,
    "keyed_headers": keyed_headers,
    "codec_gzip": codec("gzip"),
    "codec_snappy": codec("snappy"),
    "codec_lz4": codec("lz4"),
    "codec_zstd": codec("zstd"),
    "large_message": large_message,
    "tombstone": tombstone,
    "group_rebalance": group_rebalance,
    "group_resume": group_resume,
    "offsets_by_time": offsets_by_time,
    "idempotent_producer": idempotent_producer,
    "transactional_producer": transactional_producer,
}


def version() -> str:
    try:
        out = subprocess.run([kcat(), "-V"], capture_output=True, timeout=10).stdout.decode()
    except Skip:
        return "not installed"
    match = re.search(r"Version (\S+) .*librdkafka (\S+)", out)
    return f"{match[1]} (librdkafka {match[2]})" if match else out.strip()[:80]


if __name__ == "__main__":
    run(IMPLS, version)
