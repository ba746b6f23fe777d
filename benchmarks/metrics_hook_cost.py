"""What the metrics hooks add to one request, without sockets or storage: a micro-benchmark.

    python benchmarks/metrics_hook_cost.py [--requests 20000] [--rounds 7]

A one-message produce (one partition, one 1 KiB record, v9) goes through the real connection
loop (`_serve_requests`, over an in-memory transport) and the real `RequestPipeline` (decode,
handler, encode; the handler answers with a prepared response), with the metrics hooks
installed as `BrokerMetrics.install` installs them ("on"; also with every request timed rather
than one in `TIME_ONE_REQUEST_IN`) and without ("off"). Rounds alternate the modes; each figure
is the best round's µs per request. The hooks' own calls are timed alone too (``timeit``). Nothing is written to disk; this is for comparing code changes, not machines.
"""

from __future__ import annotations

import argparse
import sys
import time
import timeit
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kafkacompat.broker.context import RequestContext
from kafkacompat.broker.dispatch import TIME_ONE_REQUEST_IN, RequestPipeline
from kafkacompat.broker.router import Handler
from kafkacompat.broker.session import Session
from kafkacompat.ops.metrics import BrokerMetrics
from kafkacompat.protocol.framing import FrameReader
from kafkacompat.protocol.messages import produce_request, produce_response, request_header
from kafkacompat.protocol.messages.metadata_response import (
    MetadataResponse,
    MetadataResponseBroker,
    MetadataResponsePartition,
    MetadataResponseTopic,
)
from kafkacompat.protocol.messages.produce_request import (
    PartitionProduceData,
    ProduceRequest,
    TopicProduceData,
)
from kafkacompat.protocol.messages.produce_response import (
    PartitionProduceResponse,
    ProduceResponse,
    TopicProduceResponse,
)
from kafkacompat.protocol.messages.request_header import RequestHeader
from kafkacompat.protocol.record_codec import Record, encode_batch
from kafkacompat.server import connection
from kafkacompat.server.connection import _serve_requests
from kafkacompat.server.idle import IdleTimer

VERSION = 9
TOPIC = "bench"


def produce_request_value() -> ProduceRequest:
    records = encode_batch([Record(0, 1_700_000_000_000, None, b"x" * 1024)])
    partition = PartitionProduceData(index=0, records=records)
    return ProduceRequest(
        acks=1, timeout_ms=30_000, topic_data=[TopicProduceData(TOPIC, [partition])]
    )


def produce_frame() -> bytes:
    """One length-prefixed produce request frame, as a client sends it."""
    body = bytearray()
    header = RequestHeader(produce_request.API_KEY, VERSION, 1, "bench-producer")
    request_header.ENCODERS[2](header, body)
    produce_request.ENCODERS[VERSION](produce_request_value(), body)
    return len(body).to_bytes(4, "big") + bytes(body)


def produce_response_value() -> ProduceResponse:
    partition = PartitionProduceResponse(index=0, error_code=0, base_offset=41)
    return ProduceResponse(responses=[TopicProduceResponse(TOPIC, [partition])])


def metadata_response_value() -> MetadataResponse:
    """What a client's metadata refresh gets from a 3-broker cluster: one topic, 3 partitions."""
    replicas = [0, 1, 2]
    partitions = [
        MetadataResponsePartition(partition_index=i, replica_nodes=replicas, isr_nodes=replicas)
        for i in range(3)
    ]
    return MetadataResponse(
        brokers=[MetadataResponseBroker(i, "localhost", 9092 + i) for i in range(3)],
        topics=[MetadataResponseTopic(name=TOPIC, partitions=partitions)],
    )


class Transport:
    """Hands out the same request frame ``count`` times, then the client's close; drops
    responses. ``waits`` never changes: the loop yields every few requests, as under load."""

    supports_sendfile = False
    waits = 0

    def __init__(self, frame: bytes, count: int) -> None:
        self.frame = frame
        self.left = count

    async def recv(self, max_bytes: int) -> bytes:
        if not self.left:
            return b""
        self.left -= 1
        return self.frame

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        pass


class Config:
    def get_int(self, name: str) -> int:
        return {"metrics.max.partitions": 1000, "log.cleaner.threads": 1}[name]


def pipeline_and_metrics() -> tuple[RequestPipeline, BrokerMetrics]:
    response = produce_response_value()

    async def handle_produce(context: RequestContext, request: Any) -> Any:
        return response

    handler = Handler(
        produce_request.API_KEY, 0, 11, handle_produce, produce_request, produce_response
    )
    services = SimpleNamespace(security=SimpleNamespace(quotas=SimpleNamespace(active=False)))
    pipeline = RequestPipeline({handler.api_key: handler}, services)  # type: ignore[arg-type]
    broker = SimpleNamespace(
        config=Config(),
        pipeline=pipeline,
        partitions=SimpleNamespace(flush_hooks=[]),
        cleaner=SimpleNamespace(on_cleaned=None),
    )
    return pipeline, BrokerMetrics(broker)  # type: ignore[arg-type]


