"""Topic names as Kafka allows them, and the broker's view of which topics exist."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from kafkacompat.storage.topic_names import validate_topic_name

__all__ = ["TopicInfo", "validate_topic_name"]


@dataclass(frozen=True, slots=True)
class TopicInfo:
    """What Metadata needs to know about a topic."""

    name: str
    topic_id: uuid.UUID
    partitions: int
    internal: bool = False
