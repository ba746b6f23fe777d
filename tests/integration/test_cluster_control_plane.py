"""Three brokers' control planes on a real etcd: one controller elected from the live members, a
topic created through any broker gets leaders spread over all three, a broker that dies loses
its leaderships and the controller role within its session timeout (measured), and a broker that
returns leads again where nobody else could."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping

import pytest
import trio

from kafkacompat.cluster.cluster_member import ClusterMember, MemberSettings
from kafkacompat.cluster.etcd_store import EtcdStore, parse_store_url
from kafkacompat.cluster.metadata_image import BrokerEndpoint, BrokerInfo, MetadataImage
from kafkacompat.errors import ErrorCode, KafkaError
from kafkacompat.testing_etcd import EtcdServer, etcd_available

pytestmark = pytest.mark.skipif(not etcd_available(), reason="etcd is not installed (etcd-server)")

SESSION = 2.0
SETTINGS = MemberSettings(session_timeout=SESSION, heartbeat_interval=0.5, admin_timeout=10)


@pytest.fixture(scope="module")
def etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdServer]:
    with EtcdServer(tmp_path_factory.mktemp("etcd") / "data") as server:
        yield server


def keep_configs(_name: str, configs: Mapping[str, str | None]) -> dict[str, str]:
    return {k: v for k, v in configs.items() if v is not None}


def member(etcd: EtcdServer, prefix: str, node_id: int, settings: MemberSettings) -> ClusterMember:
    endpoints, _ = parse_store_url(etcd.url)
    info = BrokerInfo(
        node_id,
        "127.0.0.1",
        9090 + node_id,
        endpoints=(BrokerEndpoint("PLAINTEXT", "127.0.0.1", 9090 + node_id),),
    )
    return ClusterMember(EtcdStore(endpoints, prefix), "cluster-t", info, keep_configs, settings)


async def until(member: ClusterMember, check: Callable[[MetadataImage], bool]) -> MetadataImage:
    with trio.fail_after(10):
        return await member.updates.wait_for(check)


async def run_member(nursery: trio.Nursery, node: ClusterMember) -> trio.CancelScope:
    """Start ``node`` in a cancel scope of its own (cancelling it is the broker dying)."""

    async def body(task_status: trio.TaskStatus[trio.CancelScope]) -> None:
        with trio.CancelScope() as scope:
            await node.run(task_status=_Relay(task_status, scope))

    scope: trio.CancelScope = await nursery.start(body)
    return scope


class _Relay:
    def __init__(self, status: trio.TaskStatus[trio.CancelScope], scope: trio.CancelScope) -> None:
        self.status = status
        self.scope = scope

    def started(self, _value: object = None) -> None:
        self.status.started(self.scope)


async def test_three_brokers_one_controller_and_failover(
    etcd: EtcdServer, request: pytest.FixtureRequest
) -> None:
    prefix = f"/test/{request.node.name}"
    nodes = [member(etcd, prefix, node_id, SETTINGS) for node_id in (1, 2, 3)]
    async with trio.open_nursery() as nursery:
        scopes = [await run_member(nursery, node) for node in nodes]
        for node in nodes:
            await until(node, lambda image: len(image.brokers) == 3 and image.controller_id > 0)
        controllers = {node.image.controller_id for node in nodes}
        assert len(controllers) == 1
        [controller_id] = controllers
        assert sum(node.election.is_controller for node in nodes) == 1

        # Created through a broker that is not the controller: 6 partitions, 2 replicas each.
        creator = next(n for n in nodes if n.info.node_id != controller_id)
        creator.admin.default_replication_factor = 2
        topic = await creator.admin.create_topic("orders", 6, {"retention.ms": "60000"})
        assert topic.partitions == 6
        assert Counter(p.leader for p in topic.assignment) == {1: 2, 2: 2, 3: 2}
        for partition in topic.assignment:
            assert partition.leader == partition.replicas[0]
            assert partition.isr == partition.replicas
            assert partition.leader_epoch == 0
        for node in nodes:
            await until(node, lambda image: image.topic("orders") == topic)
        with pytest.raises(KafkaError) as exists:
            await nodes[0].admin.create_topic("orders", 1)
        assert exists.value.code == ErrorCode.TOPIC_ALREADY_EXISTS

        # The controller dies (as kill -9: no clean leave, its lease must run out).
        dead = next(n for n in nodes if n.info.node_id == controller_id)
        dead.registration.lease = 0  # so its cancelled run() has no lease to revoke
        died = time.monotonic()
        scopes[nodes.index(dead)].cancel()
        survivor = next(n for n in nodes if n is not dead)
        image = await until(
            survivor,
            lambda image: (
                image.controller_id not in (-1, controller_id)
                and all(
                    p.leader != controller_id for p in (image.topic("orders") or topic).assignment
                )
            ),
        )
        failover = time.monotonic() - died
        print(f"controller failover and leader moves took {failover:.2f} s (session {SESSION} s)")
        assert failover < SESSION + 2.0
        assert [b.node_id for b in image.brokers] == sorted(
            n.info.node_id for n in nodes if n is not dead
        )
        moved = image.topic("orders")
        assert moved is not None
        for before, after in zip(topic.assignment, moved.assignment, strict=True):
            if controller_id in before.replicas:
                assert controller_id not in after.isr
                assert after.leader_epoch == before.leader_epoch + 1
                assert after.leader in before.replicas
            else:
                assert after == before
        # The new controller can create topics.
        created = await survivor.admin.create_topic("after-failover", 2)
        assert all(
            p.leader in (n.info.node_id for n in nodes if n is not dead) for p in created.assignment
        )
        nursery.cancel_scope.cancel()


async def test_a_partition_whose_replicas_all_died_waits_for_them(
    etcd: EtcdServer, request: pytest.FixtureRequest
) -> None:
    prefix = f"/test/{request.node.name}"
    nodes = [member(etcd, prefix, node_id, SETTINGS) for node_id in (1, 2)]
    async with trio.open_nursery() as nursery:
        scopes = [await run_member(nursery, node) for node in nodes]
        await until(nodes[0], lambda image: len(image.brokers) == 2 and image.controller_id > 0)
        topic = await nodes[0].admin.create_topic("solo", 2)
        on_two = [p.index for p in topic.assignment if p.leader == 2]
        assert len(on_two) == 1
        scopes[1].cancel()  # broker 2 leaves cleanly (its lease ends at once)
        image = await until(
            nodes[0],
            lambda image: all(
                p.leader == -1
                for p in (image.topic("solo") or topic).assignment
                if p.index in on_two
            ),
        )
        offline = image.topic("solo")
        assert offline is not None
        assert offline.assignment[on_two[0]].isr == (2,)
        back = member(etcd, prefix, 2, SETTINGS)
        await run_member(nursery, back)
        image = await until(
            nodes[0],
            lambda image: all(p.leader >= 0 for p in (image.topic("solo") or topic).assignment),
        )
        returned = image.topic("solo")
        assert returned is not None
        assert returned.assignment[on_two[0]].leader == 2
        nursery.cancel_scope.cancel()
