"""High watermarks checkpointed in Kafka's replication-offset-checkpoint format and restored."""

from __future__ import annotations

from pathlib import Path

from kafkacompat.partitions.high_watermarks import (
    CHECKPOINT_NAME,
    read_high_watermarks,
    restore,
    write_high_watermarks,
)
from tests.unit.partitions.test_follower import open_partition, plain


async def test_written_read_and_restored_below_the_log_end(tmp_path: Path) -> None:
    _manager, partition = await open_partition(tmp_path / "p")
    await partition.append_as_follower(plain(5, base=0, epoch=0))
    partition.take_leader_high_watermark(3)
    write_high_watermarks(tmp_path, [partition])
    topic = partition.topic
    assert (tmp_path / CHECKPOINT_NAME).read_text() == f"0\n1\n{topic} 0 3\n"
    saved = read_high_watermarks(tmp_path)
    assert saved == {(topic, 0): 3}
    partition.high_watermark = 5
    restore([partition], saved)
    assert partition.high_watermark == 3
    restore([partition], {(topic, 0): 99})  # never past the log end
    assert partition.high_watermark == 5
    restore([partition], {})  # never learnt one: nothing is known to be committed
    assert partition.high_watermark == 0


def test_a_missing_or_damaged_checkpoint_is_empty(tmp_path: Path) -> None:
    assert read_high_watermarks(tmp_path) == {}
    (tmp_path / CHECKPOINT_NAME).write_text("0\n2\nt 0 5\n")
    assert read_high_watermarks(tmp_path) == {}
    (tmp_path / CHECKPOINT_NAME).write_text("0\n2\nt 0 5\nwith space 3 7\n")
    assert read_high_watermarks(tmp_path) == {("t", 0): 5, ("with space", 3): 7}
