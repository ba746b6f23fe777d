"""LogConfig: Kafka names and defaults, overrides, INVALID_CONFIG validation."""

from __future__ import annotations

import pytest

from kafkacompat.errors import ErrorCode, KafkaError
from kafkacompat.storage.log_config import LONG_MAX, LogConfig, validate_topic_configs


def test_defaults_are_kafkas() -> None:
    config = LogConfig()
    shown = config.to_kafka()
    assert shown["cleanup.policy"] == "delete"
    assert shown["retention.ms"] == "604800000"
    assert shown["retention.bytes"] == "-1"
    assert shown["segment.bytes"] == "1073741824"
    assert shown["segment.ms"] == "604800000"
    assert shown["segment.index.bytes"] == "10485760"
    assert shown["index.interval.bytes"] == "4096"
    assert shown["max.message.bytes"] == "1048588"
    assert shown["message.timestamp.type"] == "CreateTime"
    assert shown["min.insync.replicas"] == "1"
    assert shown["compression.type"] == "producer"
    assert shown["flush.messages"] == shown["flush.ms"] == str(LONG_MAX)
    assert shown["preallocate"] == "false"
    assert config.delete_enabled and not config.log_append_time


def test_overrides_over_base() -> None:
    base = LogConfig.from_overrides({"retention.ms": "5"})
    config = LogConfig.from_overrides(
        {"cleanup.policy": "compact,delete", "segment.bytes": "1000", "retention.bytes": None},
        base,
    )
    assert (config.retention_ms, config.segment_bytes, config.retention_bytes) == (5, 1000, -1)
    assert config.cleanup_policy == "compact,delete" and config.delete_enabled
    assert not LogConfig.from_overrides({"cleanup.policy": "compact"}).delete_enabled
    assert LogConfig.from_overrides(config.to_kafka()) == config


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("retention.ms", "abc"),
        ("retention.ms", "-2"),
        ("segment.bytes", "13"),
        ("segment.bytes", "99999999999"),
        ("segment.ms", "0"),
        ("cleanup.policy", "remove"),
        ("cleanup.policy", ""),
        ("compression.type", "brotli"),
        ("message.timestamp.type", "Now"),
        ("min.insync.replicas", "0"),
        ("min.cleanable.dirty.ratio", "1.5"),
        ("preallocate", "yes"),
        ("flush.messages", "0"),
        ("unknown.config", "1"),
    ],
)
def test_invalid_values(name: str, value: str) -> None:
    with pytest.raises(KafkaError) as err:
        validate_topic_configs({name: value})
    assert err.value.code == ErrorCode.INVALID_CONFIG


def test_validate_returns_overrides_without_none() -> None:
    assert validate_topic_configs({"retention.ms": "10", "segment.ms": None}) == {
        "retention.ms": "10"
    }
