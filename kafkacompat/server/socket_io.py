"""A client socket driven directly: the non-blocking call first, a Trio I/O wait only when needed.

Trio's own socket methods yield to the scheduler after every call that succeeds, so that no
task can hog the loop. A request/response connection would pay that twice per request (the
receive and the send), which is most of the cost of a small request. Here a call that succeeds
returns at once; the connection loop yields explicitly instead (see `serve_connection`).

Before a receive goes to sleep in the kernel it polls the socket for a few passes of the
scheduler: a client sending its next request right after a response finds the broker still
awake. Waking a sleeping process costs tens of microseconds on a virtual machine, more than
the polling, which is why this lowers both latency and CPU per request.
"""

from __future__ import annotations

import math
import os
import socket
from collections.abc import Callable
from typing import TypeVar

import trio

A = TypeVar("A")
R = TypeVar("R")

#: Scheduler passes a receive polls for data before it sleeps until the socket is readable.
POLL_PASSES = 5


class ConnectionLost(Exception):
    """The peer reset the connection or the socket was closed under us."""


class SendStalled(Exception):
    """The client has not read its response for longer than the send timeout."""


class ClientSocket:
    """One accepted connection's non-blocking socket."""

    __slots__ = ("_drained", "send_timeout", "sock", "waits")

    supports_sendfile = True

    def __init__(self, sock: socket.socket, send_timeout: float = math.inf) -> None:
        sock.setblocking(False)
        self.sock = sock
        #: Seconds a send may wait for the client to make room before `SendStalled`.
        self.send_timeout = send_timeout
        #: How often a call had to wait for the socket (each wait let other tasks run).
        self.waits = 0
        #: The last receive emptied the kernel's buffer: wait for readability before the next.
        self._drained = True

    @classmethod
    def from_stream(cls, stream: trio.SocketStream, send_timeout: float = math.inf) -> ClientSocket:
        """Take over the socket of a stream Trio accepted (the stream is left closed)."""
        family, kind, proto = stream.socket.family, stream.socket.type, stream.socket.proto
        sock = socket.socket(family, kind, proto, fileno=stream.socket.detach())
        return cls(sock, send_timeout)

    def peer_name(self) -> str:
        try:
            address = self.sock.getpeername()
        except OSError:
            return "unknown peer"
        return f"{address[0]}:{address[1]}"

    async def recv(self, max_bytes: int) -> bytes:
        """Up to ``max_bytes``; b"" when the peer closed its side."""
        return await self._receive(self.sock.recv, max_bytes, max_bytes, len)

    async def recv_into(self, buffer: memoryview) -> int:
        """Receive into ``buffer``; 0 when the peer closed its side."""
        return await self._receive(self.sock.recv_into, buffer, len(buffer), int)

    async def _receive(
        self, call: Callable[[A], R], argument: A, room: int, size_of: Callable[[R], int]
    ) -> R:
        """``call(argument)`` once the socket has data: polled for a few passes if the last
        receive emptied it, then slept for."""
        polls = POLL_PASSES
        while True:
            if self._drained:
                polls = await self._poll_or_wait(polls)
            try:
                result = call(argument)
            except BlockingIOError:
                self._drained = True
                continue
            except OSError as exc:
                raise ConnectionLost(str(exc)) from exc
            self._drained = size_of(result) < room
            return result

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        sock = self.sock
        try:
            sent = sock.send(data)  # a small response almost always goes out whole
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            raise ConnectionLost(str(exc)) from exc
        if sent == len(data):
            return
        view = memoryview(data)[sent:]
        while view:
            try:
                sent = sock.send(view)
            except BlockingIOError:
                await self._wait_writable()
                continue
            except OSError as exc:
                raise ConnectionLost(str(exc)) from exc
            view = view[sent:]

    async def sendfile(self, fd: int, offset: int, count: int) -> int:
        """Send up to ``count`` bytes of the file from ``offset``; 0 means the file ends there."""
        while True:
            try:
                return os.sendfile(self.sock.fileno(), fd, offset, count)
            except BlockingIOError:
                await self._wait_writable()
            except (BrokenPipeError, ConnectionError) as exc:
                raise ConnectionLost(str(exc)) from exc

    async def _poll_or_wait(self, polls: int) -> int:
        """Let other tasks run once and then try again (while ``polls`` last), or sleep until
        the socket is readable; returns the polls left."""
        if polls:
            self.waits += 1
            await trio.lowlevel.checkpoint()
            return polls - 1
        await self._wait_readable()
        return 0

    async def _wait_readable(self) -> None:
        self.waits += 1
        try:
            await trio.lowlevel.wait_readable(self.sock)
        except trio.ClosedResourceError as exc:
            raise ConnectionLost("socket closed") from exc
        self._drained = False

    async def _wait_writable(self) -> None:
        """Wait for room in the socket's send buffer (only sends that would block get here)."""
        self.waits += 1
        try:
            with trio.move_on_after(self.send_timeout) as waited:
                await trio.lowlevel.wait_writable(self.sock)
        except trio.ClosedResourceError as exc:
            raise ConnectionLost("socket closed") from exc
        if waited.cancelled_caught:
            raise SendStalled(f"the client read nothing for {self.send_timeout:g} s")

    def close(self) -> None:
        if self.sock.fileno() != -1:
            trio.lowlevel.notify_closing(self.sock)
            self.sock.close()
