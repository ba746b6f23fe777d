"""The accept loop: bind the listener, report where it listens, serve every connection."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial

import trio

from kafkacompat import __version__
from kafkacompat.broker.broker import Broker
from kafkacompat.config import Config, HostPort
from kafkacompat.server.connection import serve_connection
from kafkacompat.server.idle import IdleConnections

log = logging.getLogger("kafkacompat.server")


def _without_traceback(record: logging.LogRecord) -> bool:
    """Trio's accept loop logs running out of descriptors with a traceback; its message
    ("accept returned EMFILE (Too many open files); retrying ...") says it all."""
    record.exc_info = None
    record.exc_text = None
    return True


logging.getLogger("trio.serve_listeners").addFilter(_without_traceback)


@dataclass(frozen=True, slots=True)
class RunningBroker:
    """What `serve` reports once it accepts connections."""

    broker: Broker
    listen: HostPort

    @property
    def port(self) -> int:
        return self.listen.port

    @property
    def bootstrap(self) -> str:
        return str(self.broker.endpoint)


async def open_listeners(address: HostPort) -> list[trio.SocketListener]:
    listeners = await trio.open_tcp_listeners(address.port, host=address.host or None)
    if address.port == 0 and len(listeners) > 1:
        # An ephemeral port differs per address family: keep one so there is one port to report.
        for extra in listeners[1:]:
            await extra.aclose()
        listeners = listeners[:1]
    return listeners


async def serve(
    config: Config,
    *,
    broker: Broker | None = None,
    task_status: trio.TaskStatus[RunningBroker] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run a broker until cancelled; `await nursery.start(serve, config)` gives its address."""
    broker = broker or Broker(config)
    try:
        listeners = await open_listeners(config.listen)
        bound = HostPort(config.listen.host, listeners[0].socket.getsockname()[1])
        broker.bind(bound.port)
        await _serve_listeners(broker, listeners, bound, task_status)
    finally:
        broker.close()


async def _serve_listeners(
    broker: Broker,
    listeners: list[trio.SocketListener],
    bound: HostPort,
    task_status: trio.TaskStatus[RunningBroker],
) -> None:
    config = broker.config
    idle = IdleConnections(config.get_int("connections.max.idle.ms") / 1000)
    handler = partial(
        serve_connection,
        pipeline=broker.pipeline,
        idle=idle,
        max_request_bytes=config.get_int("socket.request.max.bytes"),
        send_timeout=config.get_int("connections.send.timeout.ms") / 1000,
    )
    async with trio.open_nursery() as nursery:
        nursery.start_soon(broker.run_background_tasks)
        nursery.start_soon(idle.run)
        await nursery.start(partial(trio.serve_listeners, handler, listeners))
        log.info(
            "kafkacompat %s listening on %s (advertised %s), node %d, cluster %s, data dir %s",
            __version__,
            bound,
            broker.endpoint,
            broker.node_id,
            broker.cluster_id,
            config.data_dir,
        )
        task_status.started(RunningBroker(broker, bound))
