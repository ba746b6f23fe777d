"""Requests from this broker to another one (transaction markers today), over the Kafka
protocol like any client's.

A broker is reached on its endpoint for ``listener`` in the current metadata image (Kafka's
``inter.broker.listener.name``; here the broker's first listener, which must be PLAINTEXT).
One connection per broker, opened on first use and reopened after a failure; requests on it go
one at a time. A broker that cannot be reached, or a connection that fails, is a
`BrokerUnreachable`, which callers treat as retriable.
"""

from __future__ import annotations

import struct
from typing import Any

import trio

from kafkacompat.cluster.metadata_image import MetadataView
from kafkacompat.protocol.exchange import decode_response, encode_request, highest_version

__all__ = ["BrokerClients", "BrokerUnreachable"]

_SIZE = struct.Struct(">i")
MAX_RESPONSE_BYTES = 100 * 1024 * 1024


class BrokerUnreachable(Exception):
    """The broker could not be asked (unknown, not listening, or the connection broke)."""


class _Connection:
    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.lock = trio.Lock()
        self.correlation = 0
        self.buffer = bytearray()

    async def _read_exactly(self, size: int) -> bytes:
        while len(self.buffer) < size:
            chunk = await self.stream.receive_some(1 << 16)
            if not chunk:
                raise BrokerUnreachable("the broker closed the connection")
            self.buffer += chunk
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        return data

    async def exchange(self, api_key: int, version: int, client_id: str, request: Any) -> Any:
        self.correlation += 1
        await self.stream.send_all(
            encode_request(api_key, version, self.correlation, client_id, request)
        )
        (size,) = _SIZE.unpack(await self._read_exactly(4))
        if not 0 <= size <= MAX_RESPONSE_BYTES:
            raise BrokerUnreachable(f"bad response size {size}")
        frame = memoryview(await self._read_exactly(size))
        return decode_response(api_key, version, frame, self.correlation)


class BrokerClients:
    """Connections to the other brokers of the cluster, by node id."""

    def __init__(self, view: MetadataView, listener: str, client_id: str) -> None:
        self._view = view
        self._listener = listener
        self._client_id = client_id
        self._connections: dict[int, _Connection] = {}

    async def _connect(self, node_id: int) -> _Connection:
        found = self._connections.get(node_id)
        if found is not None:
            return found
        broker = self._view.image.broker(node_id)
        endpoint = None if broker is None else broker.endpoint(self._listener)
        if endpoint is None:
            raise BrokerUnreachable(f"broker {node_id} is not in the cluster metadata")
        try:
            stream = await trio.open_tcp_stream(endpoint.host, endpoint.port)
        except OSError as exc:
            raise BrokerUnreachable(f"cannot reach broker {node_id}: {exc}") from None
        connection = self._connections.setdefault(node_id, _Connection(stream))
        if connection.stream is not stream:
            await stream.aclose()
        return connection

    async def request(
        self, node_id: int, api_key: int, request: Any, *, timeout: float = 10.0
    ) -> Any:
        """Send ``request`` to broker ``node_id`` at the newest version we speak (brokers of
        one cluster run this same code) and return its response."""
        with trio.move_on_after(timeout) as scope:
            connection = await self._connect(node_id)
            async with connection.lock:
                try:
                    return await connection.exchange(
                        api_key, highest_version(api_key), self._client_id, request
                    )
                except (OSError, trio.BrokenResourceError, ConnectionError, BrokerUnreachable):
                    await self._drop(node_id, connection)
                    raise BrokerUnreachable(f"broker {node_id}: connection failed") from None
        if scope.cancelled_caught:
            await self._drop(node_id, self._connections.get(node_id))
        raise BrokerUnreachable(f"broker {node_id} did not answer in {timeout:g} s")

    async def _drop(self, node_id: int, connection: _Connection | None) -> None:
        if connection is not None and self._connections.get(node_id) is connection:
            del self._connections[node_id]
            with trio.CancelScope(shield=True):
                await connection.stream.aclose()

    async def aclose(self) -> None:
        for node_id, connection in list(self._connections.items()):
            await self._drop(node_id, connection)
