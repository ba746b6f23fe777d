"""Damaged stored batches (written into the segment file behind the log's back, so no append
validation ran) answer CORRUPT_MESSAGE on every read path that looks inside them, never another
exception."""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from crc32c import crc32c

from kafkacompat.errors import ErrorCode, KafkaError
from kafkacompat.partitions.producer_snapshots import replay
from kafkacompat.partitions.producer_state import PartitionProducerState
from kafkacompat.protocol.control_records import control_batch, marker_type
from kafkacompat.protocol.down_conversion import down_convert
from kafkacompat.protocol.record_codec import decode_batch, read_varint
from kafkacompat.protocol.records import (
    ATTRIBUTES_OFFSET,
    CRC_OFFSET,
    HEADER_SIZE,
    MAGIC_OFFSET,
    iter_batches,
    read_header,
)
from kafkacompat.storage.log_config import LogConfig
from kafkacompat.storage.partition_log import PartitionLog
from kafkacompat.storage.segment import segment_name

from .helpers import batch

TS = 1_000_000
DAMAGED_OFFSET = 4  # in the second of three 3-record batches


@pytest.fixture
def log(tmp_path: Path) -> Iterator[PartitionLog]:
    plog = PartitionLog(tmp_path / "t-0", LogConfig(), now_ms=0)
    for i in range(3):
        plog.append(batch(3, ts=TS + 10 * i, start=3 * i), now_ms=0)
    yield plog
    plog.close()


def segment_file(log: PartitionLog) -> Path:
    return log.directory / f"{segment_name(0)}.log"


def batch_position(log: PartitionLog, offset: int) -> tuple[int, int]:
    """File position and size of the stored batch holding ``offset``."""
    data = segment_file(log).read_bytes()
    for pos, header in iter_batches(data):
        if header.base_offset <= offset <= header.last_offset:
            return pos, header.size
    raise AssertionError(f"no batch holds {offset}")


def damage(log: PartitionLog, mutate: Callable[[bytearray], None], *, fix_crc: bool) -> None:
    """Rewrite the batch holding `DAMAGED_OFFSET` in place in the segment file."""
    pos, size = batch_position(log, DAMAGED_OFFSET)
    path = segment_file(log)
    with path.open("r+b") as f:
        f.seek(pos)
        data = bytearray(f.read(size))
        mutate(data)
        if fix_crc:
            struct.pack_into(">I", data, CRC_OFFSET, crc32c(memoryview(data)[ATTRIBUTES_OFFSET:]))
        f.seek(pos)
        f.write(data)


def flip_record_byte(data: bytearray) -> None:
    data[-3] ^= 0x55


def unknown_codec(data: bytearray) -> None:
    data[ATTRIBUTES_OFFSET + 1] |= 0x07


def more_records(data: bytearray) -> None:
    (count,) = struct.unpack_from(">i", data, HEADER_SIZE - 4)
    struct.pack_into(">i", data, HEADER_SIZE - 4, count + 5)


def huge_record_length(data: bytearray) -> None:
    data[HEADER_SIZE : HEADER_SIZE + 3] = b"\xfe\xff\x7f"


def overlong_varint(data: bytearray) -> None:
    data[HEADER_SIZE:] = b"\xff" * (len(data) - HEADER_SIZE)


def null_header_key(data: bytearray) -> None:
    # The last byte of the first record is its header count (0): make it 1, so a header key
    # length is looked for past the record's end.
    length, pos = read_varint(data, HEADER_SIZE)
    data[pos + length - 1] = 2


RECORD_DAMAGE = {
    "bad crc": (flip_record_byte, False),
    "unknown codec": (unknown_codec, True),
    "more records than stored": (more_records, True),
    "record length past the batch": (huge_record_length, True),
    "overlong varint": (overlong_varint, True),
    "header count": (null_header_key, True),
}


def corrupt(call: Callable[[], object]) -> None:
    with pytest.raises(KafkaError) as err:
        call()
    assert err.value.code == ErrorCode.CORRUPT_MESSAGE


