"""A test's view into a running broker's state, for arranging and checking what clients cannot.

Topic changes go through the broker's controller on its own Trio loop (so the metadata image
follows); reads take the current image or the hosted partition.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from pathlib import Path

from kafkacompat.cluster.metadata_image import TopicImage
from kafkacompat.partitions.partition import Partition
from kafkacompat.storage.partition_log import PartitionLog
from kafkacompat.storage.results import AppendResult, ReadResult
from kafkacompat.testing import BrokerThread


class Internals:
    def __init__(self, thread: BrokerThread) -> None:
        self.thread = thread
        self.broker = thread.running.broker

    @property
    def data_dir(self) -> Path:
        return self.broker.partitions.data_dir

    def create_topic(
        self, name: str, partitions: int, configs: Mapping[str, str | None] | None = None
    ) -> TopicImage:
        create = partial(self.broker.controller.create_topic, name, partitions, configs)
        return self.thread.call(create)

    def find_topic(self, name: str) -> TopicImage | None:
        return self.broker.controller.image.topic(name)

    def list_topics(self) -> list[TopicImage]:
        return self.broker.controller.image.list_topics()

    def partition(self, topic: str, index: int) -> Partition:
        return self.broker.partitions.partition(topic, index)

    def log(self, topic: str, index: int) -> PartitionLog:
        return self.partition(topic, index).log

    def read(self, topic: str, index: int, offset: int, max_bytes: int) -> ReadResult:
        return self.partition(topic, index).read(offset, max_bytes)

    async def append(self, topic: str, index: int, records: bytes) -> AppendResult:
        """Append on the broker's loop: ``thread.call(partial(internals.append, ...))``."""
        return await self.partition(topic, index).append(records)

    def last_stable_offset(self, topic: str, index: int) -> int:
        return self.partition(topic, index).last_stable_offset()


def internals(thread: BrokerThread) -> Internals:
    return Internals(thread)
