"""The broker's side of one SASL/PLAIN exchange (RFC 4616), with users from the listener's JAAS
login module as Kafka reads them: option ``user_<name>="<password>"``."""

from __future__ import annotations

from collections.abc import Mapping
from hmac import compare_digest

from kafkacompat.security.sasl_errors import SaslAuthenticationError

__all__ = ["PlainServerExchange"]


class PlainServerExchange:
    """One message: ``authzid NUL authcid NUL passwd``; nothing is sent back."""

    def __init__(self, users: Mapping[str, str]) -> None:
        self._users = users
        self.user: str | None = None
        self.complete = False

    def evaluate(self, token: bytes) -> bytes:
        """An empty answer on success; raises SaslFailure."""
        if self.complete:
            raise SaslAuthenticationError("Unexpected SASL/PLAIN message after completion")
        parts = token.decode("utf-8", errors="replace").split("\0", 3)
        if len(parts) != 3:
            raise SaslAuthenticationError(
                f"Invalid SASL/PLAIN response: expected 3 tokens, got {len(parts)}"
            )
        authzid, user, password = parts
        if not user:
            raise SaslAuthenticationError("Authentication failed: username not specified")
        self.user = user
        if not password:
            raise SaslAuthenticationError("Authentication failed: password not specified", user)
        expected = self._users.get(user)
        # Compare against something even for unknown users: the time taken tells nothing.
        matches = compare_digest(password.encode(), (expected or "\0" + password).encode())
        if expected is None or not matches:
            raise SaslAuthenticationError(
                "Authentication failed: Invalid username or password", user
            )
        if authzid and authzid != user:
            raise SaslAuthenticationError(
                "Authentication failed: Client requested an authorization id that is different "
                "from username",
                user,
            )
        self.complete = True
        return b""
