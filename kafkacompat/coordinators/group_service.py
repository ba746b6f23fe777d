"""The Trio shell around the group coordinator: its timer task and awaiting its completions."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TypeVar

import trio

from kafkacompat.clock import now_ms
from kafkacompat.config import Config, ConfigError
from kafkacompat.coordinators.assignors import assignor_named
from kafkacompat.coordinators.consumer_groups import ConsumerGroupConfig
from kafkacompat.coordinators.group import Completion, GroupConfig
from kafkacompat.coordinators.group_coordinator import GroupCoordinator
from kafkacompat.coordinators.group_offsets import GroupOffsetStore
from kafkacompat.coordinators.internal_topic import InternalTopic, follow_leadership
from kafkacompat.errors import ErrorCode

T = TypeVar("T")


def group_config(config: Config) -> GroupConfig:
    return GroupConfig(
        initial_rebalance_delay_ms=config.get_int("group.initial.rebalance.delay.ms"),
        min_session_timeout_ms=config.get_int("group.min.session.timeout.ms"),
        max_session_timeout_ms=config.get_int("group.max.session.timeout.ms"),
        offsets_retention_ms=config.get_int("offsets.retention.minutes") * 60_000,
        offsets_retention_check_interval_ms=config.get_int("offsets.retention.check.interval.ms"),
        offset_metadata_max_bytes=config.get_int("offset.metadata.max.bytes"),
    )


MIGRATION_POLICIES = ("disabled", "upgrade", "downgrade", "bidirectional")


def _bounded(config: Config, name: str) -> int:
    """``group.consumer.<name>``, checked against its min and max settings."""
    value = config.get_int(f"group.consumer.{name}")
    low = config.get_int(f"group.consumer.min.{name}")
    high = config.get_int(f"group.consumer.max.{name}")
    if not low <= value <= high:
        raise ConfigError(f"group.consumer.{name} must be between {low} and {high}, got {value}")
    return value


def consumer_group_config(config: Config) -> ConsumerGroupConfig:
    """The KIP-848 settings, checked as Kafka checks them at start-up."""
    names = [n.strip() for n in config.get_str("group.consumer.assignors").split(",") if n.strip()]
    assignors = []
    for name in names:
        assignor = assignor_named(name)
        if assignor is None:
            raise ConfigError(f"group.consumer.assignors: unknown assignor {name!r}")
        assignors.append(assignor.name)
    if not assignors:
        raise ConfigError("group.consumer.assignors must name at least one assignor")
    policy = config.get_str("group.consumer.migration.policy").strip().lower()
    if policy not in MIGRATION_POLICIES:
        raise ConfigError(
            f"group.consumer.migration.policy must be one of {', '.join(MIGRATION_POLICIES)}"
        )
    session = _bounded(config, "session.timeout.ms")
    interval = _bounded(config, "heartbeat.interval.ms")
    if interval >= session:
        raise ConfigError("group.consumer.heartbeat.interval.ms must be below the session timeout")
    max_size = config.get_int("group.consumer.max.size")
    if max_size < 1:
        raise ConfigError("group.consumer.max.size must be at least 1")
    return ConsumerGroupConfig(session, interval, max_size, tuple(assignors), policy)


async def wait_for(completion: Completion[T]) -> T:
    """The completion's value, once the coordinator has produced it."""
    if not completion.done:
        event = trio.Event()
        completion.add_done_callback(lambda _value: event.set())
        await event.wait()
    return completion.value


class GroupService:
    """Owns the coordinator; `run_timers` sleeps until its next deadline or an earlier one."""

    def __init__(self, config: Config, topic: InternalTopic) -> None:
        self._wake = trio.Event()
        #: ``__consumer_offsets``: where the groups' state lives.
        self.topic = topic
        store = GroupOffsetStore(topic)
        self.coordinator = GroupCoordinator(
            store,
            group_config(config),
            now_ms,
            on_deadline=self._wake_up,
            consumer_config=consumer_group_config(config),
        )

    def _wake_up(self) -> None:
        self._wake.set()

    def coordinator_error(self, group_id: str) -> ErrorCode:
        """NONE when this broker coordinates ``group_id``; else NOT_COORDINATOR, or
        COORDINATOR_LOAD_IN_PROGRESS while its partition is read."""
        return self.topic.coordinator_error(group_id)

    async def settled(self) -> None:
        """Wait until every change made so far is written (a handler, before answering)."""
        await self.topic.flush()

    async def lead(self, partitions: Iterable[int]) -> None:
        """Coordinate the groups of exactly these ``__consumer_offsets`` partitions."""
        await follow_leadership(self.topic, self.coordinator, partitions)
        self._wake_up()

    def catch_up(self) -> None:
        """Run the timers due now (the clock jumped), check offsets expiry at once (its check
        interval is not waited for), and have the timer task look again."""
        self.coordinator.poll()
        self.coordinator.expire_offsets()
        self._wake_up()

    async def run_timers(self) -> None:
        while True:
            self._wake = trio.Event()
            self.coordinator.poll()
            deadline = self.coordinator.next_deadline()
            # One ms past the deadline: the coordinator's clock has ms resolution.
            timeout = math.inf if deadline is None else (deadline - now_ms() + 1) / 1000
            with trio.move_on_after(max(timeout, 0)):
                await self._wake.wait()
