"""The transport seam: what a connection needs from the bytes underneath it.

A plain socket (`ClientSocket`) sends stored batches straight from their files
(``supports_sendfile``); a transport that must transform the bytes (TLS) copies them instead.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["Transport"]


class Transport(Protocol):
    #: Whether `sendfile` works here; when False the server reads file regions and sends bytes.
    supports_sendfile: bool
    #: How often a call had to wait (each wait let other tasks run).
    waits: int

    def peer_name(self) -> str: ...

    async def recv(self, max_bytes: int) -> bytes: ...

    async def recv_into(self, buffer: memoryview) -> int: ...

    async def send_all(self, data: bytes | bytearray | memoryview) -> None: ...

    async def sendfile(self, fd: int, offset: int, count: int) -> int: ...

    def close(self) -> None: ...
