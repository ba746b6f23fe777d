"""The group.consumer.* settings: Kafka 4.0's defaults, checked at start-up as Kafka checks them."""

from __future__ import annotations

import pytest

from kafkacompat.config import Config, ConfigError
from kafkacompat.coordinators.consumer_groups import ConsumerGroupConfig
from kafkacompat.coordinators.group_service import consumer_group_config


def test_defaults_are_kafkas() -> None:
    assert consumer_group_config(Config()) == ConsumerGroupConfig(
        session_timeout_ms=45_000,
        heartbeat_interval_ms=5_000,
        max_size=2**31 - 1,
        assignors=("uniform", "range"),
        migration_policy="bidirectional",
    )


def test_assignors_by_short_or_class_name_first_is_default() -> None:
    config = Config(
        settings={
            "group.consumer.assignors": "org.apache.kafka.coordinator.group.assignor.RangeAssignor"
        }
    )
    assert consumer_group_config(config).assignors == ("range",)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"group.consumer.assignors": "sticky"}, "unknown assignor"),
        ({"group.consumer.assignors": " , "}, "at least one"),
        ({"group.consumer.migration.policy": "sideways"}, "migration.policy"),
        ({"group.consumer.session.timeout.ms": 10_000}, "between 45000 and 60000"),
        ({"group.consumer.heartbeat.interval.ms": 20_000}, "between 5000 and 15000"),
        (
            {
                "group.consumer.min.session.timeout.ms": 1000,
                "group.consumer.session.timeout.ms": 5000,
            },
            "below the session timeout",
        ),
        ({"group.consumer.max.size": 0}, "at least 1"),
    ],
)
def test_bad_settings_are_refused(settings: dict[str, int | str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        consumer_group_config(Config(settings=settings))
