"""The broker's background maintenance on a live broker: retention by time and `flush.ms`,
partition by partition, while topics come and go."""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path

import pytest

from kafkacompat.testing import local_config, running_broker
from tests.integration.test_fetch import build_batch
from tests.internals import internals

pytestmark = pytest.mark.integration

HOUR_MS = 3_600_000


def test_retention_and_time_based_flush_run_in_the_background(tmp_path: Path) -> None:
    settings = {"log.retention.check.interval.ms": 100}
    with running_broker(local_config(tmp_path / "data").with_settings(settings=settings)) as broker:
        replicas = internals(broker)
        replicas.create_topic("aged", 1, {"segment.bytes": "1024", "retention.ms": "60000"})
        replicas.create_topic("synced", 1, {"flush.ms": "100"})
        old = int(time.time() * 1000) - HOUR_MS
        for i in range(6):
            batch = build_batch([(b"k", bytes([i]) * 600, [])], old + i)
            broker.call(partial(replicas.append, "aged", 0, batch))
        broker.call(partial(replicas.append, "synced", 0, build_batch([(b"k", b"v", [])], old)))
        aged, synced = replicas.log("aged", 0), replicas.log("synced", 0)
        segments_before = aged.segment_base_offsets
        assert len(segments_before) == 6 and synced.recovery_point == 0
        # Topics created and deleted meanwhile do not disturb the maintenance pass.
        for n in range(5):
            replicas.create_topic(f"churn-{n}", 2)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (
            aged.log_start_offset < 6 or synced.recovery_point < 1
        ):
            time.sleep(0.05)
        # Every segment was older than retention.ms, the active one too: as Kafka, it is rolled
        # and all are deleted, files too; an empty segment starts at the log end.
        assert (aged.log_start_offset, aged.segment_base_offsets) == (6, [6])
        files = sorted(p.name for p in (tmp_path / "data" / "aged-0").glob("*.log"))
        assert files == ["00000000000000000006.log"]
        assert synced.recovery_point == synced.log_end_offset == 1
        # The task is still alive: a later append is flushed too.
        broker.call(partial(replicas.append, "synced", 0, build_batch([(b"k", b"w", [])], old)))
        while time.monotonic() < deadline and synced.recovery_point < 2:
            time.sleep(0.05)
        assert synced.recovery_point == 2
