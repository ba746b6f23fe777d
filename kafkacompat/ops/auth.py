"""HTTP basic auth for the console's changes, checked against the broker's own SASL users: the
PLAIN users of any listener's JAAS config and the SCRAM credentials (either mechanism)."""

from __future__ import annotations

import base64
import binascii
import hmac

import trio

from kafkacompat.broker.broker import Broker
from kafkacompat.security.scram_credentials import SCRAM_MECHANISMS

__all__ = ["basic_credentials", "check_user"]


def basic_credentials(authorization: str) -> tuple[str, str] | None:
    """``(user, password)`` of an ``Authorization: Basic ...`` header; None when absent or bad."""
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "basic" or not token:
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep and user else None


def _scram_matches(broker: Broker, user: str, password: str) -> bool:
    store = broker.services.security.scram_credentials
    for mechanism in SCRAM_MECHANISMS.values():
        credential = store.get(user, mechanism)
        if credential is None:
            continue
        salted = mechanism.salted_password(password, credential.salt, credential.iterations)
        stored = mechanism.hash(mechanism.hmac(salted, b"Client Key"))
        if hmac.compare_digest(stored, credential.stored_key):
            return True
    return False


async def check_user(broker: Broker, user: str, password: str) -> bool:
    """Whether ``user`` logs in with ``password`` as a SASL PLAIN or SCRAM user of the broker
    (SCRAM's salted hash, thousands of iterations, runs on a worker thread)."""
    sasl = broker.services.security.sasl
    for listener in broker.listeners:
        expected = sasl.plain_users(listener.name).get(user)
        if expected is not None and hmac.compare_digest(expected.encode(), password.encode()):
            return True
    return await trio.to_thread.run_sync(_scram_matches, broker, user, password)
