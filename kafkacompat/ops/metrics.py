"""/metrics: the broker's metrics in the Prometheus text format, under the names operators know
(kafka_exporter's ``kafka_topic_partition_current_offset``, ``kafka_consumergroup_lag``...; the
JMX exporter's ``kafka_server_brokertopicmetrics_messagesin_total``, ``kafka_log_log_size``...).

Counters are kept by the request pipeline's observe hook (`RequestCounters`: exact, per request
and per partition, never per record); request queue, local, send and total times of one request
in `TIME_ONE_REQUEST_IN` of each API by the connection loop's hook, flush times by the
partitions' flush hook and cleaning statistics by the log cleaner's hook (`timing_metrics.py`);
gauges (offsets, sizes, lag, members, waiting fetches) are read from the broker's state when
scraped. The families are built on the Trio loop, where that state
lives, and rendered to text on a worker thread. At most ``metrics.max.partitions`` partitions
get series of their own; the rest are counted in ``kafkacompat_metrics_partitions_omitted``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import trio
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from kafkacompat.broker.broker import Broker
from kafkacompat.errors import ErrorCode
from kafkacompat.ops.request_metrics import OVERFLOW, RequestCounters
from kafkacompat.ops.timing_metrics import CleanerCounters, RequestTimes
from kafkacompat.partitions.partition import Partition
from kafkacompat.storage.cleaner_swap import read_cleaner_checkpoint

__all__ = ["CONTENT_TYPE_LATEST", "BrokerMetrics", "group_lags"]


def error_name(code: int) -> str:
    try:
        return ErrorCode(code).name
    except ValueError:
        return str(code)


class _Families:
    """A registry stand-in for `generate_latest`: families built beforehand."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return self._families


def group_lags(broker: Broker) -> dict[str, list[tuple[str, int, int, int]]]:
    """Committed offsets of every group: group -> [(topic, partition, committed, lag)], lag
    being the partition's end offset (high watermark) minus the committed offset."""
    coordinator = broker.groups.coordinator
    group_ids = {group_id for group_id, _type, _state in coordinator.list_groups()}
    group_ids.update(coordinator.offsets.groups())
    found: dict[str, list[tuple[str, int, int, int]]] = {}
    partitions = broker.partitions
    for group_id in sorted(group_ids):
        rows = []
        for (topic, index), committed in sorted(coordinator.fetch_offsets(group_id, None).items()):
            if committed is None or committed.offset < 0:
                continue
            hosted = partitions.partition_or_none(topic, index)
            if hosted is None:
                continue
            lag = max(0, hosted.high_watermark - committed.offset)
            rows.append((topic, index, committed.offset, lag))
        found[group_id] = rows
    return found


def _cleaner_families(compacted: list[tuple[str, int, Path, int, int]]) -> Iterator[Metric]:
    """Log-cleaner progress of compacted partitions, from their cleaner checkpoints."""
    labels = ["topic", "partition"]
    first_dirty = GaugeMetricFamily(
        "kafkacompat_log_cleaner_first_dirty_offset",
        "Where the next cleaning of a compacted partition starts (the log start offset until "
        "it is first cleaned).",
        labels=labels,
    )
    dirty = GaugeMetricFamily(
        "kafkacompat_log_cleaner_dirty_offsets",
        "Offsets of a compacted partition not cleaned yet (end offset minus first dirty offset).",
        labels=labels,
    )
    for topic, index, directory, start, end in compacted:
        checkpoint = read_cleaner_checkpoint(directory)
        offset = start if checkpoint is None or not start <= checkpoint <= end else checkpoint
        first_dirty.add_metric([topic, str(index)], offset)
        dirty.add_metric([topic, str(index)], end - offset)
    yield first_dirty
    yield dirty


