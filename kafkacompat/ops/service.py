"""What the server starts when ``http.listener`` is set: the metrics hook, connection counting
and the HTTP listener (metrics, health, console)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import trio

from kafkacompat.broker.broker import Broker
from kafkacompat.config import ConfigError, HostPort
from kafkacompat.ops.console import Console
from kafkacompat.ops.health import Readiness
from kafkacompat.ops.http import OpsApp, serve_http
from kafkacompat.ops.metrics import BrokerMetrics

__all__ = ["Ops", "http_listener"]

S = TypeVar("S")


def http_listener(broker: Broker) -> HostPort | None:
    """Where ``http.listener`` asks the HTTP listener to listen; None: it is off."""
    text = broker.config.get_str("http.listener")
    if not text:
        return None
    try:
        return HostPort.parse(text)
    except ConfigError as exc:
        raise ConfigError(f"http.listener: {exc}") from None


class Ops:
    """Metrics, readiness and the console of one broker; counting starts at construction."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.metrics = BrokerMetrics(broker)
        self.metrics.install()
        self.readiness = Readiness(broker)
        self.console = Console(broker, self.metrics)
        self.app = OpsApp(broker, self.metrics, self.readiness, self.console.handle)

    def counted(
        self, handler: Callable[[S], Awaitable[None]], listener: str
    ) -> Callable[[S], Awaitable[None]]:
        """``handler`` (one connection) counted in the listener's connection metrics."""
        counters = self.metrics.counters

        async def serve_counted(stream: S) -> None:
            counters.connection_opened(listener)
            try:
                await handler(stream)
            finally:
                counters.connection_closed(listener)

        return serve_counted

    async def serve(
        self,
        address: HostPort,
        *,
        task_status: trio.TaskStatus[HostPort] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        await serve_http(self.app, address, task_status=task_status)
