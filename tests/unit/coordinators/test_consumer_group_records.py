"""KIP-848 consumer groups in ``__consumer_offsets`` as Kafka writes them: key versions 3 to 8,
value version 0 (flexible). The expected bytes are written out from Kafka's schemas by hand;
then round trips, what a save writes (only what changed; tombstones when a member leaves and
when the group goes), tolerance of bytes that do not decode, and the JSON form of before."""

from __future__ import annotations

import json
import struct
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from kafkacompat.coordinators.consumer_group_persistence import (
    ConsumerGroupStore,
    entry_key,
    group_entries,
    restore_group,
)
from kafkacompat.coordinators.consumer_group_state import (
    ClassicMemberMetadata,
    ConsumerGroup,
    ConsumerMember,
    MemberState,
)
from kafkacompat.coordinators.internal_records import (
    CONSUMER_GROUP_KEY_VERSION,
    GROUP_RECORDS,
    LEGACY_CONSUMER_GROUP_KIND,
)
from kafkacompat.storage.state_store import StateStore

T = uuid.UUID("00000000-0000-0000-0000-0000000000a1")
U = uuid.UUID("00000000-0000-0000-0000-0000000000b2")


def s16(text: str) -> bytes:
    """A non-flexible string: int16 length, UTF-8."""
    return struct.pack(">h", len(text)) + text.encode()


def group() -> ConsumerGroup:
    g = ConsumerGroup(
        "g1",
        group_epoch=5,
        assignment_epoch=3,
        assignor_name="uniform",
        state_timestamp=1000,
        subscribed_topics={"t": (T, 4)},
        target={"m": {T: frozenset({0, 2})}},
    )
    m = ConsumerMember(
        "m",
        instance_id=None,
        rack_id="r",
        client_id="c",
        client_host="/h",
        rebalance_timeout_ms=60_000,
        subscribed_topic_names=("t",),
        server_assignor="range",
        member_epoch=3,
        previous_member_epoch=2,
        state=MemberState.UNREVOKED_PARTITIONS,
        assigned={T: frozenset({1})},
        pending_revocation={U: frozenset({2})},
    )
    g.add(m)
    g.claim("m", m.assigned)
    g.claim("m", m.pending_revocation)
    return g


def records(g: ConsumerGroup) -> dict[int, tuple[bytes, bytes | None]]:
    """The group's records by key version (one member: one record of each)."""
    out = {}
    for key, value in group_entries(g).items():
        record = GROUP_RECORDS.to_record(key, value)
        out[struct.unpack_from(">h", record[0])[0]] = record
    return out


# -- the bytes, per record type ------------------------------------------------------------------


def test_group_metadata_is_key_3_with_our_tag_kafka_skips() -> None:
    key, value = records(group())[3]
    assert key == b"\x00\x03" + s16("g1")
    # Epoch 5, then one tagged field: tag 0x7F03 (uvarint 83 FE 01), 17 bytes: the assignor
    # (compact string), the state timestamp (int64) and an empty tag section.
    ours = b"\x08uniform" + struct.pack(">q", 1000) + b"\x00"
    assert value == b"\x00\x00" + b"\x00\x00\x00\x05" + b"\x01" + b"\x83\xfe\x01\x11" + ours


def test_partition_metadata_is_key_4() -> None:
    key, value = records(group())[4]
    assert key == b"\x00\x04" + s16("g1")
    topic = T.bytes + b"\x02t" + b"\x00\x00\x00\x04" + b"\x01" + b"\x00"  # no racks, no tags
    assert value == b"\x00\x00" + b"\x02" + topic + b"\x00"


def test_member_metadata_is_key_5() -> None:
    key, value = records(group())[5]
    assert key == b"\x00\x05" + s16("g1") + s16("m")
    assert value == (
        b"\x00\x00"
        + b"\x00"  # InstanceId: null
        + b"\x02r"  # RackId
        + b"\x02c"  # ClientId
        + b"\x03/h"  # ClientHost
        + b"\x02\x02t"  # SubscribedTopicNames
        + b"\x00"  # SubscribedTopicRegex: null
        + b"\x00\x00\xea\x60"  # RebalanceTimeoutMs 60000
        + b"\x06range"  # ServerAssignor
        + b"\x00"  # no tagged fields: ClassicMemberMetadata is null
    )


