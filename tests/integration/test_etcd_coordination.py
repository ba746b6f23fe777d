"""The cluster's coordination on a real etcd: broker registrations under leases (the broker epoch
is the registration's revision), one controller per epoch won in a transaction, controller
writes fenced so a deposed controller changes nothing, ordered watches that report lost history."""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import aclosing
from pathlib import Path

import pytest
import trio

from kafkacompat.cluster.controller_election import (
    CONTROLLER,
    ControllerElection,
    NotController,
)
from kafkacompat.cluster.etcd_store import (
    Change,
    Compare,
    EtcdStore,
    EtcdUnavailable,
    Put,
    WatchLost,
    parse_store_url,
)
from kafkacompat.cluster.metadata_follower import MetadataKeys, follow_metadata
from kafkacompat.cluster.metadata_image import BrokerEndpoint, BrokerInfo, MetadataImage
from kafkacompat.cluster.metadata_records import (
    PartitionState,
    TopicRecord,
    partition_key,
    topic_key,
)
from kafkacompat.cluster.registration import (
    BROKERS,
    BrokerRegistration,
    NodeIdInUse,
    decode_broker,
)
from kafkacompat.config import HostPort
from kafkacompat.testing_etcd import EtcdServer, etcd_available

pytestmark = pytest.mark.skipif(not etcd_available(), reason="etcd is not installed (etcd-server)")


@pytest.fixture(scope="module")
def etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdServer]:
    with EtcdServer(tmp_path_factory.mktemp("etcd") / "data") as server:
        yield server


@pytest.fixture
def store(etcd: EtcdServer, request: pytest.FixtureRequest) -> EtcdStore:
    """A store under a prefix of its own per test, so tests share one etcd."""
    endpoints, _ = parse_store_url(etcd.url)
    return EtcdStore(endpoints, f"/test/{request.node.name}", timeout=2.0)


def broker(node_id: int, port: int = 9092, rack: str | None = None) -> BrokerInfo:
    endpoint = BrokerEndpoint("PLAINTEXT", "127.0.0.1", port)
    return BrokerInfo(node_id, "127.0.0.1", port, rack=rack, endpoints=(endpoint,))


def test_store_urls() -> None:
    assert parse_store_url("etcd://127.0.0.1:2379") == (
        [HostPort("127.0.0.1", 2379)],
        "/kafkacompat",
    )
    assert parse_store_url("etcd://a:1,b:2/clusters/blue/") == (
        [HostPort("a", 1), HostPort("b", 2)],
        "/clusters/blue",
    )
    for bad in ("http://a:1", "etcd://a", "etcd://:1", "etcd://a:x"):
        with pytest.raises(ValueError, match=r"metadata\.store\.url"):
            parse_store_url(bad)


async def test_registration_epoch_and_lease_expiry(store: EtcdStore) -> None:
    first = BrokerRegistration(
        store, broker(1, rack="r1"), session_timeout=2, heartbeat_interval=0.5
    )
    second = BrokerRegistration(store, broker(2, 9093), session_timeout=2, heartbeat_interval=0.5)
    epoch_one = await first.register()
    epoch_two = await second.register()
    assert 0 < epoch_one < epoch_two
    revision, entries = await store.read_prefix(BROKERS)
    assert revision >= epoch_two
    assert {e.key: (decode_broker(e.value), e.create_revision) for e in entries} == {
        "brokers/1": (broker(1, rack="r1"), epoch_one),
        "brokers/2": (broker(2, 9093), epoch_two),
    }
    duplicate = BrokerRegistration(store, broker(1, 9999), session_timeout=2, heartbeat_interval=1)
    with pytest.raises(NodeIdInUse):
        await duplicate.register()
    # Broker 1 keeps its lease alive; broker 2 stops (as if killed): gone within its session.
    started = time.monotonic()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(first.keep_alive)
        while len((await store.read_prefix(BROKERS))[1]) == 2:
            assert time.monotonic() - started < 5
            await trio.sleep(0.1)
        nursery.cancel_scope.cancel()
    gone_after = time.monotonic() - started
    assert 1.0 < gone_after < 4.0
    assert [e.key for e in (await store.read_prefix(BROKERS))[1]] == ["brokers/1"]
    await first.unregister()
    assert (await store.read_prefix(BROKERS))[1] == []


async def test_one_controller_per_epoch_and_failover(store: EtcdStore) -> None:
    leases = [await store.grant_lease(2) for _ in range(3)]
    elections = [ControllerElection(store, node_id) for node_id in (1, 2, 3)]
    results: dict[int, bool] = {}

    async def campaign(index: int) -> None:
        results[index] = await elections[index].campaign(leases[index])

    async with trio.open_nursery() as nursery:
        for index in range(3):
            nursery.start_soon(campaign, index)
    assert sorted(results.values()) == [False, False, True]
    winner = next(i for i, won in results.items() if won)
    assert elections[winner].epoch == 1
    current = await elections[0].current()
    assert current is not None
    assert (current.node_id, current.epoch) == (winner + 1, 1)
    # The winner's lease ends (its broker died): another wins epoch 2 at once.
    await store.revoke(leases[winner])
    other = (winner + 1) % 3
    assert await elections[other].campaign(leases[other])
    assert elections[other].epoch == 2
    # The deposed controller's writes are refused, and it learns it was deposed.
    with pytest.raises(NotController, match="superseded"):
        await elections[winner].write([Put("topics/t", b"from the old controller")])
    assert not elections[winner].is_controller
    assert await store.read("topics/t") is None
    revision = await elections[other].write([Put("topics/t", b"from the controller")])
    entry = await store.read("topics/t")
    assert entry is not None
    assert (entry.value, entry.mod_revision) == (b"from the controller", revision)
    # A guard that no longer holds refuses the write without deposing the controller.
    with pytest.raises(NotController, match="guarded value changed"):
        await elections[other].write(
            [Put("topics/t", b"lost update")], [Compare("topics/t", "MOD", "EQUAL", revision - 1)]
        )
    assert elections[other].is_controller
    with pytest.raises(NotController):
        await elections[(other + 1) % 3].write([Put("x", b"never")])
    assert (await store.read(CONTROLLER)) is not None


