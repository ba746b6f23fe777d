"""How fast the generated message codecs decode (and encode) typical messages.

Compares against kafka-python's protocol classes for the same version where it supports it.

    python benchmarks/codec_bench.py [--repeat 7]

Each figure is the best of ``--repeat`` timeit runs, each run long enough (timeit's autorange) to
be measurable; record data is opaque bytes to the codec, so its content does not matter here.
"""

from __future__ import annotations

import argparse
import os
import timeit
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kafkacompat.protocol.messages import metadata_response, produce_request

warnings.filterwarnings("ignore", category=DeprecationWarning)
try:
    from kafka.protocol.metadata import MetadataResponse as KpMetadataResponse
    from kafka.protocol.producer import ProduceRequest as KpProduceRequest
except ImportError:  # kafka-python is optional for this benchmark
    KpMetadataResponse = KpProduceRequest = None


def metadata_v12(brokers: int = 3, topics: int = 50, partitions: int = 6) -> Any:
    m = metadata_response
    return m.MetadataResponse(
        throttle_time_ms=0,
        brokers=[
            m.MetadataResponseBroker(i, f"broker-{i}.kafka.internal", 9092, f"rack-{i}")
            for i in range(brokers)
        ],
        cluster_id="kafkacompat-cluster-0001",
        controller_id=0,
        topics=[
            m.MetadataResponseTopic(
                error_code=0,
                name=f"service.events.topic-{t:03d}",
                topic_id=uuid.UUID(int=t + 1),
                is_internal=False,
                partitions=[
                    m.MetadataResponsePartition(
                        error_code=0,
                        partition_index=p,
                        leader_id=p % brokers,
                        leader_epoch=3,
                        replica_nodes=[(p + r) % brokers for r in range(brokers)],
                        isr_nodes=[(p + r) % brokers for r in range(brokers)],
                        offline_replicas=[],
                    )
                    for p in range(partitions)
                ],
                topic_authorized_operations=-(2**31),
            )
            for t in range(topics)
        ],
    )


def produce_v9(partitions: int, record_bytes: int) -> Any:
    p = produce_request
    return p.ProduceRequest(
        transactional_id=None,
        acks=-1,
        timeout_ms=30000,
        topic_data=[
            p.TopicProduceData(
                name="service.events",
                partition_data=[
                    p.PartitionProduceData(index=i, records=os.urandom(record_bytes))
                    for i in range(partitions)
                ],
            )
        ],
    )


@dataclass
class Case:
    name: str
    wire: bytes
    ours_decode: Callable[[], object]
    ours_encode: Callable[[], object]
    theirs_decode: Callable[[], object] | None
    theirs_encode: Callable[[], object] | None


def _kp_decoded(cls: Any, wire: bytes, version: int) -> Any:
    """kafka-python's decoded object, made encodable again (decode leaves its header slot unset)."""
    if cls is None:
        return None
    obj = cls.decode(wire, version=version)
    obj._header = None
    return obj


def cases() -> list[Case]:
    found = []
    meta = metadata_v12()
    meta_wire = bytes(metadata_response.encode(meta, 12))
    kp_meta = _kp_decoded(KpMetadataResponse, meta_wire, 12)
    found.append(
        Case(
            "Metadata v12 response (3 brokers, 50 topics x 6 partitions)",
            meta_wire,
            lambda: metadata_response.decode(memoryview(meta_wire), 12),
            lambda: metadata_response.encode(meta, 12),
            (lambda: KpMetadataResponse.decode(meta_wire, version=12)) if kp_meta else None,
            (lambda: kp_meta.encode(version=12)) if kp_meta else None,
        )
    )
    for label, parts, size in [
        ("Produce v9 request (1 topic x 6 partitions x 16 KiB)", 6, 16 * 1024),
        ("Produce v9 request (1 topic x 1 partition x 100 B)", 1, 100),
    ]:
        obj = produce_v9(parts, size)
        wire = bytes(produce_request.encode(obj, 9))
        kp_obj = _kp_decoded(KpProduceRequest, wire, 9)
        found.append(
            Case(
                label,
                wire,
                (lambda wire=wire: produce_request.decode(memoryview(wire), 9)),
                (lambda obj=obj: produce_request.encode(obj, 9)),
                (lambda wire=wire: KpProduceRequest.decode(wire, version=9)) if kp_obj else None,
                (lambda kp_obj=kp_obj: kp_obj.encode(version=9)) if kp_obj else None,
            )
        )
    return found


def best_us(fn: Callable[[], object], repeat: int) -> float:
    timer = timeit.Timer(fn)
    number, _ = timer.autorange()
    return min(timer.repeat(repeat=repeat, number=number)) / number * 1e6


def check(case: Case) -> None:
    """Both implementations must read the same message before their speed is compared."""
    ours = case.ours_decode()
    assert case.ours_encode() == case.wire
    if case.theirs_encode is not None:
        assert bytes(case.theirs_encode()) == case.wire, case.name
    assert ours is not None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    header = (
        f"{'message':<56} {'op':<6} {'bytes':>8} {'ours µs':>10} {'ours ops/s':>11} "
        f"{'k-p µs':>10} {'k-p/ours':>9}"
    )
    print(header)
    print("-" * len(header))
    for case in cases():
        check(case)
        for op, ours_fn, theirs_fn in [
            ("decode", case.ours_decode, case.theirs_decode),
            ("encode", case.ours_encode, case.theirs_encode),
        ]:
            ours = best_us(ours_fn, args.repeat)
            if theirs_fn is not None:
                theirs = best_us(theirs_fn, args.repeat)
                kp = f"{theirs:>10.1f} {theirs / ours:>8.2f}x"
            else:
                kp = f"{'n/a':>10} {'':>9}"
            print(
                f"{case.name:<56} {op:<6} {len(case.wire):>8} {ours:>10.1f} "
                f"{1e6 / ours:>11,.0f} {kp}"
            )


if __name__ == "__main__":
    main()
