"""Preferred and unclean elections (ElectLeaders), the imbalance check, and the controller's
writes for them: pure decisions over a metadata image."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import replace
from functools import partial
from typing import cast

import trio

from kafkacompat.cluster.cluster_admin import ClusterAdmin
from kafkacompat.cluster.controller_election import ControllerElection
from kafkacompat.cluster.controller_loop import controller_writes, rebalance_writes, run_controller
from kafkacompat.cluster.etcd_store import Compare, EtcdStore, Put
from kafkacompat.cluster.leader_election import (
    ElectionResult,
    ElectionSettings,
    ElectionType,
    all_partitions,
    election_settings,
    plan_elections,
    rebalance_changes,
    shows_election,
)
from kafkacompat.cluster.metadata_follower import ImageUpdates
from kafkacompat.cluster.metadata_image import (
    BrokerInfo,
    MetadataImage,
    MetadataView,
    PartitionImage,
    TopicImage,
)
from kafkacompat.cluster.metadata_records import PartitionState
from kafkacompat.config import Config
from kafkacompat.errors import ErrorCode

PREFERRED, UNCLEAN = ElectionType.PREFERRED, ElectionType.UNCLEAN


def part(
    index: int, leader: int, epoch: int, replicas: tuple[int, ...], isr: tuple[int, ...]
) -> PartitionImage:
    return PartitionImage(index, leader, epoch, replicas, isr, version=100 + index)


def topic(
    name: str, *partitions: PartitionImage, configs: Mapping[str, str] | None = None
) -> TopicImage:
    return TopicImage(
        name, uuid.uuid5(uuid.NAMESPACE_DNS, name), len(partitions), partitions, configs or {}
    )


def image(*topics: TopicImage, live: tuple[int, ...] = (1, 2, 3)) -> MetadataImage:
    brokers = [BrokerInfo(n, "127.0.0.1", 9090 + n) for n in live]
    return MetadataImage.build("c", 1, brokers, topics, controller_epoch=7)


def results(
    img: MetadataImage, kind: ElectionType, partitions: list[tuple[str, int]], live: set[int]
) -> list[tuple[int, ErrorCode, PartitionState | None]]:
    return [
        (o.result.partition, o.result.error, None if o.change is None else o.change[2])
        for o in plan_elections(img, kind, partitions, live)
    ]


def test_preferred_election_moves_leadership_back_keeping_the_isr() -> None:
    img = image(
        topic(
            "t",
            part(0, 2, 4, (1, 2, 3), (2, 3, 1)),  # preferred 1 alive and in sync
            part(1, 2, 4, (2, 3, 1), (2, 3, 1)),  # preferred leads already
            part(2, 3, 4, (1, 2, 3), (3, 2)),  # preferred out of sync
            part(3, 3, 4, (2, 3, 1), (3, 2)),  # preferred in sync but dead
        )
    )
    assert results(img, PREFERRED, [("t", i) for i in range(4)], {1, 3}) == [
        (0, ErrorCode.NONE, PartitionState(1, 5, (2, 3, 1), 7)),
        (1, ErrorCode.ELECTION_NOT_NEEDED, None),
        (2, ErrorCode.PREFERRED_LEADER_NOT_AVAILABLE, None),
        (3, ErrorCode.PREFERRED_LEADER_NOT_AVAILABLE, None),
    ]
    [outcome] = plan_elections(img, PREFERRED, [("t", 0)], {1, 2, 3})
    assert outcome.change is not None and outcome.change[3] == 100  # guarded by its version


def test_unknown_partitions_and_duplicates() -> None:
    img = image(topic("t", part(0, 1, 0, (1,), (1,))))
    outcomes = plan_elections(img, PREFERRED, [("t", 0), ("t", 5), ("x", 0), ("t", 0)], {1})
    assert [o.result for o in outcomes] == [
        ElectionResult("t", 0, ErrorCode.ELECTION_NOT_NEEDED, outcomes[0].result.message),
        ElectionResult(
            "t", 5, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, "The partition does not exist."
        ),
        ElectionResult(
            "x", 0, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, "The partition does not exist."
        ),
    ]


def test_unclean_election_takes_a_live_replica_out_of_sync_when_asked() -> None:
    img = image(
        topic(
            "t",
            part(0, -1, 4, (1, 2, 3), (2,)),  # ISR member 2 dead, 3 alive out of sync
            part(1, 2, 4, (1, 2, 3), (2, 3)),  # leader 2: live in-sync 3 when 2 is dead
            part(2, -1, 4, (1, 2), (1,)),  # no replica alive
        )
    )
    assert results(img, UNCLEAN, [("t", i) for i in range(3)], {3}) == [
        (0, ErrorCode.NONE, PartitionState(3, 5, (3,), 7)),
        (1, ErrorCode.NONE, PartitionState(3, 5, (3,), 7)),
        (2, ErrorCode.ELIGIBLE_LEADERS_NOT_AVAILABLE, None),
    ]
    # A partition whose leader lives needs no election.
    assert results(img, UNCLEAN, [("t", 1)], {2, 3}) == [(1, ErrorCode.ELECTION_NOT_NEEDED, None)]


def test_a_partition_without_its_first_state_is_not_elected() -> None:
    img = image(topic("t", PartitionImage(0, -1, 0, (1, 2), ())))
    assert results(img, UNCLEAN, [("t", 0)], {1, 2}) == [
        (0, ErrorCode.ELIGIBLE_LEADERS_NOT_AVAILABLE, None)
    ]
    assert results(img, PREFERRED, [("t", 0)], {1, 2}) == [
        (0, ErrorCode.PREFERRED_LEADER_NOT_AVAILABLE, None)
    ]
    assert rebalance_changes(img, {1, 2}, 0) == []


def test_all_partitions_and_seeing_the_election_done() -> None:
    img = image(topic("b", part(0, 1, 0, (1,), (1,))), topic("a", part(0, 2, 3, (1, 2), (1, 2))))
    assert all_partitions(img) == [("a", 0), ("b", 0)]
    change = ("a", 0, PartitionState(1, 4, (1, 2), 7), 100)
    assert not shows_election(img, change)
    done = image(topic("a", part(0, 1, 4, (1, 2), (1, 2))))
    later = image(topic("a", part(0, 2, 6, (1, 2), (2,))))
    other = image(topic("a", part(0, 2, 4, (1, 2), (2,))))
    assert shows_election(done, change)
    assert shows_election(later, change)
    assert not shows_election(other, change)
    assert shows_election(image(), change)  # deleted: nothing to wait for


def test_rebalance_follows_kafkas_imbalance_ratio() -> None:
    # Broker 1 prefers 10 partitions and leads 9: 10 % elsewhere, not above the 10 % bar.
    balanced = [part(i, 1, 2, (1, 2, 3), (1, 2, 3)) for i in range(9)]
    balanced.append(part(9, 2, 3, (1, 2, 3), (1, 2, 3)))
    assert rebalance_changes(image(topic("t", *balanced)), {1, 2, 3}, 10) == []
    # Two of ten led elsewhere (20 %): both move back, where the preferred replica can lead.
    off = [*balanced[:8], part(8, 3, 1, (1, 2, 3), (3, 2, 1)), part(9, 2, 3, (1, 2, 3), (2, 3))]
    assert rebalance_changes(image(topic("t", *off)), {1, 2, 3}, 10) == [
        ("t", 8, PartitionState(1, 2, (3, 2, 1), 7), 108)
    ]
    assert rebalance_changes(image(topic("t", *off)), {1, 2, 3}, 20) == []
    # The preferred replica dead: nothing moves.
    assert rebalance_changes(image(topic("t", *off)), {2, 3}, 10) == []


def test_rebalance_writes_are_guarded_and_carry_the_controller_epoch() -> None:
    img = image(topic("t", part(0, 2, 1, (1, 2), (1, 2))))
    writes, guards = rebalance_writes(img, 9, 10)
    assert [w.key for w in writes] == ["partitions/t/0"]
    assert json.loads(writes[0].value or b"") == {
        "leader": 1,
        "leader_epoch": 2,
        "isr": [1, 2],
        "controller_epoch": 9,
    }
    assert [(g.key, g.target, g.result, g.operand) for g in guards] == [
        ("partitions/t/0", "MOD", "EQUAL", 100)
    ]


def test_controller_elects_unclean_where_the_topic_or_the_broker_allows() -> None:
    offline = part(0, -1, 4, (1, 2, 3), (1,))
    live = (2, 3)
    strict = topic("strict", offline)
    loose = topic("loose", offline, configs={"unclean.leader.election.enable": "true"})
    refused = topic("refused", offline, configs={"unclean.leader.election.enable": "false"})
    img = image(strict, loose, refused, live=live)
    writes, _ = controller_writes(img, 7)
    assert [(w.key, json.loads(w.value or b"")["leader"]) for w in writes] == [
        ("partitions/loose/0", 2)
    ]
    writes, _ = controller_writes(img, 7, unclean=True)
    assert [w.key for w in writes] == ["partitions/loose/0", "partitions/strict/0"]
    assert json.loads(writes[1].value or b"")["isr"] == [2]


def test_election_settings_from_the_broker_config() -> None:
    assert election_settings(Config()) == ElectionSettings(False, True, 300.0, 10)
    changed = Config(
        settings={
            "unclean.leader.election.enable": True,
            "auto.leader.rebalance.enable": False,
            "leader.imbalance.check.interval.seconds": 1,
            "leader.imbalance.per.broker.percentage": 0,
        }
    )
    assert election_settings(changed) == ElectionSettings(True, False, 1.0, 0)


class FakeStore:
    """Partition writes by compare-and-set on the partition version, published to ``updates``
    as the metadata follower would; ``race`` changes the partition once before the first write."""

    def __init__(self, updates: ImageUpdates, *, race: bool = False, publish: bool = True) -> None:
        self.updates = updates
        self.race = race
        self.publish = publish
        self.revision = 200
        self.writes: list[tuple[str, PartitionState]] = []

    def _apply(self, name: str, index: int, state: PartitionState) -> None:
        img = self.updates.view.image
        found = img.topic(name)
        assert found is not None
        self.revision += 1
        changed = PartitionImage(
            index,
            state.leader,
            state.leader_epoch,
            found.assignment[index].replicas,
            state.isr,
            version=self.revision,
        )
        assignment = tuple(changed if p.index == index else p for p in found.assignment)
        self.updates.publish(img.with_topic(replace(found, assignment=assignment)))

    async def transaction(self, compares: list[Compare], puts: list[Put]) -> tuple[bool, int]:
        [guard], [put] = compares, puts
        _, name, index = put.key.split("/")
        if self.race:  # the leader shrinks the ISR first (same leader epoch, new version)
            self.race = False
            self._apply(name, int(index), PartitionState(2, 3, (2, 1), 7))
            return False, self.revision
        partition = self.updates.view.image.topics[name].assignment[int(index)]
        if guard.operand != partition.version:
            return False, self.revision
        state = PartitionState.decode(put.value or b"")
        self.writes.append((put.key, state))
        if self.publish:
            self._apply(name, int(index), state)
        return True, self.revision


def admin_over(store_options: dict[str, bool]) -> tuple[ClusterAdmin, FakeStore]:
    led_elsewhere = topic("t", part(0, 2, 3, (1, 2, 3), (1, 2, 3)), part(1, 1, 0, (1, 2), (1, 2)))
    updates = ImageUpdates(MetadataView(image(led_elsewhere)))
    store = FakeStore(updates, **store_options)
    return ClusterAdmin(cast(EtcdStore, store), updates, 1, lambda _n, c: {}), store


async def test_cluster_admin_decides_again_when_the_partition_changed_meanwhile() -> None:
    admin, store = admin_over({"race": True})
    answer = await admin.elect_leaders(PREFERRED, [("t", 0), ("t", 1), ("u", 0)], 5.0)
    assert [(r.partition, r.error) for r in answer] == [
        (0, ErrorCode.NONE),
        (1, ErrorCode.ELECTION_NOT_NEEDED),
        (0, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION),
    ]
    # Decided again on the ISR the leader wrote: that ISR is kept.
    assert store.writes == [("partitions/t/0", PartitionState(1, 4, (2, 1), 7))]
    assert admin.image.topics["t"].assignment[0].leader == 1
    # Every partition: the answer still lists every partition (the handler filters).
    answer = await admin.elect_leaders(PREFERRED, None, 5.0)
    assert [r.error for r in answer] == [ErrorCode.ELECTION_NOT_NEEDED] * 2


async def test_cluster_admin_answers_request_timed_out_when_the_image_never_shows_it() -> None:
    admin, store = admin_over({"publish": False})
    [answer] = await admin.elect_leaders(PREFERRED, [("t", 0)], 0.2)
    assert answer.error == ErrorCode.REQUEST_TIMED_OUT
    assert len(store.writes) == 1


class FakeElection:
    """A controller already elected (epoch 9) that records what it writes."""

    node_id = 1
    epoch = 9
    is_controller = True

    def __init__(self) -> None:
        self.writes: list[tuple[float, list[str]]] = []

    def resign_locally(self) -> None:
        raise AssertionError("not expected")

    async def write(self, writes: list[Put], guards: list[Compare]) -> int:
        self.writes.append((trio.current_time(), [w.key for w in writes]))
        return 1


async def test_the_controller_checks_the_balance_every_interval(autojump_clock: object) -> None:
    led_elsewhere = topic("t", part(0, 2, 3, (1, 2, 3), (1, 2, 3)))
    updates = ImageUpdates(MetadataView(image(led_elsewhere)))
    election = FakeElection()
    settings = ElectionSettings(check_interval=300.0)
    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(
            partial(run_controller, settings=settings),
            cast(ControllerElection, election),
            updates,
            lambda: 1,
        )
        await trio.sleep(299)
        assert election.writes == []
        await trio.sleep(2)
        assert election.writes == [(start + 300, ["partitions/t/0"])]
        await trio.sleep(300)  # the image is unchanged (the fake writes nowhere): asked again
        assert [at - start for at, _ in election.writes] == [300, 600]
        nursery.cancel_scope.cancel()
    # Disabled: never.
    election = FakeElection()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(
            partial(run_controller, settings=ElectionSettings(auto_rebalance=False)),
            cast(ControllerElection, election),
            updates,
            lambda: 1,
        )
        await trio.sleep(3600)
        nursery.cancel_scope.cancel()
    assert election.writes == []