def test_a_classic_members_metadata_is_tagged_field_0() -> None:
    g = group()
    g.members["m"].classic = ClassicMemberMetadata(30_000, [("range", b"\x01\x02")])
    _, value = records(g)[5]
    classic = (
        b"\x01"  # present
        + b"\x00\x00\x75\x30"  # SessionTimeoutMs 30000
        + b"\x02"  # one protocol
        + b"\x06range"
        + b"\x03\x01\x02"  # Metadata (compact bytes)
        + b"\x00"  # the protocol's tags
        + b"\x00"  # the struct's tags
    )
    assert len(classic) == 17
    assert value is not None and value.endswith(b"\x06range" + b"\x01\x00\x11" + classic)
    back = restore_group("g1", group_entries(g))
    assert back is not None and back.members["m"].classic == g.members["m"].classic


def test_target_assignment_metadata_is_key_6() -> None:
    key, value = records(group())[6]
    assert key == b"\x00\x06" + s16("g1")
    assert value == b"\x00\x00" + b"\x00\x00\x00\x03" + b"\x00"


def test_target_assignment_member_is_key_7() -> None:
    key, value = records(group())[7]
    assert key == b"\x00\x07" + s16("g1") + s16("m")
    partitions = b"\x03" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x02"
    assert value == b"\x00\x00" + b"\x02" + T.bytes + partitions + b"\x00" + b"\x00"


def test_current_member_assignment_is_key_8() -> None:
    key, value = records(group())[8]
    assert key == b"\x00\x08" + s16("g1") + s16("m")
    assert value == (
        b"\x00\x00"
        + b"\x00\x00\x00\x03"  # MemberEpoch
        + b"\x00\x00\x00\x02"  # PreviousMemberEpoch
        + b"\x01"  # State: UNREVOKED_PARTITIONS
        + b"\x02" + T.bytes + b"\x02\x00\x00\x00\x01\x00"  # AssignedPartitions
        + b"\x02" + U.bytes + b"\x02\x00\x00\x00\x02\x00"  # PartitionsPendingRevocation
        + b"\x00"
    )  # fmt: skip


def test_kafkas_own_records_decode() -> None:
    """Records as Kafka writes them (no tag of ours; states 0 and 2) are read."""
    entries = {}
    for version, key, value in [
        (3, s16("k"), b"\x00\x00\x00\x00\x00\x07\x00"),
        (6, s16("k"), b"\x00\x00\x00\x00\x00\x07\x00"),
        (5, s16("k") + s16("a"), b"\x00\x00\x04i-1\x00\x02c\x02h\x01\x00\xff\xff\xff\xff\x00\x00"),
        (8, s16("k") + s16("a"), b"\x00\x00\x00\x00\x00\x07\x00\x00\x00\x06\x02\x01\x01\x00"),
    ]:
        back = GROUP_RECORDS.from_record(struct.pack(">h", version) + key, value)
        assert back is not None and back[1] == value
        entries[back[0]] = value
    g = restore_group("k", entries)
    assert g is not None
    assert (g.group_epoch, g.assignment_epoch, g.assignor_name, g.state_timestamp) == (
        7,
        7,
        "uniform",
        -1,
    )
    a = g.members["a"]
    assert (a.instance_id, a.client_id, a.rebalance_timeout_ms, a.classic) == ("i-1", "c", -1, None)
    assert (a.member_epoch, a.previous_member_epoch, a.state) == (
        7,
        6,
        MemberState.UNRELEASED_PARTITIONS,
    )
    assert g.static_members == {"i-1": "a"}


# -- round trips ---------------------------------------------------------------------------------


def test_records_round_trip_through_the_codec_and_back_to_the_group() -> None:
    g = group()
    g.members["m"].subscribed_topic_regex = "t.*"
    entries = group_entries(g)
    for key, value in entries.items():
        record_key, record_value = GROUP_RECORDS.to_record(key, value)
        assert GROUP_RECORDS.from_record(record_key, record_value) == (key, value)
        assert GROUP_RECORDS.to_record(key, None) == (record_key, None)
        assert GROUP_RECORDS.from_record(record_key, None) == (key, None)
    back = restore_group("g1", entries)
    assert back is not None
    assert back.members == g.members and back.owners == g.owners and back.target == g.target
    assert (back.group_epoch, back.assignment_epoch, back.subscribed_topics) == (
        5,
        3,
        {"t": (T, 4)},
    )
    assert (back.assignor_name, back.state_timestamp) == ("uniform", 1000)
    assert group_entries(back) == entries


