"""A TLS connection as a `Transport`: the standard library's TLS engine (`ssl.SSLObject` over
memory buffers) on the same non-blocking socket plain connections use.

Reads take what the socket holds (up to 256 KiB) at once and decrypt every whole record of it
straight into the caller's buffer, so a large produce request costs a few socket reads and one
copy, not one wake-up per 16 KiB record. Stored batches cannot go out with ``sendfile`` (the
bytes must be encrypted), so the sender reads them and sends bytes: the one copy TLS has to pay.
"""

from __future__ import annotations

import contextlib
import math
import ssl
from typing import cast

import trio

from kafkacompat.server.socket_io import ClientSocket, ConnectionLost

__all__ = ["TlsHandshakeFailed", "TlsTransport", "tls_handshake"]

#: Most ciphertext read from the socket at once.
RECEIVE_SIZE = 256 * 1024
#: Plaintext encrypted per step when sending (bounds the ciphertext held in memory).
SEND_CHUNK = 256 * 1024


class TlsHandshakeFailed(Exception):
    """The client did not complete a TLS handshake."""


class TlsTransport:
    """One accepted connection after its TLS handshake."""

    __slots__ = ("_ended", "_incoming", "_outgoing", "_peer", "_socket", "_tls")

    supports_sendfile = False

    def __init__(
        self,
        sock: ClientSocket,
        tls: ssl.SSLObject,
        incoming: ssl.MemoryBIO,
        outgoing: ssl.MemoryBIO,
        peer: str,
    ) -> None:
        self._socket = sock
        self._tls = tls
        self._incoming = incoming
        self._outgoing = outgoing
        self._peer = peer
        #: The client sent close_notify: nothing more will come.
        self._ended = False

    @property
    def waits(self) -> int:
        """How often the socket had to be waited for (each wait let other tasks run)."""
        return self._socket.waits

    @waits.setter
    def waits(self, value: int) -> None:
        self._socket.waits = value

    def peer_name(self) -> str:
        return self._peer

    def peer_certificate(self) -> dict[str, object] | None:
        """The client's certificate (mTLS), as `ssl.SSLSocket.getpeercert` gives it."""
        cert = self._tls.getpeercert()
        return dict(cert) if cert else None

    async def _fill(self) -> bool:
        """Read ciphertext from the socket into the TLS engine; False at end of stream."""
        data = await self._socket.recv(RECEIVE_SIZE)
        if not data:
            return False
        self._incoming.write(data)
        return True

    async def _flush(self) -> None:
        """Send whatever the TLS engine has produced (records, alerts, session tickets)."""
        if self._outgoing.pending:
            await self._socket.send_all(self._outgoing.read())

    def _decrypt_into(self, buffer: memoryview) -> int:
        """Plaintext already received, into ``buffer``; 0 when a whole record is missing."""
        total = 0
        tls = self._tls
        while total < len(buffer):
            try:
                got = cast(
                    int, tls.read(len(buffer) - total, buffer[total:])
                )  # a count, given a buffer
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:  # close_notify: the end of the stream
                self._ended = True
                break
            except ssl.SSLError as exc:
                raise ConnectionLost(f"TLS error: {exc.reason or exc}") from exc
            if not got:  # close_notify (OpenSSL reports it as a read of 0 bytes)
                self._ended = True
                break
            total += got
        return total

    async def recv_into(self, buffer: memoryview) -> int:
        """Receive plaintext into ``buffer``; 0 when the peer closed the connection."""
        while True:
            got = self._decrypt_into(buffer)
            await self._flush()  # e.g. a key update's answer
            if got or self._ended:
                return got
            if not await self._fill():
                return 0

    async def recv(self, max_bytes: int) -> bytes:
        buffer = bytearray(min(max_bytes, RECEIVE_SIZE))
        got = await self.recv_into(memoryview(buffer))
        del buffer[got:]
        return bytes(buffer)

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data)
        try:
            for start in range(0, len(view), SEND_CHUNK):
                self._tls.write(view[start : start + SEND_CHUNK])
                await self._flush()
        except ssl.SSLError as exc:
            raise ConnectionLost(f"TLS error: {exc.reason or exc}") from exc

    async def sendfile(self, fd: int, offset: int, count: int) -> int:
        raise NotImplementedError("TLS connections send bytes, not files")

    def close(self) -> None:
        self._socket.close()


async def tls_handshake(
    stream: trio.SocketStream,
    context: ssl.SSLContext,
    peer: str,
    timeout: float,
    send_timeout: float = math.inf,
) -> TlsTransport:
    """Complete the server side of a TLS handshake on an accepted stream within ``timeout``
    seconds, then take its socket over.

    Raises `TlsHandshakeFailed` with the reason (bad certificate, protocol mismatch, plain
    text on a TLS port, time out), after sending any alert; the caller closes the stream.
    """
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_side=True)
    try:
        with trio.fail_after(timeout):
            await _handshake(stream, tls, incoming, outgoing)
    except trio.TooSlowError:
        raise TlsHandshakeFailed(f"no TLS handshake within {timeout:g} s") from None
    except ssl.SSLError as exc:
        with trio.move_on_after(1), contextlib.suppress(trio.BrokenResourceError):
            if outgoing.pending:
                await stream.send_all(outgoing.read())  # the alert that tells the client why
        raise TlsHandshakeFailed(f"TLS handshake failed: {exc.reason or exc}") from None
    except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
        raise TlsHandshakeFailed(f"TLS handshake failed: {exc or 'connection lost'}") from None
    sock = ClientSocket.from_stream(stream, send_timeout)
    return TlsTransport(sock, tls, incoming, outgoing, peer)


async def _handshake(
    stream: trio.SocketStream, tls: ssl.SSLObject, incoming: ssl.MemoryBIO, outgoing: ssl.MemoryBIO
) -> None:
    while True:
        try:
            tls.do_handshake()
        except ssl.SSLWantReadError:
            if outgoing.pending:
                await stream.send_all(outgoing.read())
            data = await stream.receive_some(RECEIVE_SIZE)
            if not data:
                raise trio.BrokenResourceError("connection closed") from None
            incoming.write(data)
            continue
        if outgoing.pending:
            await stream.send_all(outgoing.read())
        return
