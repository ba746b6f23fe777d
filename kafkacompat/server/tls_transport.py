"""A TLS connection as a `Transport`: Trio's TLS stream over the accepted socket.

Stored batches cannot go out with ``sendfile`` (the bytes must be encrypted), so the sender
reads them and sends bytes: the one copy TLS has to pay.
"""

from __future__ import annotations

import ssl

import trio

from kafkacompat.server.socket_io import ConnectionLost

__all__ = ["TlsTransport"]


class TlsTransport:
    """One accepted connection after its TLS handshake."""

    __slots__ = ("_peer", "stream", "waits")

    supports_sendfile = False

    def __init__(self, stream: trio.SSLStream[trio.SocketStream], peer: str) -> None:
        self.stream = stream
        self._peer = peer
        #: Trio's stream lets other tasks run on every call.
        self.waits = 0

    def peer_name(self) -> str:
        return self._peer

    def peer_certificate(self) -> dict[str, object] | None:
        """The client's certificate (mTLS), as `ssl.SSLSocket.getpeercert` gives it."""
        cert = self.stream.getpeercert()
        return dict(cert) if cert else None

    async def recv(self, max_bytes: int) -> bytes:
        self.waits += 1
        try:
            return bytes(await self.stream.receive_some(max_bytes))
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise ConnectionLost(str(exc)) from exc

    async def recv_into(self, buffer: memoryview) -> int:
        data = await self.recv(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        self.waits += 1
        try:
            await self.stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise ConnectionLost(str(exc)) from exc

    async def sendfile(self, fd: int, offset: int, count: int) -> int:
        raise NotImplementedError("TLS connections send bytes, not files")

    def close(self) -> None:
        sock = self.stream.transport_stream.socket
        if sock.fileno() != -1:
            trio.lowlevel.notify_closing(sock)
            sock.close()


async def tls_handshake(
    stream: trio.SocketStream, context: ssl.SSLContext, peer: str, timeout: float
) -> TlsTransport:
    """Wrap an accepted stream in TLS and complete the handshake within ``timeout`` seconds.

    Raises `TlsHandshakeFailed` with the reason (bad certificate, protocol mismatch, plain
    text on a TLS port, time out).
    """
    tls = trio.SSLStream(stream, context, server_side=True)
    try:
        with trio.fail_after(timeout):
            await tls.do_handshake()
    except trio.TooSlowError:
        raise TlsHandshakeFailed(f"no TLS handshake within {timeout:g} s") from None
    except trio.BrokenResourceError as exc:
        cause = exc.__cause__
        reason = getattr(cause, "reason", None) or str(cause or exc) or "connection closed"
        raise TlsHandshakeFailed(f"TLS handshake failed: {reason}") from None
    return TlsTransport(tls, peer)


class TlsHandshakeFailed(Exception):
    """The client did not complete a TLS handshake."""
