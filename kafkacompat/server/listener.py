"""The accept loop: bind the listener, report where it listens, serve every connection."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial

import trio

from kafkacompat import __version__
from kafkacompat.broker.broker import Broker
from kafkacompat.config import Config, HostPort
from kafkacompat.listeners import Listener
from kafkacompat.ops.service import Ops, http_listener
from kafkacompat.security.sasl_server import check_sasl_config
from kafkacompat.server.accepting import ListenerSecurity, listener_security
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
    #: Where the first listener listens (with the port actually bound).
    listen: HostPort
    #: Where every listener listens, by listener name.
    addresses: Mapping[str, HostPort] = field(default_factory=dict)
    #: Where the HTTP listener (metrics, health, console) listens; None when it is off.
    http_address: HostPort | None = None

    @property
    def port(self) -> int:
        return self.listen.port

    @property
    def bootstrap(self) -> str:
        return str(self.broker.endpoint)

    def bootstrap_for(self, listener: str) -> str:
        """``HOST:PORT`` clients of ``listener`` connect to."""
        return str(self.broker.endpoint_for(listener))


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
    """Run a broker until cancelled; `await nursery.start(serve, config)` gives its address.

    Raises ConfigError before binding anything when a listener's security settings are wrong.
    """
    broker = broker or Broker(config)
    try:
        check_sasl_config(config, broker.listeners)
        http_listener(broker)  # a bad http.listener fails before anything is bound
        security = {
            listener.name: listener_security(config, listener) for listener in broker.listeners
        }
        opened: list[tuple[Listener, list[trio.SocketListener]]] = []
        try:
            for listener in broker.listeners:
                opened.append((listener, await open_listeners(listener.bind)))
        except BaseException:
            for _listener, sockets in opened:
                for sock in sockets:
                    await sock.aclose()
            raise
        addresses = {
            listener.name: HostPort(listener.bind.host, sockets[0].socket.getsockname()[1])
            for listener, sockets in opened
        }
        broker.bind({name: address.port for name, address in addresses.items()})
        await _serve_listeners(broker, opened, security, addresses, task_status)
    finally:
        with trio.CancelScope(shield=True), trio.move_on_after(5):
            await broker.write_internal_state()
        broker.close()


async def _serve_listeners(
    broker: Broker,
    opened: list[tuple[Listener, list[trio.SocketListener]]],
    security: Mapping[str, ListenerSecurity],
    addresses: Mapping[str, HostPort],
    task_status: trio.TaskStatus[RunningBroker],
) -> None:
    config = broker.config
    idle = IdleConnections(config.get_int("connections.max.idle.ms") / 1000)
    http = http_listener(broker)
    ops = Ops(broker) if http is not None else None
    async with trio.open_nursery() as nursery:
        if broker.cluster is not None:  # joined, and storage follows the cluster metadata
            await nursery.start(broker.cluster.run)
        nursery.start_soon(broker.run_background_tasks)
        nursery.start_soon(idle.run)
        for listener, sockets in opened:
            handler = partial(
                serve_connection,
                pipeline=broker.pipeline,
                idle=idle,
                max_request_bytes=config.get_int("socket.request.max.bytes"),
                send_timeout=config.get_int("connections.send.timeout.ms") / 1000,
                listener=listener,
                security=security[listener.name],
            )
            connection = handler if ops is None else ops.counted(handler, listener.name)
            await nursery.start(partial(trio.serve_listeners, connection, sockets))
        shown = ", ".join(
            f"{addresses[listener.name]} ({listener.name}, "
            f"advertised {broker.endpoint_for(listener.name)})"
            for listener, _sockets in opened
        )
        log.info(
            "kafkacompat %s listening on %s; node %d, cluster %s, data dir %s",
            __version__,
            shown,
            broker.node_id,
            broker.cluster_id,
            config.data_dir,
        )
        http_address = None
        if ops is not None and http is not None:
            ops.readiness.listeners_bound = True
            http_address = await nursery.start(ops.serve, http)
            log.info("http listening on %s", http_address)
        first = opened[0][0].name
        task_status.started(RunningBroker(broker, addresses[first], dict(addresses), http_address))