def test_records_that_do_not_decode_are_skipped() -> None:
    key = b"\x00\x08" + s16("g1") + s16("m")
    assert GROUP_RECORDS.from_record(key, b"\x00\x00\x00") is None  # cut short
    assert GROUP_RECORDS.from_record(key, b"\x00\x01" + b"\x00" * 12) is None  # value v1
    bad_state = b"\x00\x00" + b"\x00" * 8 + b"\x7f\x01\x01\x00"
    assert GROUP_RECORDS.from_record(key, bad_state) is None  # MemberState UNKNOWN
    assert GROUP_RECORDS.from_record(b"\x00\x08" + s16("g1"), None) is None  # no member id
    assert GROUP_RECORDS.from_record(b"\x00\x03\x00\x05g", None) is None  # string cut short
    # In the store too: the member whose metadata does not decode is left out.
    g = group()
    g.add(ConsumerMember("x"))
    entries = group_entries(g)
    entries[entry_key(5, "g1", "x")] = b"\x00\x00\xff"
    back = restore_group("g1", entries)
    assert back is not None and set(back.members) == {"m"}
    assert restore_group("g1", {entry_key(3, "g1"): b"junk"}) is None


# -- saving --------------------------------------------------------------------------------------


class Recording:
    """A namespace in memory that records each batch written."""

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}
        self.batches: list[list[tuple[bytes, bytes | None]]] = []

    def get(self, key: bytes) -> bytes | None:
        return self.data.get(key)

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        return iter(list(self.data.items()))

    def __len__(self) -> int:
        return len(self.data)

    def __contains__(self, key: object) -> bool:
        return key in self.data

    def put(self, key: bytes, value: bytes | None) -> None:
        self.put_many([(key, value)])

    def delete(self, key: bytes) -> None:
        self.put_many([(key, None)])

    def put_many(self, entries: Iterable[tuple[bytes, bytes | None]]) -> None:
        batch = list(entries)
        self.batches.append(batch)
        for key, value in batch:
            if value is None:
                self.data.pop(key, None)
            else:
                self.data[key] = value

    @property
    def file_size(self) -> int:
        return 0

    def last(self) -> list[tuple[int, str | None, bool]]:
        """The last batch as Kafka's records: (key version, member id, tombstone?)."""
        out = []
        for key, value in self.batches[-1]:
            record_key, record_value = GROUP_RECORDS.to_record(key, value)
            (version,) = struct.unpack_from(">h", record_key)
            member = record_key[8:].decode() if version in (5, 7, 8) else None  # group "g1"
            out.append((version, member, record_value is None))
        return out


def test_a_save_writes_only_what_changed() -> None:
    ns = Recording()
    store = ConsumerGroupStore(ns)
    g = group()
    store.save(g)
    assert [(v, t) for v, _, t in ns.last()] == [(v, False) for v in (5, 4, 3, 7, 6, 8)]
    store.save(g)
    assert len(ns.batches) == 1  # nothing changed, nothing written
    g.members["m"].member_epoch = 5
    store.save(g)
    assert ns.last() == [(8, "m", False)]


def test_a_member_leaving_tombstones_its_three_records() -> None:
    ns = Recording()
    store = ConsumerGroupStore(ns)
    g = group()
    g.add(ConsumerMember("n", subscribed_topic_names=("t",)))
    g.target["n"] = {T: frozenset({1})}
    store.save(g)
    g.remove("n")
    g.bump_epoch()
    store.save(g)
    assert ns.last() == [
        (8, "n", True),
        (7, "n", True),
        (5, "n", True),
        (3, None, False),
    ]
    assert not any(key.endswith(b"\x00\x01n") for key in ns.data)


def test_deleting_the_group_tombstones_every_record_in_kafkas_order() -> None:
    ns = Recording()
    store = ConsumerGroupStore(ns)
    store.save(group())
    store.delete("g1")
    assert [(v, t) for v, _, t in ns.last()] == [(v, True) for v in (8, 7, 6, 5, 4, 3)]
    assert ns.data == {}
    store.delete("g1")
    assert len(ns.batches) == 2


