"""The Trio shell around the group coordinator: its timer task and awaiting its completions."""

from __future__ import annotations

import math
from typing import TypeVar

import trio

from kafkacompat.clock import now_ms
from kafkacompat.config import Config
from kafkacompat.coordinators.group import Completion, GroupConfig
from kafkacompat.coordinators.group_coordinator import GroupCoordinator
from kafkacompat.coordinators.group_offsets import NAMESPACE, GroupOffsetStore
from kafkacompat.storage.state_store import StateStore

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


async def wait_for(completion: Completion[T]) -> T:
    """The completion's value, once the coordinator has produced it."""
    if not completion.done:
        event = trio.Event()
        completion.add_done_callback(lambda _value: event.set())
        await event.wait()
    return completion.value


class GroupService:
    """Owns the coordinator; `run_timers` sleeps until its next deadline or an earlier one."""

    def __init__(self, config: Config, state: StateStore) -> None:
        self._wake = trio.Event()
        store = GroupOffsetStore(state.namespace(NAMESPACE))
        self.coordinator = GroupCoordinator(
            store, group_config(config), now_ms, on_deadline=self._wake_up
        )

    def _wake_up(self) -> None:
        self._wake.set()

    async def run_timers(self) -> None:
        while True:
            self._wake = trio.Event()
            self.coordinator.poll()
            deadline = self.coordinator.next_deadline()
            # One ms past the deadline: the coordinator's clock has ms resolution.
            timeout = math.inf if deadline is None else (deadline - now_ms() + 1) / 1000
            with trio.move_on_after(max(timeout, 0)):
                await self._wake.wait()