@pytest.mark.parametrize("name", list(RECORD_DAMAGE))
def test_damaged_records(log: PartitionLog, name: str) -> None:
    mutate, fix_crc = RECORD_DAMAGE[name]
    damage(log, mutate, fix_crc=fix_crc)
    stored = log.read(0, 1 << 20).read_bytes()
    pos, _ = batch_position(log, DAMAGED_OFFSET)
    # Timestamp lookup (ListOffsets) that reaches into the damaged batch.
    corrupt(lambda: log.offset_for_timestamp(TS + 10 + 1))
    found = log.offset_for_timestamp(TS)  # found before the damage
    assert found is not None and (found.timestamp, found.offset) == (TS, 0)
    found = log.offset_for_timestamp(TS + 21)  # the damaged batch's max timestamp is lower
    assert found is not None and found.offset == 7
    # Record iteration, down-conversion for old consumers, per-batch decoding.
    corrupt(lambda: list(log.iter_records()))
    corrupt(lambda: list(log.iter_records(DAMAGED_OFFSET)))
    corrupt(lambda: down_convert(stored, 0, 0))
    corrupt(lambda: down_convert(stored, 1, DAMAGED_OFFSET))
    corrupt(lambda: decode_batch(stored, pos))
    assert marker_type(stored, pos) == -1
    # Headers are intact: fetch, read_committed bounds and producer state replay go on.
    pos, size = batch_position(log, DAMAGED_OFFSET)
    assert log.read(0, 1 << 20, max_offset=6).read_bytes() == stored[: pos + size]
    state = PartitionProducerState(0)
    replay(state, log)
    assert state.next_offset == 9


def test_damaged_header(log: PartitionLog) -> None:
    def bad_magic(data: bytearray) -> None:
        data[MAGIC_OFFSET] = 7

    damage(log, bad_magic, fix_crc=False)
    corrupt(lambda: log.offset_for_timestamp(TS + 20))
    corrupt(lambda: list(log.iter_records()))
    corrupt(lambda: log.read(DAMAGED_OFFSET, 1 << 20))
    corrupt(lambda: log.read(0, 1 << 20, max_offset=8))  # read_committed: bound at the LSO
    corrupt(lambda: replay(PartitionProducerState(0), log))
    first = log.read(0, 10).read_bytes()  # the batch before the damage is still served
    assert read_header(first).last_offset == 2


def test_batch_length_past_the_file(log: PartitionLog) -> None:
    def long_batch(data: bytearray) -> None:
        struct.pack_into(">i", data, 8, 1 << 20)

    damage(log, long_batch, fix_crc=False)
    corrupt(lambda: log.offset_for_timestamp(TS + 10))
    corrupt(lambda: list(log.iter_records()))


def test_timestamps_past_int64_in_down_conversion(log: PartitionLog) -> None:
    def late_base(data: bytearray) -> None:
        struct.pack_into(">qq", data, 27, 2**63 - 2, 2**63 - 1)

    damage(log, late_base, fix_crc=True)
    stored = log.read(0, 1 << 20).read_bytes()
    corrupt(lambda: down_convert(stored, 1, 0))
    assert down_convert(stored, 0, 0)  # magic 0 has no timestamps


def test_damaged_control_batch_is_not_a_marker() -> None:
    marker = bytearray(control_batch(7, 0, commit=True, timestamp=TS))
    marker[ATTRIBUTES_OFFSET + 1] |= 0x07
    struct.pack_into(">I", marker, CRC_OFFSET, crc32c(memoryview(marker)[ATTRIBUTES_OFFSET:]))
    assert marker_type(bytes(marker)) == -1


@pytest.mark.parametrize("fix_crc", [False, True])
def test_every_byte_flip_answers_corrupt_or_data(log: PartitionLog, fix_crc: bool) -> None:
    """Flip each byte of a stored batch in turn: the read paths answer data or
    CORRUPT_MESSAGE, never another exception."""
    pos, size = batch_position(log, DAMAGED_OFFSET)
    original = segment_file(log).read_bytes()
    calls: list[Callable[[], object]] = [
        lambda: log.offset_for_timestamp(TS + 11),
        lambda: log.offset_for_timestamp(-3),
        lambda: list(log.iter_records()),
        lambda: log.read(0, 1 << 20, max_offset=8),
        lambda: down_convert(log.read(0, 1 << 20).read_bytes(), 1, 0),
        lambda: down_convert(log.read(0, 1 << 20).read_bytes(), 0, 3),
    ]
    for i in range(size):
        if 8 <= i < 12:
            continue  # the batch length: covered above (it moves every later batch)

        def flip(data: bytearray, i: int = i) -> None:
            data[i] ^= 0xA5

        damage(log, flip, fix_crc=fix_crc)
        for call in calls:
            try:
                call()
            except KafkaError as exc:
                assert exc.code == ErrorCode.CORRUPT_MESSAGE, (i, exc)
        segment_file(log).write_bytes(original)
    assert pos > 0
