"""Durable broker metadata: every topic's id, partition count and configs."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from kafkacompat.errors import ErrorCode, KafkaError
from kafkacompat.storage.fsutil import atomic_write
from kafkacompat.storage.log_config import LogConfig

__all__ = ["METADATA_DIR", "MetadataStore", "TopicMetadata"]

METADATA_DIR = "__metadata"
_TOPICS_FILE = "topics.json"
_VERSION = 1


@dataclass(frozen=True, slots=True)
class TopicMetadata:
    """A topic as created: ``configs`` holds only the overrides, with Kafka's names."""

    name: str
    topic_id: uuid.UUID
    partitions: int
    configs: Mapping[str, str] = field(default_factory=dict)
    #: The partitions this broker holds a replica of; None: all of them (a single broker).
    hosted: frozenset[int] | None = None

    def hosted_indexes(self) -> list[int]:
        """The indexes of the partitions kept here, in order."""
        every = range(self.partitions)
        return list(every) if self.hosted is None else [i for i in every if i in self.hosted]

    def log_config(self, defaults: LogConfig) -> LogConfig:
        """Effective config: the topic's overrides over the broker defaults."""
        return LogConfig.from_overrides(self.configs, defaults)


class MetadataStore:
    """Topics kept in one small JSON file under ``<data-dir>/__metadata/``, replaced atomically
    (temp file + fsync + rename) on every change."""

    def __init__(self, data_dir: Path) -> None:
        self.directory = data_dir / METADATA_DIR
        self.directory.mkdir(parents=True, exist_ok=True)
        self._path = self.directory / _TOPICS_FILE
        self._topics: dict[str, TopicMetadata] = {}
        self._by_id: dict[uuid.UUID, TopicMetadata] = {}
        self._load()

    def _load(self) -> None:
        try:
            data = json.loads(self._path.read_text())
        except FileNotFoundError:
            self._save()
            return
        except ValueError as exc:
            raise KafkaError(ErrorCode.KAFKA_STORAGE_ERROR, f"unreadable {self._path}") from exc
        for item in data["topics"]:
            meta = TopicMetadata(
                name=str(item["name"]),
                topic_id=uuid.UUID(item["topic_id"]),
                partitions=int(item["partitions"]),
                configs={str(k): str(v) for k, v in item["configs"].items()},
                hosted=None if item.get("hosted") is None else frozenset(item["hosted"]),
            )
            self._topics[meta.name] = meta
            self._by_id[meta.topic_id] = meta

    def _save(self) -> None:
        data = {
            "version": _VERSION,
            "topics": [
                {
                    "name": t.name,
                    "topic_id": str(t.topic_id),
                    "partitions": t.partitions,
                    "configs": dict(t.configs),
                    **({} if t.hosted is None else {"hosted": sorted(t.hosted)}),
                }
                for t in self._topics.values()
            ],
        }
        atomic_write(self._path, json.dumps(data, indent=1, sort_keys=True).encode())

    def topics(self) -> list[TopicMetadata]:
        return list(self._topics.values())

    def get(self, name: str) -> TopicMetadata | None:
        return self._topics.get(name)

    def get_by_id(self, topic_id: uuid.UUID) -> TopicMetadata | None:
        return self._by_id.get(topic_id)

    def put(self, meta: TopicMetadata) -> None:
        """Add or replace a topic durably."""
        self._topics[meta.name] = meta
        self._by_id[meta.topic_id] = meta
        self._save()

    def remove(self, name: str) -> None:
        """Forget a topic durably."""
        meta = self._topics.pop(name, None)
        if meta is not None:
            self._by_id.pop(meta.topic_id, None)
            self._save()
