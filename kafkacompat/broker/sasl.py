"""SaslHandshake and SaslAuthenticate (and bare SASL tokens after SaslHandshake v0): a SASL
listener's login and KIP-368 re-authentication, with Kafka's errors and messages."""

from __future__ import annotations

import logging
import math
import struct

import trio

from kafkacompat.broker.context import RequestContext
from kafkacompat.broker.router import handles
from kafkacompat.broker.services import BrokerServices
from kafkacompat.broker.session import Session
from kafkacompat.errors import ErrorCode, ProtocolError
from kafkacompat.protocol.messages.api_versions_request import API_KEY as API_VERSIONS
from kafkacompat.protocol.messages.sasl_authenticate_request import API_KEY as SASL_AUTHENTICATE
from kafkacompat.protocol.messages.sasl_authenticate_request import SaslAuthenticateRequest
from kafkacompat.protocol.messages.sasl_authenticate_response import SaslAuthenticateResponse
from kafkacompat.protocol.messages.sasl_handshake_request import API_KEY as SASL_HANDSHAKE
from kafkacompat.protocol.messages.sasl_handshake_request import SaslHandshakeRequest
from kafkacompat.protocol.messages.sasl_handshake_response import SaslHandshakeResponse
from kafkacompat.security.sasl_errors import SaslAuthenticationError, SaslFailure
from kafkacompat.security.sasl_server import SaslConversation

__all__ = ["PRE_AUTHENTICATION_APIS", "raw_sasl_token"]

logger = logging.getLogger(__name__)

#: What a SASL listener serves before the client has authenticated.
PRE_AUTHENTICATION_APIS = frozenset({API_VERSIONS, SASL_HANDSHAKE, SASL_AUTHENTICATE})

_SASL_PROTOCOLS = frozenset({"SASL_PLAINTEXT", "SASL_SSL"})
#: Kafka lets a connection re-authenticate at most once a second.
_MIN_REAUTH_INTERVAL = 1.0
_LENGTH = struct.Struct(">i")


def _log_failure(session: Session, mechanism: str, user: str | None, detail: str) -> None:
    logger.info(
        "authentication failed: %s on listener %s with SASL mechanism %s as user %r: %s",
        session.peer,
        session.listener_name,
        mechanism,
        user,
        detail,
    )


def _may_reauthenticate(session: Session, now: float) -> bool:
    """Kafka re-authenticates only sessions that expire, at most once a second."""
    previous = session.sasl_exchange
    if session.reauth_deadline == math.inf or not isinstance(previous, SaslConversation):
        return False
    return now - previous.started >= _MIN_REAUTH_INTERVAL or not previous.reauthenticating


@handles(SASL_HANDSHAKE)
async def handle_sasl_handshake(
    context: RequestContext, request: SaslHandshakeRequest
) -> SaslHandshakeResponse:
    session = context.session
    sasl = context.services.security.sasl
    if session.security_protocol not in _SASL_PROTOCOLS:
        return SaslHandshakeResponse(ErrorCode.ILLEGAL_SASL_STATE, [])
    now = trio.current_time()
    previous = session.sasl_exchange
    reauthenticating = session.authenticated
    if reauthenticating and not _may_reauthenticate(session, now):
        return SaslHandshakeResponse(ErrorCode.ILLEGAL_SASL_STATE, [])
    if not reauthenticating and previous is not None:
        _log_failure(session, previous.mechanism, None, "SaslHandshake during the SASL exchange")
        session.close_after_response = sasl.failure_delay
        return SaslHandshakeResponse(ErrorCode.ILLEGAL_SASL_STATE, [])
    enabled = sasl.enabled_mechanisms(session.listener_name)
    mechanism = request.mechanism
    if mechanism not in enabled:
        _log_failure(session, mechanism, None, f"Unsupported SASL mechanism {mechanism}")
        session.close_after_response = sasl.failure_delay
        return SaslHandshakeResponse(ErrorCode.UNSUPPORTED_SASL_MECHANISM, list(enabled))
    conversation = SaslConversation(
        mechanism, None, context.api_version, reauthenticating, started=now
    )
    if reauthenticating and previous.mechanism != mechanism:
        conversation.refusal = (
            f"SASL mechanism '{mechanism}' requested by client is not supported for "
            f"re-authentication of mechanism '{previous.mechanism}'"
        )
    else:
        conversation.exchange = sasl.start(session.listener_name, mechanism)
    session.sasl_exchange = conversation
    session.raw_sasl_tokens = context.api_version == 0
    return SaslHandshakeResponse(0, list(enabled))