class BrokerMetrics:
    """The broker's metrics: the hooks' counters and histograms, and scrape-time gauges."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.max_partitions = broker.config.get_int("metrics.max.partitions")
        self.counters = RequestCounters(broker.pipeline.handlers, self.max_partitions)
        self.times = RequestTimes(self.counters.names)
        self.cleanings = CleanerCounters(broker.config.get_int("log.cleaner.threads"))

    def install(self) -> None:
        """Start counting: the pipeline calls its hook after every request, the connection loop
        after every response written, partitions after every flush, the cleaner after every
        cleaning."""
        pipeline = self.broker.pipeline
        if self.counters.observe not in pipeline.observe_hooks:
            pipeline.observe_hooks.append(self.counters.observe)
        if self.times.observe not in pipeline.connection_hooks:
            pipeline.connection_hooks.append(self.times.observe)
        flush_hooks = self.broker.partitions.flush_hooks
        if self.times.observe_flush not in flush_hooks:
            flush_hooks.append(self.times.observe_flush)
        self.broker.cleaner.on_cleaned = self.cleanings.cleaned

    async def render(self) -> bytes:
        """The text exposition: families built here, on the loop; the cleaner's checkpoints
        read and the text made on a worker thread."""
        families = list(self.families())
        compacted = [
            (p.topic, p.index, p.log.directory, p.log_start_offset, p.high_watermark)
            for p in self._shown_partitions()
            if p.config.compact_enabled
        ]

        def finish() -> bytes:
            families.extend(_cleaner_families(compacted))
            return generate_latest(_Families(families))

        return await trio.to_thread.run_sync(finish)

    def _produced(self) -> list[tuple[tuple[str, int], tuple[int, int]]]:
        """``((topic, partition), (records in, bytes in))`` of the produced-to partitions with
        series of their own, then the other partitions' sums under the overflow key."""
        shown = self._shown_partitions()
        rows = [((p.topic, p.index), (p.records_in, p.bytes_in)) for p in shown if p.records_in]
        kept = set(shown)
        others = [p for p in self.broker.partitions.partitions() if p not in kept]
        records = sum(p.records_in for p in others)
        if records:
            rows.append((OVERFLOW, (records, sum(p.bytes_in for p in others))))
        return rows

    def totals_in(self) -> tuple[int, int]:
        """Records and bytes appended by Produce requests to every hosted partition."""
        hosted = self.broker.partitions.partitions()
        return sum(p.records_in for p in hosted), sum(p.bytes_in for p in hosted)

    def _shown_partitions(self) -> list[Partition]:
        hosted = sorted(self.broker.partitions.partitions(), key=lambda p: (p.topic, p.index))
        return hosted[: self.max_partitions]

    def families(self) -> Iterator[Metric]:
        yield from self._request_families()
        yield from self.times.families()
        yield from self.cleanings.families()
        yield from self._partition_families()
        yield from self._group_families()
        yield from self._broker_families()

    # -- counted by the hook -----------------------------------------------------------------------

    def _request_families(self) -> Iterator[Metric]:
        c = self.counters
        requests = CounterMetricFamily(
            "kafka_network_requestmetrics_requests",
            "Requests handled, by Kafka request name (every one; the request time histograms "
            "cover a sample).",
            labels=["request"],
        )
        for api in sorted(c.apis.values(), key=lambda a: a.name):
            requests.add_metric([api.name], api.requests)
        yield requests
        errors = CounterMetricFamily(
            "kafka_network_requestmetrics_errors",
            "Error codes in responses (per partition where the response has partitions), "
            "by request and error; NONE is not counted.",
            labels=["request", "error"],
        )
        for (name, code), count in sorted(c.errors.items()):
            errors.add_metric([name, error_name(code)], count)
        yield errors
        produced = self._produced()
        for name, doc, table in (
            (
                "messagesin",
                "Records appended by Produce requests.",
                [(k, v[0]) for k, v in produced],
            ),
            (
                "bytesin",
                "Record-set bytes appended by Produce requests.",
                [(k, v[1]) for k, v in produced],
            ),
            ("bytesout", "Record-set bytes sent in Fetch responses.", sorted(c.bytes_out.items())),
        ):
            family = CounterMetricFamily(
                f"kafka_server_brokertopicmetrics_{name}", doc, labels=["topic", "partition"]
            )
            for (topic, index), value in table:
                family.add_metric([topic, str(index)], value)
            yield family
        refusals = CounterMetricFamily(
            "kafkacompat_produce_validation_refusals",
            "Produced record sets refused by validation, by error.",
            labels=["error"],
        )
        for code, count in sorted(c.refusals.items()):
            refusals.add_metric([error_name(code)], count)
        yield refusals
        connections = GaugeMetricFamily(
            "kafka_server_socket_server_metrics_connection_count",
            "Open client connections, by listener.",
            labels=["listener"],
        )
        created = CounterMetricFamily(
            "kafka_server_socket_server_metrics_connection_creation",
            "Client connections accepted, by listener.",
            labels=["listener"],
        )
        for listener in self.broker.listeners:
            connections.add_metric([listener.name], c.connections.get(listener.name, 0))
            created.add_metric([listener.name], c.connections_accepted.get(listener.name, 0))
        yield connections
        yield created

    # -- read from the broker's state when scraped ------------------------------------------------

    def _partition_families(self) -> Iterator[Metric]:
        hosted = self.broker.partitions.partitions()
        shown, omitted = self._shown_partitions(), len(hosted) - self.max_partitions
        topics = GaugeMetricFamily(
            "kafka_topic_partitions", "Partitions of each topic.", labels=["topic"]
        )
        for topic in self.broker.services.metadata.image.list_topics():
            topics.add_metric([topic.name], topic.partitions)
        yield topics
        labels = ["topic", "partition"]
        current = GaugeMetricFamily(
            "kafka_topic_partition_current_offset",
            "The partition's end offset (high watermark).",
            labels=labels,
        )
        oldest = GaugeMetricFamily(
            "kafka_topic_partition_oldest_offset",
            "The partition's log start offset.",
            labels=labels,
        )
        size = GaugeMetricFamily(
            "kafka_log_log_size", "Bytes of the partition's log segments.", labels=labels
        )
        waiting = 0
        for partition in shown:
            key = [partition.topic, str(partition.index)]
            current.add_metric(key, partition.high_watermark)
            oldest.add_metric(key, partition.log_start_offset)
            size.add_metric(key, partition.size_in_bytes)
        for partition in hosted:
            waiting += partition.waiting_fetches
        yield current
        yield oldest
        yield size
        purgatory = GaugeMetricFamily(
            "kafka_server_delayedoperationpurgatory_purgatorysize",
            "Long-polling fetches waiting for data (one per partition waited on).",
            labels=["delayedOperation"],
        )
        purgatory.add_metric(["Fetch"], waiting)
        yield purgatory
        yield GaugeMetricFamily(
            "kafkacompat_metrics_partitions_omitted",
            "Hosted partitions without series of their own (metrics.max.partitions).",
            value=max(0, omitted),
        )

    def _group_families(self) -> Iterator[Metric]:
        coordinator = self.broker.groups.coordinator
        members = GaugeMetricFamily(
            "kafka_consumergroup_members", "Members of each group.", labels=["consumergroup"]
        )
        for group_id, _type, _state in sorted(coordinator.list_groups()):
            members.add_metric([group_id], len(coordinator.describe_group(group_id).members))
        yield members
        labels = ["consumergroup", "topic", "partition"]
        current = GaugeMetricFamily(
            "kafka_consumergroup_current_offset", "The group's committed offset.", labels=labels
        )
        lag = GaugeMetricFamily(
            "kafka_consumergroup_lag",
            "The partition's end offset minus the group's committed offset.",
            labels=labels,
        )
        lag_sum = GaugeMetricFamily(
            "kafka_consumergroup_lag_sum",
            "The group's lag summed over a topic's partitions.",
            labels=["consumergroup", "topic"],
        )
        series = 0
        for group_id, rows in group_lags(self.broker).items():
            sums: dict[str, int] = {}
            for topic, index, committed, behind in rows:
                sums[topic] = sums.get(topic, 0) + behind
                if series < self.max_partitions:
                    series += 1
                    current.add_metric([group_id, topic, str(index)], committed)
                    lag.add_metric([group_id, topic, str(index)], behind)
            for topic, total in sorted(sums.items()):
                lag_sum.add_metric([group_id, topic], total)
        yield current
        yield lag
        yield lag_sum

    def _broker_families(self) -> Iterator[Metric]:
        image = self.broker.services.metadata.image
        yield GaugeMetricFamily(
            "kafka_brokers", "Brokers in the cluster.", value=len(image.brokers)
        )
        yield GaugeMetricFamily(
            "kafka_controller_kafkacontroller_activecontrollercount",
            "1 on the broker that is the active controller.",
            value=1 if image.controller_id == self.broker.node_id else 0,
        )
