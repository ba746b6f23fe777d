"""Kafka's rule for topic names, enforced wherever a topic is named."""

from __future__ import annotations

import re

from kafkacompat.errors import ErrorCode, KafkaError

MAX_TOPIC_NAME_LENGTH = 249
OFFSETS_TOPIC = "__consumer_offsets"
TRANSACTION_STATE_TOPIC = "__transaction_state"
#: Kafka's internal topics: the broker writes them; clients read them (``is_internal``).
INTERNAL_TOPICS = frozenset({OFFSETS_TOPIC, TRANSACTION_STATE_TOPIC})
_LEGAL_TOPIC_NAME = re.compile(r"[a-zA-Z0-9._-]+\Z")


def is_internal_topic(name: str) -> bool:
    return name in INTERNAL_TOPICS


def validate_topic_name(name: str | None) -> None:
    """Raise INVALID_TOPIC_EXCEPTION for a name Kafka would refuse."""
    if not name:
        raise KafkaError(ErrorCode.INVALID_TOPIC_EXCEPTION, "topic name is empty")
    if name in (".", ".."):
        raise KafkaError(ErrorCode.INVALID_TOPIC_EXCEPTION, f"topic name cannot be {name!r}")
    if len(name) > MAX_TOPIC_NAME_LENGTH:
        raise KafkaError(
            ErrorCode.INVALID_TOPIC_EXCEPTION,
            f"topic name is longer than {MAX_TOPIC_NAME_LENGTH} characters",
        )
    if not _LEGAL_TOPIC_NAME.match(name):
        raise KafkaError(
            ErrorCode.INVALID_TOPIC_EXCEPTION,
            f"topic name {name!r} has characters other than ASCII alphanumerics, '.', '_' and '-'",
        )