def test_groups_load_back_from_a_state_store(tmp_path: Path) -> None:
    state = StateStore(tmp_path, fsync=False)
    store = ConsumerGroupStore(state.namespace("groups"))
    g = group()
    other = ConsumerGroup("g2", group_epoch=1, assignment_epoch=1)
    store.save(g)
    store.save(other)
    state.close()
    state = StateStore(tmp_path, fsync=False)
    ns = state.namespace("groups")
    loaded = ConsumerGroupStore(ns).load()
    assert set(loaded) == {"g1", "g2"}
    assert loaded["g1"].members == g.members and loaded["g1"].owners == g.owners
    assert group_entries(loaded["g2"]) == group_entries(other)
    state.close()


# -- the JSON form of before ---------------------------------------------------------------------

LEGACY = {
    "group_epoch": 4,
    "assignment_epoch": 4,
    "assignor": "range",
    "state_timestamp": 77,
    "topics": {"t": [str(T), 4]},
    "target": {"m": {str(T): [0, 1]}},
    "members": [
        {
            "member_id": "m",
            "instance_id": "i",
            "rack_id": None,
            "client_id": "c",
            "client_host": "/h",
            "rebalance_timeout_ms": 1000,
            "topic_names": ["t"],
            "topic_regex": None,
            "server_assignor": None,
            "epoch": 4,
            "previous_epoch": 3,
            "state": "stable",
            "assigned": {str(T): [0, 1]},
            "pending_revocation": {},
            "classic": None,
        }
    ],
}


def _check_legacy(g: ConsumerGroup) -> None:
    assert (g.group_epoch, g.assignor_name, g.state_timestamp) == (4, "range", 77)
    assert g.members["m"].assigned == {T: frozenset({0, 1})}
    assert g.owners == {(T, 0): "m", (T, 1): "m"} and g.static_members == {"i": "m"}


@pytest.mark.parametrize("where", ["state store", "internal topic"])
def test_a_group_in_the_json_of_before_loads_and_is_rewritten(where: str) -> None:
    raw = json.dumps(LEGACY).encode()
    ns = Recording()
    legacy_record = struct.pack(">h", CONSUMER_GROUP_KEY_VERSION) + s16("g1")
    if where == "state store":
        ns.data[b"\x03" + s16("g1")] = raw
    else:
        back = GROUP_RECORDS.from_record(legacy_record, b"\x00\x00" + raw)
        assert back == (bytes([LEGACY_CONSUMER_GROUP_KIND]) + s16("g1"), raw)
        ns.data[back[0]] = back[1]
    store = ConsumerGroupStore(ns)
    loaded = store.load()
    _check_legacy(loaded["g1"])
    store.save(loaded["g1"])
    versions = [(v, t) for v, _, t in ns.last()]
    # The old record is tombstoned (or, in a state store, its key now holds the new value).
    assert versions[0] == (CONSUMER_GROUP_KEY_VERSION, True)
    assert [v for v, t in versions[1:] if not t] == [5, 4, 3, 7, 6, 8]
    assert not any(key[0] == LEGACY_CONSUMER_GROUP_KIND for key in ns.data)
    assert not any(value[:1] == b"{" for value in ns.data.values())
    _check_legacy(ConsumerGroupStore(ns).load()["g1"])


def test_a_json_value_under_kind_3_goes_out_as_the_old_record() -> None:
    """As when a state store of before is moved into the internal topic."""
    raw = json.dumps(LEGACY).encode()
    key, value = GROUP_RECORDS.to_record(b"\x03" + s16("g1"), raw)
    assert (key, value) == (
        struct.pack(">h", CONSUMER_GROUP_KEY_VERSION) + s16("g1"),
        b"\x00\x00" + raw,
    )


def test_new_records_win_over_the_old_one() -> None:
    ns = Recording()
    ns.data[bytes([LEGACY_CONSUMER_GROUP_KIND]) + s16("g1")] = json.dumps(LEGACY).encode()
    ns.data.update(group_entries(group()))
    store = ConsumerGroupStore(ns)
    g = store.load()["g1"]
    assert g.group_epoch == 5
    store.save(g)
    assert ns.last() == [(CONSUMER_GROUP_KEY_VERSION, None, True)]
