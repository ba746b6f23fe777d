"""The timing hooks without a broker: the connection loop's queue/send/total times (a throttle
mute counted as queue time), histograms rendered for Prometheus, the cleaner's window."""

from __future__ import annotations

import struct
from types import SimpleNamespace
from typing import Any

import pytest
import trio
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from kafkacompat.broker.dispatch import TIME_ONE_REQUEST_IN
from kafkacompat.ops.timing_metrics import CleanerCounters, Histogram, RequestTimes
from kafkacompat.protocol.framing import FrameReader
from kafkacompat.server.connection import _serve_requests
from kafkacompat.server.idle import IdleTimer
from kafkacompat.storage.cleaner import CleanerStats


class Families(Collector):
    def __init__(self, source: Any) -> None:
        self.source = source

    def collect(self) -> Any:
        return self.source.families()


def parse(source: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(Families(source)).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_a_histogram_counts_each_observation_once() -> None:
    histogram = Histogram((0.001, 0.01))
    for seconds in (0.0005, 0.001, 0.005, 5.0):
        histogram.observe(seconds)
    assert histogram.buckets == [2, 1, 1]
    assert histogram.cumulative() == [("0.001", 2.0), ("0.01", 3.0), ("+Inf", 4.0)]
    assert histogram.count == 4 and histogram.sum == 0.0005 + 0.001 + 0.005 + 5.0


def test_request_and_flush_times_render_as_histograms() -> None:
    times = RequestTimes({0: "Produce", 1: "Fetch"})
    times.observe(0, 0.0, 0.0015, 0.001, 0.003)
    times.observe(0, 0.5, 0.0025, 0.002, 0.6)
    times.observe(1, 0.0, 0.09, 0.0, 0.1)
    times.observe_flush(0.02)
    samples = parse(times)
    queue = "kafka_network_requestmetrics_request_queue_time_seconds"
    assert samples[(f"{queue}_count", (("request", "Produce"),))] == 2
    assert samples[(f"{queue}_sum", (("request", "Produce"),))] == 0.5
    local = "kafka_network_requestmetrics_local_time_seconds"
    assert samples[(f"{local}_sum", (("request", "Produce"),))] == 0.004
    assert samples[(f"{local}_bucket", (("le", "0.05"), ("request", "Fetch")))] == 0
    assert samples[(f"{local}_bucket", (("le", "0.1"), ("request", "Fetch")))] == 1
    total = "kafka_network_requestmetrics_total_time_seconds"
    assert samples[(f"{total}_bucket", (("le", "0.25"), ("request", "Fetch")))] == 1
    send = "kafka_network_requestmetrics_response_send_time_seconds"
    assert samples[(f"{send}_sum", (("request", "Produce"),))] == 0.003
    flush = "kafka_log_logflushstats_logflush_seconds"
    assert samples[(f"{flush}_count", ())] == 1 and samples[(f"{flush}_sum", ())] == 0.02


def test_the_cleaner_gauges_cover_the_last_cleaning_of_each_thread() -> None:
    cleanings = CleanerCounters(threads=2)
    for seconds, read, written in ((9.0, 1000, 100), (1.0, 1000, 500), (2.0, 3000, 1000)):
        stats = CleanerStats(0, 0.5, seconds=seconds, bytes_read=read, bytes_written=written)
        cleanings.cleaned(None, stats)  # type: ignore[arg-type]
    samples = parse(cleanings)
    assert samples[("kafka_log_logcleaner_max_clean_time_secs", ())] == 2.0
    assert samples[("kafka_log_logcleaner_cleaner_recopy_percent", ())] == 100 * 1500 / 4000
    assert samples[("kafkacompat_log_cleaner_bytes_read_total", ())] == 5000
    assert samples[("kafkacompat_log_cleaner_bytes_written_total", ())] == 1600
    assert samples[("kafkacompat_log_cleaner_clean_time_seconds_count", ())] == 3
    assert samples[("kafkacompat_log_cleaner_clean_time_seconds_sum", ())] == 12.0


class Client:
    """A transport that holds two pipelined request frames, then the client's close."""

    supports_sendfile = False
    waits = 0

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.sent: list[bytes] = []

    async def recv(self, max_bytes: int) -> bytes:
        await trio.sleep(0.01)
        data, self.data = self.data[:max_bytes], self.data[max_bytes:]
        return data

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await trio.sleep(0.01)
        self.sent.append(bytes(data))


class Pipeline:
    """Answers every frame; the first one throttles the connection for 0.1 s."""

    def __init__(self) -> None:
        self.handlers = dict.fromkeys((0, 3))
        self.connection_hooks: list[Any] = []
        self.untimed: dict[int, int] = {}
        self.handled = 0

    async def handle_frame(self, frame: memoryview, session: Any) -> bytearray:
        self.handled += 1
        if self.handled == 1:
            session.muted_until = trio.current_time() + 0.1
        return bytearray(b"answer")


def request_frame(api_key: int) -> bytes:
    body = struct.pack(">hhih", api_key, 0, 7, -1)  # key, version, correlation id, no client id
    return struct.pack(">i", len(body)) + body


async def serve(client: Client, pipeline: Pipeline) -> None:
    session = SimpleNamespace(raw_sasl_tokens=False, close_after_response=None, muted_until=0.0)
    await _serve_requests(
        client,  # type: ignore[arg-type]
        FrameReader(1 << 20),
        pipeline,  # type: ignore[arg-type]
        session,  # type: ignore[arg-type]
        IdleTimer(trio.CancelScope()),
    )


async def test_a_request_waiting_out_a_throttle_mute_counts_it_as_queue_time() -> None:
    client = Client(request_frame(0) + request_frame(3))
    pipeline = Pipeline()
    timed: list[tuple[int, float, float, float, float]] = []
    pipeline.connection_hooks.append(lambda *times: timed.append(times))
    await serve(client, pipeline)
    assert client.sent == [b"answer", b"answer"]
    assert [t[0] for t in timed] == [0, 3]
    (_, queue1, local1, send1, total1), (_, queue2, local2, send2, total2) = timed
    assert queue1 < 0.01 and 0.01 <= send1 < total1
    # The second frame was received with the first and waited out the 0.1 s mute.
    assert 0.09 <= queue2 < total2 and send2 >= 0.01
    assert total1 == pytest.approx(queue1 + local1 + send1)
    assert total2 == pytest.approx(queue2 + local2 + send2)


async def test_one_request_in_sixteen_of_each_api_is_timed() -> None:
    # Requests 1, 17 and 33 of API 0 are timed, and API 3's first; an unknown API key never.
    frames = request_frame(0) * 20 + request_frame(3) + request_frame(0) * 14 + request_frame(99)
    client = Client(frames)
    pipeline = Pipeline()
    timed: list[tuple[int, float, float, float, float]] = []
    pipeline.connection_hooks.append(lambda *times: timed.append(times))
    await serve(client, pipeline)
    assert len(client.sent) == 36
    assert TIME_ONE_REQUEST_IN == 16
    assert [t[0] for t in timed] == [0, 0, 3, 0]
    # Left untimed before the next timed request: API 0 had one since request 33.
    assert pipeline.untimed == {0: 14, 3: 15}


async def test_without_hooks_nothing_is_timed() -> None:
    client = Client(request_frame(0))
    pipeline = Pipeline()
    await serve(client, pipeline)
    assert client.sent == [b"answer"] and pipeline.connection_hooks == []
    assert pipeline.untimed == {}
