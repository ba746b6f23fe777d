"""Produce throughput while 500 idle consumers long-poll other partitions (`run.py` stage
``idle-pollers``).

A broker that wakes every parked fetch on every append pays for each idle consumer on each
produce request; one that wakes only the fetches waiting on the appended partition does not.
The pollers are raw Kafka connections from one asyncio process (plain sockets, frames encoded
once by our codecs), each re-sending a Fetch v11 (max_wait_ms=500, min_bytes=1, isolation
level 0) for its own partition of an idle topic at the log end offset as soon as the empty
answer arrives; meanwhile a confluent-kafka producer (`workloads.produce_for`) writes 1 KiB
messages, acks=1, to a one-partition topic.
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
import tempfile
import time
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any

import workloads
from workloads import topic_name

if TYPE_CHECKING:
    from targets import Target

POLLERS = 500
MAX_WAIT_MS = 500
SIZE = 1024
FETCH_VERSION = 11  # topics by name (v13+ use topic ids), non-flexible headers
SIZE_PREFIX = struct.Struct(">i")
#: Partition errors a just-created topic may answer with until every partition is ready.
RETRIABLE = {3, 5, 6}  # UNKNOWN_TOPIC_OR_PARTITION, LEADER_NOT_AVAILABLE, NOT_LEADER_OR_FOLLOWER


def fetch_frame(topic: str, partition: int, offset: int) -> bytes:
    """A size-prefixed Fetch v11 for one partition, encoded by our generated codecs."""
    from kafkacompat.protocol.headers import request_header_version
    from kafkacompat.protocol.messages import fetch_request, request_header
    from kafkacompat.protocol.messages.fetch_request import (
        FetchPartition,
        FetchRequest,
        FetchTopic,
    )
    from kafkacompat.protocol.messages.request_header import RequestHeader

    request = FetchRequest(
        replica_id=-1,
        max_wait_ms=MAX_WAIT_MS,
        min_bytes=1,
        max_bytes=1 << 20,
        isolation_level=0,
        session_id=0,
        session_epoch=-1,  # a full fetch, no fetch session
        topics=[
            FetchTopic(
                topic=topic,
                partitions=[
                    FetchPartition(
                        partition=partition, fetch_offset=offset, partition_max_bytes=1 << 20
                    )
                ],
            )
        ],
    )
    body = bytearray()
    header = RequestHeader(1, FETCH_VERSION, partition, "idle-poller")
    request_header.ENCODERS[request_header_version(1, FETCH_VERSION)](header, body)
    fetch_request.ENCODERS[FETCH_VERSION](request, body)
    return SIZE_PREFIX.pack(len(body)) + body


class _State:
    def __init__(self, pollers: int) -> None:
        self.waiting_first = pollers
        self.all_parked = asyncio.Event()
        self.polls = 0
        self.early = 0  # answered well before max_wait_ms without data
        self.records = 0  # answers carrying data (nobody writes to the idle topic)
        self.retries = 0
        self.counting = False


async def _poller(
    host: str, port: int, topic: str, partition: int, state: _State, connecting: asyncio.Semaphore
) -> None:
    from kafkacompat.protocol.messages import fetch_response

    async with connecting:  # a few connections at a time: do not flood the accept backlog
        reader, writer = await asyncio.open_connection(host, port)
    writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        offset = 0
        frame = fetch_frame(topic, partition, offset)
        first = True
        while True:
            sent = time.monotonic()
            writer.write(frame)
            (size,) = SIZE_PREFIX.unpack(await reader.readexactly(4))
            body = memoryview(await reader.readexactly(size))
            waited = time.monotonic() - sent
            # Response header v0: the correlation id only (= the partition here).
            response, _ = fetch_response.DECODERS[FETCH_VERSION](body, 4)
            if response.error_code:
                raise RuntimeError(f"fetch failed with error {response.error_code}")
            data = response.responses[0].partitions[0]
            if data.error_code in RETRIABLE and first:
                state.retries += 1
                await asyncio.sleep(0.05)
                continue
            if data.error_code:
                raise RuntimeError(f"partition {partition}: fetch error {data.error_code}")
            if data.high_watermark != offset:
                offset = data.high_watermark  # park at the log end offset
                frame = fetch_frame(topic, partition, offset)
            if state.counting:
                state.polls += 1
                if data.records:
                    state.records += 1
                elif waited < MAX_WAIT_MS / 1000 * 0.8:
                    state.early += 1
            if first:
                first = False
                state.waiting_first -= 1
                if state.waiting_first == 0:
                    state.all_parked.set()
    finally:
        writer.close()


async def _poll_all(
    bootstrap: str, topic: str, pollers: int, ready: str, stop: str, limit: float
) -> dict[str, float]:
    host, _, port = bootstrap.rpartition(":")
    state = _State(pollers)
    connecting = asyncio.Semaphore(64)
    tasks = [
        asyncio.create_task(_poller(host, int(port), topic, p, state, connecting))
        for p in range(pollers)
    ]
    deadline = time.monotonic() + limit
    try:
        parked = asyncio.create_task(state.all_parked.wait())
        done, _ = await asyncio.wait(
            [parked, *tasks], timeout=60, return_when=asyncio.FIRST_COMPLETED
        )
        for task in done:
            if task is not parked:
                task.result()  # a poller that ended early raises its error here
        if parked not in done:
            raise TimeoutError(f"{state.waiting_first} of {pollers} pollers never got an answer")
        state.counting = True
        start = time.monotonic()
        Path(ready).touch()
        while not os.path.exists(stop) and time.monotonic() < deadline:
            for task in tasks:
                if task.done():
                    task.result()
                    raise RuntimeError("a poller stopped")
            await asyncio.sleep(0.01)
        elapsed = time.monotonic() - start
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return {
        "pollers": pollers,
        "seconds": elapsed,
        "polls": state.polls,
        "early": state.early,
        "records": state.records,
        "retries": state.retries,
    }


def poll_idle_partitions(
    bootstrap: str, topic: str, pollers: int, ready: str, stop: str, limit: float = 300
) -> dict[str, float]:
    """Keep one long-poll parked per partition 0..pollers-1 of `topic` until `stop` exists.

    Touches `ready` once every poller has had its first answer (so all are parked at the log
    end); returns the polls answered from then on, and how many came back early or with data.
    """
    return asyncio.run(_poll_all(bootstrap, topic, pollers, ready, stop, limit))


def _wait_ready(ready: Path, pollers: Future[Any], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not ready.exists():
        if pollers.done():
            pollers.result()  # raises the poller process's error
            raise RuntimeError("the pollers stopped before they were ready")
        if time.monotonic() > deadline:
            raise TimeoutError("the idle pollers did not get ready")
        time.sleep(0.01)


def idle_poller_rows(suite: Any, target: Target) -> None:
    """Idle broker CPU with 500 parked long-polls, then 1 KiB produce throughput beside them."""

    seconds = suite.args.seconds
    idle_seconds = 1.0 if suite.args.quick else 2.0
    idle_topic = topic_name("idle")
    produce_topic = topic_name("idle-produce")
    label = f"produce 1 KiB, 1 partition, acks=1, {POLLERS} idle consumers long-polling other partitions"
    try:
        suite.run(workloads.create_topic, target.bootstrap, idle_topic, POLLERS)
        suite.run(workloads.create_topic, target.bootstrap, produce_topic, 1)
        with tempfile.TemporaryDirectory() as tmp:
            ready, stop = Path(tmp) / "ready", Path(tmp) / "stop"
            pollers = suite.pool.submit(
                poll_idle_partitions, target.bootstrap, idle_topic, POLLERS, str(ready), str(stop)
            )
            try:
                _wait_ready(ready, pollers)
                cpu_before = target.cpu_seconds()
                time.sleep(idle_seconds)
                cpu_after = target.cpu_seconds()
                if cpu_before is not None and cpu_after is not None:
                    suite.row(
                        "idle-pollers-cpu",
                        f"broker CPU with {POLLERS} long-polls parked, nothing produced",
                        "% of a core",
                        higher=False,
                    ).add(target.name, (cpu_after - cpu_before) / idle_seconds * 100)
                suite.rate(
                    target,
                    "idle-pollers-1024",
                    label,
                    "msgs/s",
                    lambda: suite.run(
                        workloads.produce_for, target.bootstrap, produce_topic, SIZE, 1, 1, seconds
                    ),
                )
            finally:
                stop.touch()
            polled = pollers.result(60)
        suite.notes.append(
            f"{POLLERS} idle pollers, {target.name}: {polled['polls'] / polled['seconds']:,.0f} "
            f"empty answers/s (~{POLLERS * 1000 / MAX_WAIT_MS:,.0f} if each waits its "
            f"{MAX_WAIT_MS} ms), {polled['early']} early, {polled['records']} with data"
        )
    except Exception as exc:
        if target.kind == "kafkacompat":
            raise
        suite.notes.append(f"idle pollers: {target.name} could not run the row ({exc!r})")
    finally:
        for topic in (idle_topic, produce_topic):
            try:
                suite.run(workloads.delete_topic, target.bootstrap, topic)
            except Exception as exc:
                suite.notes.append(f"idle pollers: deleting {topic} on {target.name}: {exc!r}")
