"""Start-up benchmark: from starting a fresh broker to its first acknowledged produce.

Measured the way the pytest plugin's `kafka_broker` fixture starts it (`KafkaBroker.start()`),
in-process and as a `kafkacompat serve --dev` subprocess; the produce is a raw Produce request
(acks=-1, auto-created topic) so no client library start-up is counted, and then again with
kafka-python's KafkaProducer (what a user's test pays). Also the idle resident memory of a
subprocess broker (VmRSS from /proc), fresh and after the produce.

    python benchmarks/startup_bench.py [--runs 10]
"""

from __future__ import annotations

import argparse
import socket
import statistics
import struct
import tempfile
import time
from pathlib import Path

from broker_process import compile_package

from kafkacompat.protocol.messages import (
    metadata_request,
    produce_request,
    produce_response,
    request_header,
)
from kafkacompat.protocol.messages.metadata_request import MetadataRequest, MetadataRequestTopic
from kafkacompat.protocol.messages.produce_request import (
    PartitionProduceData,
    ProduceRequest,
    TopicProduceData,
)
from kafkacompat.protocol.messages.request_header import RequestHeader
from kafkacompat.protocol.record_codec import Record, encode_batch
from kafkacompat.testing import BrokerMode, KafkaBroker

PRODUCE = 0
PRODUCE_VERSION = 7
METADATA = 3
METADATA_VERSION = 4


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def _read_exactly(sock: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("closed by the broker")
        data += chunk
    return bytes(data)


def _frame(api_key: int, version: int, encode: object, request: object) -> bytes:
    frame = bytearray()
    request_header.ENCODERS[1](RequestHeader(api_key, version, 1, "bench"), frame)
    encode(request, frame)  # type: ignore[operator]
    return struct.pack(">i", len(frame)) + frame


def produce_raw(bootstrap: str, topic: str) -> None:
    """Metadata v4 (which auto-creates the topic, as clients do), then Produce v7 (acks=-1)."""
    host, _, port = bootstrap.rpartition(":")
    metadata = MetadataRequest([MetadataRequestTopic(name=topic)], allow_auto_topic_creation=True)
    batch = encode_batch([Record(0, int(time.time() * 1000), b"k", b"v")])
    request = ProduceRequest(
        acks=-1,
        timeout_ms=10000,
        topic_data=[TopicProduceData(topic, [PartitionProduceData(0, batch)])],
    )
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(_frame(METADATA, METADATA_VERSION, metadata_request.ENCODERS[4], metadata))
        _read_exactly(sock, struct.unpack(">i", _read_exactly(sock, 4))[0])
        frame = _frame(PRODUCE, PRODUCE_VERSION, produce_request.ENCODERS[7], request)
        for _ in range(100):
            sock.sendall(frame)
            (size,) = struct.unpack(">i", _read_exactly(sock, 4))
            body = memoryview(_read_exactly(sock, size))[4:]  # response header v0
            response, _ = produce_response.DECODERS[PRODUCE_VERSION](body, 0)
            code = response.responses[0].partition_responses[0].error_code
            if code == 0:
                return
            time.sleep(0.005)
    raise RuntimeError(f"produce was never acknowledged: error {code}")


def produce_kafka_python(bootstrap: str, topic: str) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    producer.send(topic, key=b"k", value=b"v").get(timeout=20)
    producer.close(timeout=5)


def one_run(mode: BrokerMode, client: str) -> tuple[float, float, int, int]:
    """(seconds to listening, seconds to first ack, RSS idle fresh, RSS idle after produce)."""
    with tempfile.TemporaryDirectory() as tmp:
        broker = KafkaBroker(Path(tmp) / "data", mode=mode)
        began = time.perf_counter()
        broker.start()
        listening = time.perf_counter() - began
        (produce_raw if client == "raw" else produce_kafka_python)(broker.bootstrap, "bench")
        acked = time.perf_counter() - began
        fresh = after = 0
        if mode == "subprocess":
            after = rss_kib(broker.process.pid)
        broker.stop()
        if mode == "subprocess":
            broker.start()
            time.sleep(0.5)
            fresh = rss_kib(broker.process.pid)
            broker.stop()
        return listening, acked, fresh, after


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    compile_package()
    print(
        f"{'mode':<11} {'client':<13} {'listening ms':>13} {'first ack ms':>13} (median of {args.runs})"
    )
    for mode in ("inprocess", "subprocess"):
        for client in ("raw", "kafka-python"):
            runs = [one_run(mode, client) for _ in range(args.runs)]  # type: ignore[arg-type]
            listening = statistics.median(r[0] for r in runs) * 1000
            acked = statistics.median(r[1] for r in runs) * 1000
            print(f"{mode:<11} {client:<13} {listening:>13.1f} {acked:>13.1f}")
            if mode == "subprocess" and client == "raw":
                fresh = statistics.median(r[2] for r in runs) / 1024
                after = statistics.median(r[3] for r in runs) / 1024
                print(
                    f"  subprocess broker idle RSS: {fresh:.1f} MiB fresh, {after:.1f} MiB after a produce"
                )


if __name__ == "__main__":
    main()
