"""Partition reassignments (KIP-455): starting, cancelling and completing them over a metadata
image, the controller's writes for them, and the records that carry them."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import replace
from typing import cast

import trio

from kafkacompat.cluster.cluster_admin import ClusterAdmin
from kafkacompat.cluster.controller_loop import controller_writes
from kafkacompat.cluster.etcd_store import Compare, Entry, EtcdStore, Put
from kafkacompat.cluster.metadata_follower import ImageUpdates, MetadataKeys
from kafkacompat.cluster.metadata_image import (
    BrokerInfo,
    MetadataImage,
    MetadataView,
    PartitionImage,
    TopicImage,
)
from kafkacompat.cluster.metadata_records import (
    PartitionState,
    TopicRecord,
    partition_key,
    topic_key,
)
from kafkacompat.cluster.reassignment import (
    OngoingReassignment,
    ReassignmentResult,
    TopicReassignment,
    completed_reassignments,
    ongoing_reassignments,
    plan_reassignments,
    reassignment_writes,
    shows_reassignment,
)
from kafkacompat.errors import ErrorCode

TOPIC_ID = uuid.uuid5(uuid.NAMESPACE_DNS, "t")
TOPIC_VERSION = 50
INVALID = ErrorCode.INVALID_REPLICA_ASSIGNMENT


def part(
    index: int,
    leader: int,
    replicas: tuple[int, ...],
    isr: tuple[int, ...],
    adding: tuple[int, ...] = (),
    removing: tuple[int, ...] = (),
) -> PartitionImage:
    return PartitionImage(
        index,
        leader,
        4,
        replicas,
        isr,
        version=100 + index,
        adding_replicas=adding,
        removing_replicas=removing,
    )


def image(*partitions: PartitionImage, live: tuple[int, ...] = (1, 2, 3, 4)) -> MetadataImage:
    topic = TopicImage(
        "t",
        TOPIC_ID,
        len(partitions),
        partitions,
        {"retention.ms": "1000"},
        version=TOPIC_VERSION,
    )
    brokers = [BrokerInfo(n, "127.0.0.1", 9090 + n) for n in live]
    return MetadataImage.build("c", 1, brokers, [topic], controller_epoch=7)


def plan(
    at: MetadataImage, index: int, target: Sequence[int] | None
) -> tuple[ReassignmentResult, list[TopicReassignment]]:
    [result], changes = plan_reassignments(at, [("t", index, target)])
    return result, changes


def only(changes: list[TopicReassignment]) -> TopicReassignment:
    [change] = changes
    return change


# -- starting ---------------------------------------------------------------------------------


def test_a_reassignment_adds_the_target_and_keeps_the_original_replicas() -> None:
    at = image(part(0, 1, (1,), (1,)))
    result, changes = plan(at, 0, [2, 3])
    assert result == ReassignmentResult("t", 0, ErrorCode.NONE, None)
    [assigned] = only(changes).partitions
    assert (assigned.replicas, assigned.adding, assigned.removing) == ((2, 3, 1), (2, 3), (1,))
    assert assigned.state is None  # nobody leaves yet: leader and ISR stay
    record = only(changes).record()
    assert record.replicas == ((2, 3, 1),)
    assert (dict(record.adding), dict(record.removing)) == ({0: (2, 3)}, {0: (1,)})
    assert (record.topic_id, dict(record.configs)) == (TOPIC_ID, {"retention.ms": "1000"})


def test_reassigning_to_the_current_replicas_changes_nothing() -> None:
    result, changes = plan(image(part(0, 1, (1, 2), (1, 2))), 0, [1, 2])
    assert (result.error, changes) == (ErrorCode.NONE, [])


def test_a_new_order_of_the_same_replicas_is_complete_at_once() -> None:
    result, changes = plan(image(part(0, 1, (1, 2), (1, 2))), 0, [2, 1])
    [assigned] = only(changes).partitions
    assert (assigned.replicas, assigned.adding, assigned.removing) == ((2, 1), (), ())
    assert assigned.state is None
    assert result.error == ErrorCode.NONE


def test_invalid_targets_are_refused_as_kafka_words_them() -> None:
    at = image(part(0, 1, (1,), (1,)), live=(1, 2, 3))
    requested = [
        ("t", 0, []),
        ("t", 0, [2, 2]),
        ("t", 0, [2, -1]),
        ("t", 0, [2, 9]),
    ]
    results = [plan_reassignments(at, [r])[0][0] for r in requested]
    assert [(r.error, r.message) for r in results] == [
        (INVALID, "Empty replica list specified in partition reassignment."),
        (INVALID, "Duplicate replica ids in partition reassignment replica list: [2, 2]"),
        (INVALID, "Invalid broker id in replica list: [2, -1]"),
        (
            INVALID,
            "Replica assignment has brokers that are not alive. Replica list: [2, 9], "
            "live broker list: [1, 2, 3]",
        ),
    ]
    assert all(not plan_reassignments(at, [r])[1] for r in requested)


def test_unknown_partitions_and_cancels_with_nothing_ongoing() -> None:
    at = image(part(0, 1, (1,), (1,)), part(1, 1, (1,), (1,)))
    results, changes = plan_reassignments(
        at, [("t", 2, [2]), ("nope", 0, [2]), ("t", 0, None), ("t", 1, [3]), ("t", 1, [2])]
    )
    assert [(r.topic, r.partition, r.error) for r in results] == [
        ("t", 2, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION),
        ("nope", 0, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION),
        ("t", 0, ErrorCode.NO_REASSIGNMENT_IN_PROGRESS),
        ("t", 1, ErrorCode.NONE),
    ]
    assert results[2].message == (
        "No partition reassignment is in progress for the relevant partition."
    )
    # Asked twice: the last target counts.
    assert [(p.index, p.adding) for p in only(changes).partitions] == [(1, (2,))]


def test_a_new_target_replaces_an_ongoing_reassignment_from_the_original_replicas() -> None:
    # 1 -> [2, 3] under way, 3 in sync already; now 1 -> [2, 4]: 3 leaves at once.
    at = image(part(0, 1, (2, 3, 1), (1, 3), adding=(2, 3), removing=(1,)))
    _result, changes = plan(at, 0, [2, 4])
    [assigned] = only(changes).partitions
    assert (assigned.replicas, assigned.adding, assigned.removing) == ((2, 4, 1), (2, 4), (1,))
    assert assigned.state == PartitionState(1, 5, (1,), 7)


# -- cancelling -------------------------------------------------------------------------------


def test_a_cancel_goes_back_to_the_original_replicas() -> None:
    at = image(part(0, 1, (2, 3, 1), (1, 2), adding=(2, 3), removing=(1,)))
    result, changes = plan(at, 0, None)
    assert result.error == ErrorCode.NONE
    [assigned] = only(changes).partitions
    assert (assigned.replicas, assigned.adding, assigned.removing) == ((1,), (), ())
    assert assigned.state == PartitionState(1, 5, (1,), 7)
    record = only(changes).record()
    assert (record.replicas, dict(record.adding), dict(record.removing)) == (((1,),), {}, {})


def test_a_cancel_elects_an_original_replica_when_an_added_one_leads() -> None:
    at = image(part(0, 2, (2, 3, 1), (2, 1), adding=(2, 3), removing=(1,)))
    [assigned] = only(plan(at, 0, None)[1]).partitions
    assert assigned.state == PartitionState(1, 5, (1,), 7)


def test_a_cancel_with_no_original_replica_in_sync_elects_the_first_live_one() -> None:
    at = image(part(0, 2, (2, 1, 3), (2,), adding=(2,), removing=()))
    [assigned] = only(plan(at, 0, None)[1]).partitions
    assert assigned.replicas == (1, 3)
    assert assigned.state == PartitionState(1, 5, (1,), 7)


def test_cancelling_only_one_partition_keeps_the_others_reassignment() -> None:
    at = image(
        part(0, 1, (2, 1), (1,), adding=(2,), removing=(1,)),
        part(1, 1, (3, 1), (1,), adding=(3,), removing=(1,)),
    )
    record = only(plan(at, 0, None)[1]).record()
    assert record.replicas == ((1,), (3, 1))
    assert (dict(record.adding), dict(record.removing)) == ({1: (3,)}, {1: (1,)})


# -- completing -------------------------------------------------------------------------------


def test_nothing_completes_until_every_target_replica_is_in_sync() -> None:
    at = image(part(0, 1, (2, 3, 1), (1, 2), adding=(2, 3), removing=(1,)))
    assert completed_reassignments(at, {1, 2, 3}, 8) == []


def test_completion_takes_the_target_and_a_leader_from_it() -> None:
    at = image(part(0, 1, (2, 3, 1), (1, 3, 2), adding=(2, 3), removing=(1,)))
    [done] = completed_reassignments(at, {1, 2, 3}, 8)
    [assigned] = done.partitions
    assert (assigned.replicas, assigned.adding, assigned.removing) == ((2, 3), (), ())
    assert assigned.state == PartitionState(2, 5, (2, 3), 8)
    record = done.record()
    assert (record.replicas, dict(record.adding), dict(record.removing)) == (((2, 3),), {}, {})


def test_a_leader_in_the_target_keeps_leading_at_the_next_epoch() -> None:
    at = image(part(0, 3, (2, 3, 1), (1, 2, 3), adding=(2,), removing=(1,)))
    [assigned] = completed_reassignments(at, {1, 2, 3}, 8)[0].partitions
    assert assigned.state == PartitionState(3, 5, (2, 3), 8)


def test_a_dead_in_sync_target_replica_does_not_lead() -> None:
    at = image(part(0, 1, (2, 3, 1), (1, 2, 3), adding=(2, 3), removing=(1,)))
    [assigned] = completed_reassignments(at, {1, 3}, 8)[0].partitions
    assert assigned.state == PartitionState(3, 5, (2, 3), 8)
    # No target replica alive: it waits.
    assert completed_reassignments(at, {1}, 8) == []


def test_adding_replicas_only_needs_no_new_state() -> None:
    at = image(part(0, 1, (1, 2), (1, 2), adding=(2,)))
    [assigned] = completed_reassignments(at, {1, 2}, 8)[0].partitions
    assert (assigned.replicas, assigned.state) == ((1, 2), None)


def test_the_controller_writes_completions_guarded_by_topic_and_partition_versions() -> None:
    at = image(
        part(0, 1, (2, 1), (1, 2), adding=(2,), removing=(1,)),
        part(1, 1, (1,), (1,)),
    )
    writes, guards = controller_writes(at, 8)
    record = TopicRecord.decode(
        next(w.value for w in writes if w.key == topic_key("t") and w.value is not None)
    )
    assert record.replicas == ((2,), (1,))
    assert (dict(record.adding), dict(record.removing)) == ({}, {})
    assert Put(partition_key("t", 0), PartitionState(2, 5, (2,), 8).encode()) in writes
    assert len(writes) == 2
    assert Compare(topic_key("t"), "MOD", "EQUAL", TOPIC_VERSION) in guards
    assert Compare(partition_key("t", 0), "MOD", "EQUAL", 100) in guards


def test_a_partition_with_a_leadership_change_completes_later() -> None:
    # Broker 1 died: the controller first elects 2; the reassignment completes on the next image.
    at = image(part(0, 1, (2, 1), (1, 2), adding=(2,), removing=(1,)), live=(2, 3))
    writes, _guards = controller_writes(at, 8)
    assert [w.key for w in writes] == [partition_key("t", 0)]
    assert writes[0].value == PartitionState(2, 5, (2,), 8).encode()


def test_reassignment_writes_leave_out_the_partitions_written_otherwise() -> None:
    at = image(
        part(0, 1, (2, 1), (1, 2), adding=(2,), removing=(1,)),
        part(1, 1, (3, 1), (1, 3), adding=(3,), removing=(1,)),
    )
    completed = completed_reassignments(at, {1, 2, 3}, 8)
    writes, _guards = reassignment_writes(completed, skip={partition_key("t", 0)})
    [value] = [w.value for w in writes if w.key == topic_key("t")]
    assert value is not None
    record = TopicRecord.decode(value)
    assert record.replicas == ((2, 1), (3,))
    assert (dict(record.adding), dict(record.removing)) == ({0: (2,)}, {0: (1,)})
    assert reassignment_writes(completed, skip={partition_key("t", 0), partition_key("t", 1)}) == (
        [],
        [],
    )


def test_an_image_shows_a_reassignment_once_the_topic_or_partition_moved_on() -> None:
    at = image(part(0, 1, (1,), (1,)))
    change = only(plan(at, 0, [2])[1])
    assert not shows_reassignment(at, change)
    moved = at.with_topic(TopicImage("t", TOPIC_ID, 1, at.topics["t"].assignment, version=51))
    assert shows_reassignment(moved, change)
    rewritten = replace(at.topics["t"].assignment[0], version=101)
    assert shows_reassignment(
        at.with_topic(TopicImage("t", TOPIC_ID, 1, (rewritten,), version=TOPIC_VERSION)), change
    )
    assert shows_reassignment(at.without_topic("t"), change)


# -- listing, records and images ---------------------------------------------------------------


def test_ongoing_reassignments_by_topic_and_partition() -> None:
    at = image(
        part(0, 1, (2, 1), (1,), adding=(2,), removing=(1,)),
        part(1, 1, (1,), (1,)),
        part(2, 1, (3, 1), (1,), adding=(3,)),
    )
    assert ongoing_reassignments(at, None) == [
        OngoingReassignment("t", 0, (2, 1), (2,), (1,)),
        OngoingReassignment("t", 2, (3, 1), (3,), ()),
    ]
    assert ongoing_reassignments(at, {"t": [1, 2, 7], "nope": [0]}) == [
        OngoingReassignment("t", 2, (3, 1), (3,), ())
    ]
    assert ongoing_reassignments(at, {}) == []


def test_records_without_reassignments_read_as_before() -> None:
    old = json.dumps({"id": str(TOPIC_ID), "replicas": [[1, 2]], "configs": {}}).encode()
    record = TopicRecord.decode(old)
    assert (dict(record.adding), dict(record.removing)) == ({}, {})
    assert b"adding" not in record.encode()
    moving = TopicRecord(TOPIC_ID, ((3, 1, 2),), adding={0: (3,)}, removing={0: (1, 2)})
    assert TopicRecord.decode(moving.encode()) == moving


def test_the_follower_images_adding_and_removing_replicas_and_the_topic_version() -> None:
    keys = MetadataKeys("c")
    record = TopicRecord(TOPIC_ID, ((3, 1), (1,)), adding={0: (3,)}, removing={0: (1,)})
    state = PartitionState(1, 2, (1,), 1)
    keys.load(
        30,
        [
            Entry(topic_key("t"), record.encode(), 10, 20),
            Entry(partition_key("t", 0), state.encode(), 11, 25),
        ],
    )
    topic = keys.image().topic("t")
    assert topic is not None and topic.version == 20
    first, second = topic.assignment
    assert (first.replicas, first.adding_replicas, first.removing_replicas) == ((3, 1), (3,), (1,))
    assert (first.version, second.adding_replicas, second.removing_replicas) == (25, (), ())


# -- the admin's writes ------------------------------------------------------------------------


class FakeStore:
    """Answers transactions, optionally losing the first; records what was written."""

    def __init__(self, lose: int = 0) -> None:
        self.lose = lose
        self.written: list[tuple[list[Compare], list[Put]]] = []

    async def transaction(self, compares: list[Compare], writes: list[Put]) -> tuple[bool, int]:
        self.written.append((compares, writes))
        if self.lose:
            self.lose -= 1
            return False, 1
        return True, 1


async def test_the_admin_writes_a_start_and_answers_once_the_image_shows_it() -> None:
    at = image(part(0, 1, (1,), (1,)))
    updates = ImageUpdates(MetadataView(at))
    store = FakeStore()
    admin = ClusterAdmin(cast(EtcdStore, store), updates, 1, lambda _n, c: {})

    async def show_written() -> None:
        await trio.sleep(0.01)
        moved = at.topics["t"]
        updates.publish(
            at.with_topic(TopicImage("t", TOPIC_ID, 1, moved.assignment, moved.configs, version=60))
        )

    async with trio.open_nursery() as nursery:
        nursery.start_soon(show_written)
        results = await admin.alter_partition_reassignments([("t", 0, [2, 3]), ("t", 5, [2])], 5)
    assert [(r.partition, r.error) for r in results] == [
        (0, ErrorCode.NONE),
        (5, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION),
    ]
    [(compares, writes)] = store.written
    assert Compare(topic_key("t"), "MOD", "EQUAL", TOPIC_VERSION) in compares
    assert [w.key for w in writes] == [topic_key("t")]


async def test_the_admin_times_out_when_its_write_never_shows() -> None:
    at = image(part(0, 1, (1,), (1,)))
    store = cast(EtcdStore, FakeStore())
    admin = ClusterAdmin(store, ImageUpdates(MetadataView(at)), 1, lambda _n, c: {})
    with trio.fail_after(2):
        results = await admin.alter_partition_reassignments([("t", 0, [2])], 0.05)
    assert [r.error for r in results] == [ErrorCode.REQUEST_TIMED_OUT]
