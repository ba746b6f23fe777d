"""What a listener does with a connection before its first request: the TLS handshake and the
principal of the client's certificate, and the session the connection starts with."""

from __future__ import annotations

import math
import ssl
from dataclasses import dataclass

import trio

from kafkacompat.broker.session import ANONYMOUS, Session
from kafkacompat.config import Config
from kafkacompat.listeners import Listener
from kafkacompat.security.ssl_principal import PrincipalMapper, subject_name
from kafkacompat.security.tls_config import tls_context
from kafkacompat.server.socket_io import ClientSocket
from kafkacompat.server.tls_transport import TlsTransport, tls_handshake
from kafkacompat.server.transport import Transport

__all__ = ["ListenerSecurity", "accept_connection", "listener_security", "peer_of"]

#: Seconds a client has to complete its TLS handshake.
TLS_HANDSHAKE_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class ListenerSecurity:
    """One listener's security, prepared once: its TLS context and certificate principal rules."""

    listener: Listener
    tls: ssl.SSLContext | None = None
    principal_mapper: PrincipalMapper | None = None


def listener_security(config: Config, listener: Listener) -> ListenerSecurity:
    """Build a listener's TLS context (ConfigError when its settings are wrong)."""
    if not listener.uses_tls:
        return ListenerSecurity(listener)
    rules = config.for_listener(listener.name, "ssl.principal.mapping.rules")
    return ListenerSecurity(listener, tls_context(config, listener.name), PrincipalMapper(rules))


async def accept_connection(
    stream: trio.SocketStream, security: ListenerSecurity, send_timeout: float = math.inf
) -> tuple[Transport, Session]:
    """The transport and the starting session of a connection just accepted.

    Raises `TlsHandshakeFailed` when a TLS client does not complete its handshake.
    """
    listener = security.listener
    if security.tls is None:
        client = ClientSocket.from_stream(stream, send_timeout)
        peer = client.peer_name()
        transport: Transport = client
        principal = ANONYMOUS
    else:
        peer = peer_of(stream)
        tls = await tls_handshake(stream, security.tls, peer, TLS_HANDSHAKE_TIMEOUT, send_timeout)
        transport = tls
        principal = _certificate_principal(tls, security) if not listener.uses_sasl else ANONYMOUS
    session = Session(
        peer,
        listener_name=listener.name,
        security_protocol=listener.security_protocol,
        principal=principal,
        authenticated=not listener.uses_sasl,
    )
    return transport, session


def peer_of(stream: trio.SocketStream) -> str:
    try:
        address = stream.socket.getpeername()
    except OSError:
        return "unknown peer"
    return f"{address[0]}:{address[1]}"


def _certificate_principal(tls: TlsTransport, security: ListenerSecurity) -> str:
    """``User:<mapped subject>`` of the client's certificate; ANONYMOUS without one."""
    cert = tls.peer_certificate()
    subject = cert.get("subject") if cert else None
    if not subject or security.principal_mapper is None:
        return ANONYMOUS
    name = subject_name(subject)  # type: ignore[arg-type]
    return "User:" + security.principal_mapper.name(name)