def _evaluate(services: BrokerServices, session: Session, token: bytes) -> tuple[bytes, int]:
    """The conversation's answer to ``token`` and, once it completes, the session lifetime
    (ms; 0: none); raises SaslFailure, or ProtocolError when the connection just closes."""
    conversation = session.sasl_exchange
    if not isinstance(conversation, SaslConversation) or conversation.finished:
        raise ProtocolError("SaslAuthenticate request during SASL handshake (ILLEGAL_SASL_STATE)")
    exchange = conversation.exchange
    if exchange is None:
        _log_failure(session, conversation.mechanism, None, conversation.refusal)
        raise ProtocolError(conversation.refusal)
    reply = exchange.evaluate(token)
    if not exchange.complete:
        return reply, 0
    principal = f"User:{exchange.user}"
    if conversation.reauthenticating and principal != session.principal:
        raise SaslAuthenticationError(
            "Cannot change principals during re-authentication from "
            f"{session.principal.replace(':', '.', 1)}: {principal.replace(':', '.', 1)}",
            exchange.user,
        )
    lifetime_ms = services.security.sasl.session_lifetime_ms(session.listener_name)
    conversation.finished = True
    session.principal = principal
    session.authenticated = True
    session.raw_sasl_tokens = False
    session.reauth_deadline = (
        trio.current_time() + lifetime_ms / 1000 if lifetime_ms > 0 else math.inf
    )
    logger.debug(
        "%s %s as %s with SASL mechanism %s (session lifetime %d ms)",
        session.peer,
        "re-authenticated" if conversation.reauthenticating else "authenticated",
        principal,
        conversation.mechanism,
        lifetime_ms,
    )
    return reply, lifetime_ms


def _failed(services: BrokerServices, session: Session, failure: SaslFailure) -> str:
    """Log ``failure``, schedule the close; what the client is told."""
    conversation = session.sasl_exchange
    assert isinstance(conversation, SaslConversation)
    _log_failure(session, conversation.mechanism, failure.user, failure.detail)
    session.close_after_response = services.security.sasl.failure_delay
    return conversation.client_message(failure)


@handles(SASL_AUTHENTICATE)
async def handle_sasl_authenticate(
    context: RequestContext, request: SaslAuthenticateRequest
) -> SaslAuthenticateResponse:
    session = context.session
    conversation = session.sasl_exchange
    if session.security_protocol not in _SASL_PROTOCOLS or (
        session.authenticated
        and (not isinstance(conversation, SaslConversation) or conversation.finished)
    ):
        return SaslAuthenticateResponse(
            ErrorCode.ILLEGAL_SASL_STATE,
            "SaslAuthenticate request received after successful authentication",
        )
    try:
        reply, lifetime_ms = _evaluate(context.services, session, bytes(request.auth_bytes))
    except SaslFailure as failure:
        message = _failed(context.services, session, failure)
        return SaslAuthenticateResponse(ErrorCode.SASL_AUTHENTICATION_FAILED, message)
    return SaslAuthenticateResponse(0, None, reply, lifetime_ms)


async def raw_sasl_token(services: BrokerServices, session: Session, token: bytes) -> bytearray:
    """Answer one bare SASL token (after SaslHandshake v0): the framed reply token. A failure
    closes the connection without an answer, after connection.failed.authentication.delay.ms."""
    try:
        reply, _lifetime_ms = _evaluate(services, session, token)
    except SaslFailure as failure:
        _failed(services, session, failure)
        await trio.sleep(services.security.sasl.failure_delay)
        raise ProtocolError(f"SASL authentication failed: {failure.detail}") from None
    return bytearray(_LENGTH.pack(len(reply)) + reply)