async def test_a_paused_controller_past_its_lease_cannot_write(store: EtcdStore) -> None:
    old = ControllerElection(store, 1)
    new = ControllerElection(store, 2)
    old_lease = await store.grant_lease(1)
    assert await old.campaign(old_lease)
    # Paused: no keep-alive; its lease runs out and broker 2 takes over.
    new_lease = await store.grant_lease(5)
    started = time.monotonic()
    while not await new.campaign(new_lease):
        assert time.monotonic() - started < 5
        await trio.sleep(0.1)
    assert new.epoch == old.epoch + 1
    with pytest.raises(NotController):
        await old.write([Put("partitions/t/0", b"stale leader")])
    assert await store.read("partitions/t/0") is None


async def test_watch_sees_changes_in_order_then_reports_compaction(
    store: EtcdStore, etcd: EtcdServer
) -> None:
    revision, entries = await store.read_prefix("topics/")
    assert entries == []
    seen: list[Change] = []

    async def follow() -> None:
        async with aclosing(store.watch("topics/", revision + 1)) as changes:
            async for batch in changes:
                seen.extend(batch)
                if len(seen) == 3:
                    return

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(follow)
            await trio.sleep(0.2)
            first = await store.put("topics/a", b"1")
            second = await store.put("topics/b", b"2")
            await store.put("other/c", b"not watched")
            _, third = await store.transaction([], [Put("topics/a", None)])
    assert seen == [
        Change("topics/a", b"1", first, first),
        Change("topics/b", b"2", second, second),
        Change("topics/a", None, third, 0),
    ]
    # History compacted past where a watch would start: the watch says so.
    await store._call("/kv/compaction", {"revision": str(third)})
    with trio.fail_after(10), pytest.raises(WatchLost, match="compacted"):
        async with aclosing(store.watch("topics/", revision + 1)) as changes:
            async for _change in changes:
                pass


async def test_unreachable_etcd_is_reported(tmp_path: Path) -> None:
    with EtcdServer(tmp_path / "etcd") as server:
        endpoints, _ = parse_store_url(server.url)
    store = EtcdStore(endpoints, "/gone", timeout=1.0)
    with pytest.raises(EtcdUnavailable, match=f"127.0.0.1:{endpoints[0].port}"):
        await store.read_prefix()


async def test_every_broker_follows_the_metadata_and_rereads_after_compaction(
    store: EtcdStore,
) -> None:
    """A follower publishes the image the keys describe, after each change, and recovers
    by reading everything again when its watch has lost history."""
    images: list[MetadataImage] = []
    keys = MetadataKeys("cluster-x")
    election = ControllerElection(store, 2)
    registration = BrokerRegistration(store, broker(2, 9093), 5, 1)
    await registration.register()
    topic_id = uuid.uuid4()

    def published_until(check: Callable[[MetadataImage], bool]) -> Callable[[], Awaitable[None]]:
        async def wait() -> None:
            with trio.fail_after(10):
                while not (images and check(images[-1])):
                    await trio.sleep(0.02)

        return wait

    async with trio.open_nursery() as nursery:
        await nursery.start(follow_metadata, store, keys, images.append)
        assert images[-1].controller_id == -1
        assert [b.node_id for b in images[-1].brokers] == [2]
        assert await election.campaign(registration.lease)
        await published_until(lambda image: image.controller_id == 2)()
        record = TopicRecord(topic_id, ((2,), (2,)), {"cleanup.policy": "compact"})
        await election.write(
            [
                Put(topic_key("t"), record.encode()),
                Put(partition_key("t", 0), PartitionState.first((2,), 2, election.epoch).encode()),
            ]
        )
        await published_until(lambda image: image.topic("t") is not None)()
        topic = images[-1].topic("t")
        assert topic is not None
        assert (topic.topic_id, topic.partitions, dict(topic.configs)) == (
            topic_id,
            2,
            {"cleanup.policy": "compact"},
        )
        assert [(p.leader, p.leader_epoch, p.replicas, p.isr) for p in topic.assignment] == [
            (2, 0, (2,), (2,)),
            (-1, 0, (2,), ()),
        ]
        # Stopped, then restarted after changes and a compaction of etcd's history: it reads
        # everything again and sees the changes it missed.
        nursery.cancel_scope.cancel()
    revision = await election.write(
        [Put(partition_key("t", 1), PartitionState.first((2,), 2, election.epoch).encode())]
    )
    await store._call("/kv/compaction", {"revision": str(revision)})
    async with trio.open_nursery() as nursery:
        await nursery.start(follow_metadata, store, keys, images.append)
        topic = images[-1].topic("t")
        assert topic is not None
        assert [p.leader for p in topic.assignment] == [2, 2]
        await registration.unregister()
        await published_until(lambda image: image.brokers == () and image.controller_id == -1)()
        nursery.cancel_scope.cancel()
