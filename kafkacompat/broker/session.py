"""What the broker knows about one client connection, for as long as it lasts."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ANONYMOUS", "Session"]

#: Kafka's principal for a connection that has not authenticated.
ANONYMOUS = "User:ANONYMOUS"

_connection_ids = itertools.count(1)


@dataclass(slots=True)
class Session:
    """One connection's identity: created when it is accepted, handed to every request on it.

    ``client_id`` follows the request headers; ``client_software_*`` come from ApiVersions v3+.
    On a SASL listener ``authenticated`` starts False: until a SASL exchange completes only
    ApiVersions, SaslHandshake and SaslAuthenticate are served.
    """

    peer: str
    listener_name: str = "PLAINTEXT"
    security_protocol: str = "PLAINTEXT"
    principal: str = ANONYMOUS
    client_id: str | None = None
    client_software_name: str | None = None
    client_software_version: str | None = None
    connection_id: int = field(default_factory=lambda: next(_connection_ids))
    #: Whether requests other than the SASL exchange may be served.
    authenticated: bool = True
    #: The SASL exchange under way (a `kafkacompat.security.sasl_server.SaslExchange`).
    sasl_exchange: Any = None
    #: After SaslHandshake v0 the client sends bare SASL tokens, not Kafka requests.
    raw_sasl_tokens: bool = False
    #: Trio time at which the authentication expires (KIP-368); inf: never.
    reauth_deadline: float = math.inf
    #: Set by a handler: close the connection this many seconds after its response is sent.
    close_after_response: float | None = None
    #: Trio time until which the connection is muted (quota throttling).
    muted_until: float = 0.0

    @property
    def host(self) -> str:
        """The client's address without its port (what ACLs match)."""
        host, _, _port = self.peer.rpartition(":")
        return host.strip("[]") or self.peer
