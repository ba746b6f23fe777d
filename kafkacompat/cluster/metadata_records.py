"""The cluster metadata's keys in etcd and their values (JSON), one codec per kind.

    brokers/<id>               a live broker (registration.py)
    controller                 the controller's node id and epoch (controller_election.py)
    topics/<name>              topic id, replica assignment, config overrides, internal flag,
                               and each reassigning partition's adding and removing replicas
    partitions/<name>/<index>  leader, leader epoch, ISR, the controller epoch that wrote it

As Kafka's ZooKeeper layout (``/brokers/topics/<t>`` and ``.../partitions/<p>/state``): the
controller writes topics and partition states; every broker reads them through its watch.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

__all__ = [
    "PARTITIONS",
    "TOPICS",
    "PartitionState",
    "TopicRecord",
    "partition_key",
    "topic_key",
]

TOPICS = "topics/"
PARTITIONS = "partitions/"


def topic_key(name: str) -> str:
    return f"{TOPICS}{name}"


def partition_key(name: str, index: int) -> str:
    return f"{PARTITIONS}{name}/{index}"


@dataclass(frozen=True, slots=True)
class TopicRecord:
    """A topic as the controller created it. While a partition is reassigned (KIP-455) its
    ``replicas`` are the target's followed by the original ones not in the target, and
    ``adding``/``removing`` (by partition index) name the replicas coming and going; records
    written before reassignments existed have neither."""

    topic_id: uuid.UUID
    replicas: tuple[tuple[int, ...], ...]
    configs: Mapping[str, str] = field(default_factory=dict)
    internal: bool = False
    adding: Mapping[int, tuple[int, ...]] = field(default_factory=dict)
    removing: Mapping[int, tuple[int, ...]] = field(default_factory=dict)

    def encode(self) -> bytes:
        data: dict[str, object] = {
            "id": str(self.topic_id),
            "replicas": [list(r) for r in self.replicas],
            "configs": dict(self.configs),
            "internal": self.internal,
        }
        if self.adding:
            data["adding"] = {str(i): list(r) for i, r in self.adding.items() if r}
        if self.removing:
            data["removing"] = {str(i): list(r) for i, r in self.removing.items() if r}
        return json.dumps(data, separators=(",", ":"), sort_keys=True).encode()

    @classmethod
    def decode(cls, value: bytes) -> TopicRecord:
        data = json.loads(value)
        return cls(
            uuid.UUID(data["id"]),
            tuple(tuple(int(b) for b in r) for r in data["replicas"]),
            {str(k): str(v) for k, v in data.get("configs", {}).items()},
            bool(data.get("internal", False)),
            _by_partition(data.get("adding", {})),
            _by_partition(data.get("removing", {})),
        )


def _by_partition(data: Mapping[str, Sequence[int]]) -> dict[int, tuple[int, ...]]:
    return {int(index): tuple(int(b) for b in brokers) for index, brokers in data.items()}


@dataclass(frozen=True, slots=True)
class PartitionState:
    """Who leads a partition and who is in sync, as the controller (or its leader) last wrote."""

    leader: int
    leader_epoch: int
    isr: tuple[int, ...]
    controller_epoch: int

    def encode(self) -> bytes:
        return json.dumps(
            {
                "leader": self.leader,
                "leader_epoch": self.leader_epoch,
                "isr": list(self.isr),
                "controller_epoch": self.controller_epoch,
            },
            separators=(",", ":"),
        ).encode()

    @classmethod
    def decode(cls, value: bytes) -> PartitionState:
        data = json.loads(value)
        return cls(
            int(data["leader"]),
            int(data["leader_epoch"]),
            tuple(int(b) for b in data["isr"]),
            int(data["controller_epoch"]),
        )

    @classmethod
    def first(cls, replicas: Sequence[int], leader: int, controller_epoch: int) -> PartitionState:
        """A new partition's state: every replica in sync, leader epoch 0."""
        return cls(leader, 0, tuple(replicas), controller_epoch)
