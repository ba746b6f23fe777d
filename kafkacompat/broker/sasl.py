"""SaslHandshake and SaslAuthenticate (STUB: to be written)."""

from __future__ import annotations

from kafkacompat.broker.services import BrokerServices
from kafkacompat.broker.session import Session
from kafkacompat.errors import ProtocolError
from kafkacompat.protocol.messages.api_versions_request import API_KEY as API_VERSIONS
from kafkacompat.protocol.messages.sasl_authenticate_request import API_KEY as SASL_AUTHENTICATE
from kafkacompat.protocol.messages.sasl_handshake_request import API_KEY as SASL_HANDSHAKE

__all__ = ["PRE_AUTHENTICATION_APIS", "raw_sasl_token"]

#: What a SASL listener serves before the client has authenticated.
PRE_AUTHENTICATION_APIS = frozenset({API_VERSIONS, SASL_HANDSHAKE, SASL_AUTHENTICATE})


async def raw_sasl_token(services: BrokerServices, session: Session, token: bytes) -> bytearray:
    """Answer one bare SASL token (after SaslHandshake v0): the framed reply token."""
    raise ProtocolError("SASL tokens are not served yet")
