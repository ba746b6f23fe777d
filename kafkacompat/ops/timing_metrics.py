"""What the connection loop, the partitions' flushes and the log cleaner report through their
hooks: request queue, local, send and total times per API (of one request in
`TIME_ONE_REQUEST_IN`), flush times, and what each cleaning did.

Plain numbers kept by callbacks (a bisect and an addition per histogram per timed request,
flush or cleaning), turned into Prometheus families only when scraped (`metrics.py`).
"""

from __future__ import annotations

from bisect import bisect_left
from collections import deque
from collections.abc import Iterator

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from kafkacompat.broker.dispatch import TIME_ONE_REQUEST_IN
from kafkacompat.ops.request_metrics import LATENCY_BUCKETS
from kafkacompat.partitions.partition import Partition
from kafkacompat.storage.cleaner import CleanerStats

__all__ = ["CleanerCounters", "Histogram", "RequestTimes", "histogram_family"]

#: What the request time histograms cover, in their help text.
SAMPLED = (
    f"Sampled: requests 1, {TIME_ONE_REQUEST_IN + 1}, {2 * TIME_ONE_REQUEST_IN + 1}... of each "
    "kind are timed; _count and _sum cover those only (requests_total counts every request)."
)

#: Upper bounds (seconds) of the log-cleaning time histogram buckets (the last is +Inf).
CLEAN_BUCKETS: tuple[float, ...] = (0.001, 0.01, 0.1, 1.0, 10.0, 60.0, 300.0, 1800.0)


class Histogram:
    """Observations per bucket (not cumulative; the last one is +Inf) and their sum; their
    count is added up from the buckets when read."""

    __slots__ = ("bounds", "buckets", "sum")

    def __init__(self, bounds: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self.bounds = bounds
        self.buckets = [0] * (len(bounds) + 1)
        self.sum = 0.0

    @property
    def count(self) -> int:
        return sum(self.buckets)

    def observe(self, seconds: float) -> None:
        self.buckets[bisect_left(self.bounds, seconds)] += 1
        self.sum += seconds

    def cumulative(self) -> list[tuple[str, float]]:
        """Prometheus's buckets: (upper bound, observations at or below it)."""
        bounds = [*(str(b) for b in self.bounds), "+Inf"]
        total = 0
        found = []
        for bound, count in zip(bounds, self.buckets, strict=True):
            total += count
            found.append((bound, float(total)))
        return found


def histogram_family(
    name: str, doc: str, histograms: list[tuple[list[str], Histogram]], labels: list[str]
) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, doc, labels=labels)
    for values, histogram in histograms:
        family.add_metric(values, histogram.cumulative(), histogram.sum)
    return family


class RequestTimes:
    """Per API (by key): request queue, local (handling), response send and total times of the
    requests the connection loop times (`TIME_ONE_REQUEST_IN`), from its hook; plus the
    partitions' flush times, from their flush hook."""

    def __init__(self, names: dict[int, str]) -> None:
        self.names = names
        #: api key -> (queue, local, send, total) histograms.
        self.apis: dict[int, tuple[Histogram, Histogram, Histogram, Histogram]] = {}
        self.flushes = Histogram()

    def observe(self, api_key: int, queue: float, local: float, send: float, total: float) -> None:
        """The connection loop's hook, once per timed request (Histogram.observe inlined)."""
        found = self.apis.get(api_key) or self._add_api(api_key)
        bounds = LATENCY_BUCKETS
        histogram = found[0]
        histogram.buckets[bisect_left(bounds, queue)] += 1
        histogram.sum += queue
        histogram = found[1]
        histogram.buckets[bisect_left(bounds, local)] += 1
        histogram.sum += local
        histogram = found[2]
        histogram.buckets[bisect_left(bounds, send)] += 1
        histogram.sum += send
        histogram = found[3]
        histogram.buckets[bisect_left(bounds, total)] += 1
        histogram.sum += total

    def _add_api(self, api_key: int) -> tuple[Histogram, Histogram, Histogram, Histogram]:
        found = self.apis[api_key] = (Histogram(), Histogram(), Histogram(), Histogram())
        return found

    def observe_flush(self, seconds: float) -> None:
        self.flushes.observe(seconds)

    def families(self) -> Iterator[Metric]:
        apis = sorted(
            ((self.names.get(key, str(key)), times) for key, times in self.apis.items()),
            key=lambda named: named[0],
        )
        for index, (suffix, doc) in enumerate(
            (
                (
                    "request_queue_time_seconds",
                    "Time from a request's frame being read to its handling starting (a "
                    "throttled connection's mute included), by request.",
                ),
                (
                    "local_time_seconds",
                    "Time from a request's handling starting to its response ready (decoding, "
                    "the handler, a long-polling fetch's wait included, and encoding), by request.",
                ),
                (
                    "response_send_time_seconds",
                    "Time spent writing a request's response to the socket (sendfile "
                    "included), by request.",
                ),
                (
                    "total_time_seconds",
                    "Time from a request's frame being read to its response written, by request.",
                ),
            )
        ):
            yield histogram_family(
                f"kafka_network_requestmetrics_{suffix}",
                f"{doc} {SAMPLED}",
                [([name], times[index]) for name, times in apis],
                ["request"],
            )
        yield histogram_family(
            "kafka_log_logflushstats_logflush_seconds",
            "Time each partition flush (fsync of the log's files) took.",
            [([], self.flushes)],
            [],
        )


class CleanerCounters:
    """What the log cleaner's hook reports: every cleaning's time and bytes; Kafka's max clean
    time and recopy percent over the last cleaning of each cleaner thread (here: the last
    ``log.cleaner.threads`` cleanings)."""

    def __init__(self, threads: int) -> None:
        self.seconds = Histogram(CLEAN_BUCKETS)
        self.bytes_read = 0
        self.bytes_written = 0
        self.records_read = 0
        self.records_kept = 0
        self.last: deque[CleanerStats] = deque(maxlen=max(1, threads))

    def cleaned(self, _partition: Partition, stats: CleanerStats) -> None:
        self.seconds.observe(stats.seconds)
        self.bytes_read += stats.bytes_read
        self.bytes_written += stats.bytes_written
        self.records_read += stats.records_read
        self.records_kept += stats.records_kept
        self.last.append(stats)

    def families(self) -> Iterator[Metric]:
        last = list(self.last)
        yield GaugeMetricFamily(
            "kafka_log_logcleaner_max_clean_time_secs",
            "The longest of the last cleanings (one per cleaner thread), in seconds.",
            value=max((s.seconds for s in last), default=0.0),
        )
        read = sum(s.bytes_read for s in last)
        written = sum(s.bytes_written for s in last)
        yield GaugeMetricFamily(
            "kafka_log_logcleaner_cleaner_recopy_percent",
            "Bytes written as a percentage of bytes read by the last cleanings (one per "
            "cleaner thread).",
            value=100.0 * written / read if read else 0.0,
        )
        yield histogram_family(
            "kafkacompat_log_cleaner_clean_time_seconds",
            "Time each cleaning of a partition took.",
            [([], self.seconds)],
            [],
        )
        for name, doc, count in (
            ("bytes_read", "Log bytes read by cleanings.", self.bytes_read),
            ("bytes_written", "Log bytes written (kept) by cleanings.", self.bytes_written),
            ("records_read", "Records read by cleanings.", self.records_read),
            ("records_kept", "Records kept by cleanings.", self.records_kept),
        ):
            yield CounterMetricFamily(f"kafkacompat_log_cleaner_{name}", doc, value=count)