async def serve(pipeline: RequestPipeline, frame: bytes, count: int) -> float:
    """Seconds the connection loop takes to answer ``count`` frames."""
    client = Transport(frame, count)
    session = Session("127.0.0.1:1")
    timer = IdleTimer(trio.CancelScope())
    started = time.perf_counter()
    await _serve_requests(client, FrameReader(1 << 20), pipeline, session, timer)  # type: ignore[arg-type]
    return time.perf_counter() - started


def loop_figures(requests: int, rounds: int) -> dict[str, float]:
    """Best µs per request through the connection loop and pipeline: hooks off, on, on with
    every request timed, and hooks that do nothing (what calling and timing alone cost)."""
    frame = produce_frame()
    off, _ = pipeline_and_metrics()
    on, metrics = pipeline_and_metrics()
    metrics.install()
    empty, _ = pipeline_and_metrics()
    empty.observe_hooks.append(lambda context, request, response, elapsed: None)
    empty.connection_hooks.append(lambda api_key, queue, local, send, total: None)
    every, every_metrics = pipeline_and_metrics()
    every_metrics.install()
    pipelines = {"off": off, "on": on, "empty": empty, "every": every}
    best = dict.fromkeys(pipelines, float("inf"))
    for index in range(rounds):
        order = list(pipelines.items())
        if index % 2:
            order.reverse()
        for mode, pipeline in order:
            # "every": each request timed, as before the timing hook sampled.
            connection.TIME_ONE_REQUEST_IN = 1 if mode == "every" else TIME_ONE_REQUEST_IN
            seconds = trio.run(serve, pipeline, frame, requests)
            best[mode] = min(best[mode], seconds / requests * 1e6)
    connection.TIME_ONE_REQUEST_IN = TIME_ONE_REQUEST_IN
    # The hooks did run: every request counted, one in TIME_ONE_REQUEST_IN timed.
    assert metrics.counters.apis[0].requests == rounds * requests
    timed = -(-rounds * requests // TIME_ONE_REQUEST_IN)
    assert [h.count for h in metrics.times.apis[0]] == [timed] * 4
    assert every_metrics.times.apis[0][3].count == rounds * requests
    return best


def hook_figures(number: int) -> dict[str, float]:
    """µs per call of each hook alone, with a decoded produce request and its response."""
    _, metrics = pipeline_and_metrics()
    header = RequestHeader(produce_request.API_KEY, VERSION, 1, "bench-producer")
    context = RequestContext(None, Session("127.0.0.1:1"), header)  # type: ignore[arg-type]
    request, _ = produce_request.DECODERS[VERSION](
        memoryview(produce_frame()), 4 + len(_header_bytes(header))
    )
    response = produce_response_value()
    metadata_context = RequestContext(None, Session("127.0.0.1:1"), RequestHeader(3, 12, 1))  # type: ignore[arg-type]
    metadata = metadata_response_value()
    counters, times = metrics.counters, metrics.times
    calls = {
        "RequestCounters.observe": lambda: counters.observe(context, request, response, 0.0003),
        "  (a Metadata response)": lambda: counters.observe(
            metadata_context, None, metadata, 0.0003
        ),
        "RequestTimes.observe": lambda: times.observe(0, 0.0000001, 0.0003, 0.00002, 0.0004),
    }
    found = {}
    for name, call in calls.items():
        seconds = min(timeit.repeat(call, number=number, repeat=5))
        found[name] = seconds / number * 1e6
    return found


def _header_bytes(header: RequestHeader) -> bytes:
    out = bytearray()
    request_header.ENCODERS[2](header, out)
    return bytes(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    for name, micros in hook_figures(args.requests).items():
        print(f"{name:<28} {micros:6.2f} µs per call")
    best = loop_figures(args.requests, args.rounds)
    print(f"{'loop, hooks off':<28} {best['off']:6.2f} µs per request")
    print(f"{'loop, hooks doing nothing':<28} {best['empty']:6.2f} µs per request")
    print(f"{'loop, hooks on, all timed':<28} {best['every']:6.2f} µs per request")
    print(f"{'loop, hooks on':<28} {best['on']:6.2f} µs per request")
    print(f"{'added by the hooks':<28} {best['on'] - best['off']:6.2f} µs per request")


if __name__ == "__main__":
    main()
