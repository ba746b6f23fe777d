"""What the broker knows about one client connection, for as long as it lasts."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

__all__ = ["ANONYMOUS", "Session"]

#: Kafka's principal for a connection that has not authenticated.
ANONYMOUS = "User:ANONYMOUS"

_connection_ids = itertools.count(1)


@dataclass(slots=True)
class Session:
    """One connection's identity: created when it is accepted, handed to every request on it.

    ``client_id`` follows the request headers; ``client_software_*`` come from ApiVersions v3+.
    """

    peer: str
    listener_name: str = "PLAINTEXT"
    security_protocol: str = "PLAINTEXT"
    principal: str = ANONYMOUS
    client_id: str | None = None
    client_software_name: str | None = None
    client_software_version: str | None = None
    connection_id: int = field(default_factory=lambda: next(_connection_ids))
