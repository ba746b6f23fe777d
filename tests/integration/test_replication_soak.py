"""A seeded, bounded soak of replication: three brokers on a real etcd, an idempotent acks=all
producer writing throughout, and random faults one broker at a time (kill -9 and restart, pause
past the session and resume, SIGTERM and restart). A checker then reads every partition and
looks for what Jepsen's analyses of Kafka-like systems found: acknowledged records lost or moved,
duplicates, and acknowledged offsets that go backwards.

    pytest tests/integration/test_replication_soak.py --soak-seconds 600 --soak-seed 7 --timeout 900

(`tox -e soak` runs the long form.) The default run is 20 seconds of faults.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kafkacompat.testing_cluster import LocalCluster
from kafkacompat.testing_etcd import etcd_available
from tests.integration.test_replication import SETTINGS, AckedLog, create, read_all, wait_until

pytestmark = pytest.mark.skipif(not etcd_available(), reason="etcd is not installed (etcd-server)")

PARTITIONS = 3


@pytest.fixture()
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    with LocalCluster(tmp_path, 3, SETTINGS) as running:
        yield running


def fault(cluster: LocalCluster, rng: random.Random) -> str:
    """One random fault on one random broker, and its repair; what was done."""
    node = rng.choice(sorted(cluster.brokers))
    kind = rng.choice(["kill", "pause", "sigterm"])
    if kind == "kill":
        cluster.kill(node)
        time.sleep(rng.uniform(0.5, 3.0))
        time.sleep(2.2)  # its lease runs out before the node id can register again
        cluster.restart(node)
    elif kind == "pause":
        cluster.brokers[node].pause()
        time.sleep(rng.uniform(2.5, 4.0))  # past the 2 s session
        cluster.brokers[node].resume()
    else:
        cluster.restart(node)  # SIGTERM (controlled shutdown), then start again
    wait_until(
        lambda: all(cluster.isr("soak", p) == [1, 2, 3] for p in range(PARTITIONS)),
        60,
        f"the ISRs to be whole after {kind} of broker {node}",
    )
    return f"{kind} {node}"


def check(log: AckedLog, cluster: LocalCluster) -> None:
    """Every acknowledged record at its acknowledged offset, no value twice, and the offsets of
    a partition acknowledged in increasing order."""
    assert log.failed == [] and log.unflushed == 0, (log.failed[:3], log.unflushed)
    for partition in range(PARTITIONS):
        acked = log.acked[partition]
        offsets = [offset for offset, _ in acked]
        assert offsets == sorted(offsets), f"acknowledged offsets went backwards in {partition}"
        stored = dict(read_all(cluster.bootstrap, "soak", partition))
        values = list(stored.values())
        assert len(values) == len(set(values)), f"duplicates in partition {partition}"
        lost = [(o, v) for o, v in acked if stored.get(o) != v]
        assert not lost, f"{len(lost)} acknowledged records lost or moved in {partition}"


def test_random_faults_lose_duplicate_and_reorder_nothing(
    cluster: LocalCluster, request: pytest.FixtureRequest
) -> None:
    seconds = float(request.config.getoption("--soak-seconds"))
    rng = random.Random(int(request.config.getoption("--soak-seed")))
    create(cluster, "soak", PARTITIONS)
    done: list[str] = []
    with AckedLog(cluster.bootstrap, "soak", PARTITIONS) as log:
        wait_until(lambda: log.acked_count() > 200, 20, "records acknowledged")
        ends = time.monotonic() + seconds
        while time.monotonic() < ends:
            done.append(fault(cluster, rng))
        before = log.acked_count()
        wait_until(lambda: log.acked_count() > before + 100, 30, "acks after the faults")
    print(f"faults: {', '.join(done)}; {log.acked_count()} records acknowledged")
    assert done
    check(log, cluster)
