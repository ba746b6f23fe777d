"""Why a SASL exchange failed, in Kafka's two kinds: a message meant for the client as it is,
or invalid credentials, which the client learns about only in general terms."""

from __future__ import annotations

__all__ = ["SaslAuthenticationError", "SaslFailure", "SaslInvalidCredentials"]


class SaslFailure(Exception):
    """A failed SASL exchange; ``detail`` is for the broker's log and never holds a secret."""

    def __init__(self, detail: str, user: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.user = user


class SaslAuthenticationError(SaslFailure):
    """The client is told ``detail`` itself (Kafka's SaslAuthenticationException)."""


class SaslInvalidCredentials(SaslFailure):
    """The client is told only that its credentials were invalid (Kafka's SaslException)."""
