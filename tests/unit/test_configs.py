"""Config description (values, sources, synonyms) and incremental config operations."""

from __future__ import annotations

from typing import Any

import pytest

from kafkacompat.broker.config_catalog import ConfigSource, Synonym, topic_config_entries
from kafkacompat.broker.configs import incremental_overrides
from kafkacompat.cluster.topic_configs import TOPIC_CONFIGS, ConfigType, topic_defaults
from kafkacompat.config import Config
from kafkacompat.errors import ErrorCode, KafkaError
from kafkacompat.protocol.messages.incremental_alter_configs_request import AlterableConfig
from kafkacompat.storage.log_config import DEFAULT_LOG_CONFIG, LogConfig

SET, DELETE, APPEND, SUBTRACT = 0, 1, 2, 3


def broker_config(**settings: Any) -> Config:
    return Config(settings=settings)


def test_every_log_config_is_described_with_kafka_types() -> None:
    entries = topic_config_entries(broker_config(), {}, DEFAULT_LOG_CONFIG)
    assert [e.name for e in entries] == sorted(DEFAULT_LOG_CONFIG.to_kafka())
    assert set(TOPIC_CONFIGS) == {e.name for e in entries}
    kinds = {e.name: e.type for e in entries}
    assert kinds["cleanup.policy"] == ConfigType.LIST
    assert kinds["retention.ms"] == ConfigType.LONG
    assert kinds["max.message.bytes"] == ConfigType.INT
    assert kinds["preallocate"] == ConfigType.BOOLEAN
    assert kinds["min.cleanable.dirty.ratio"] == ConfigType.DOUBLE
    assert all(e.source == ConfigSource.DEFAULT_CONFIG for e in entries)
    assert all(not e.read_only and not e.sensitive and e.documentation for e in entries)


def test_sources_and_synonyms_follow_precedence() -> None:
    config = broker_config(**{"log.retention.ms": 1000, "log.cleanup.policy": "compact"})
    defaults = topic_defaults(config)
    overrides = {"cleanup.policy": "delete"}
    effective = LogConfig.from_overrides(overrides, defaults)
    entries = {e.name: e for e in topic_config_entries(config, overrides, effective)}
    retention = entries["retention.ms"]
    assert (retention.value, retention.source) == ("1000", ConfigSource.STATIC_BROKER_CONFIG)
    assert retention.synonyms == [
        Synonym("log.retention.ms", "1000", ConfigSource.STATIC_BROKER_CONFIG),
        Synonym("log.retention.ms", "604800000", ConfigSource.DEFAULT_CONFIG),
    ]
    policy = entries["cleanup.policy"]
    assert (policy.value, policy.source) == ("delete", ConfigSource.DYNAMIC_TOPIC_CONFIG)
    assert [s.source for s in policy.synonyms] == [
        ConfigSource.DYNAMIC_TOPIC_CONFIG,
        ConfigSource.STATIC_BROKER_CONFIG,
        ConfigSource.DEFAULT_CONFIG,
    ]
    # A broker setting this broker does not have still names Kafka's synonym and default.
    assert entries["delete.retention.ms"].synonyms == [
        Synonym("log.cleaner.delete.retention.ms", "86400000", ConfigSource.DEFAULT_CONFIG)
    ]


def ops(*items: tuple[str, int, str | None]) -> list[AlterableConfig]:
    return [AlterableConfig(name, op, value) for name, op, value in items]


DEFAULTS = DEFAULT_LOG_CONFIG.to_kafka()


def test_set_delete_append_subtract() -> None:
    current = {"retention.ms": "1", "segment.bytes": "2000000"}
    result = incremental_overrides(
        current,
        DEFAULTS,
        ops(
            ("retention.ms", SET, "5"),
            ("segment.bytes", DELETE, None),
            ("max.message.bytes", DELETE, None),
            ("cleanup.policy", APPEND, "compact,delete"),
        ),
    )
    assert result == {"retention.ms": "5", "cleanup.policy": "delete,compact"}
    assert current == {"retention.ms": "1", "segment.bytes": "2000000"}
    subtracted = incremental_overrides(
        result, DEFAULTS, ops(("cleanup.policy", SUBTRACT, "delete"))
    )
    assert subtracted["cleanup.policy"] == "compact"
    from_default = incremental_overrides({}, DEFAULTS, ops(("cleanup.policy", SUBTRACT, "compact")))
    assert from_default == {"cleanup.policy": "delete"}


@pytest.mark.parametrize(
    ("op", "code"),
    [
        (("retention.ms", APPEND, "1"), ErrorCode.INVALID_CONFIG),
        (("retention.ms", SUBTRACT, "1"), ErrorCode.INVALID_CONFIG),
        (("no.such", APPEND, "1"), ErrorCode.INVALID_CONFIG),
        (("retention.ms", 7, "1"), ErrorCode.INVALID_REQUEST),
        (("retention.ms", SET, None), ErrorCode.INVALID_REQUEST),
    ],
)
def test_incremental_errors(op: tuple[str, int, str | None], code: ErrorCode) -> None:
    with pytest.raises(KafkaError) as raised:
        incremental_overrides({}, DEFAULTS, ops(op))
    assert raised.value.code == code
