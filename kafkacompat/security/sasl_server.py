"""The broker's side of SASL: the mechanisms each listener enables, its PLAIN users, one
exchange per (re-)authentication, and the startup check of the SASL settings."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from kafkacompat.config import Config, ConfigError
from kafkacompat.listeners import Listener
from kafkacompat.security.jaas import JaasError, parse_jaas_config, plain_users
from kafkacompat.security.sasl_errors import SaslFailure, SaslInvalidCredentials
from kafkacompat.security.sasl_plain import PlainServerExchange
from kafkacompat.security.sasl_scram import ScramServerExchange
from kafkacompat.security.scram_credentials import SCRAM_MECHANISMS, ScramCredentialStore

__all__ = [
    "SUPPORTED_MECHANISMS",
    "SaslAuthenticator",
    "SaslConversation",
    "SaslExchange",
    "check_sasl_config",
    "enabled_mechanisms",
]

#: The mechanisms this broker implements, in the order they are named to users.
SUPPORTED_MECHANISMS = ("PLAIN", *SCRAM_MECHANISMS)


class SaslExchange(Protocol):
    """One mechanism's server side: ``evaluate`` answers each client token."""

    user: str | None
    complete: bool

    def evaluate(self, token: bytes) -> bytes:
        """The token to send back; raises SaslFailure."""
        ...


@dataclass(slots=True)
class SaslConversation:
    """A (re-)authentication under way on one connection (``Session.sasl_exchange``)."""

    mechanism: str
    #: None when a re-authentication asked for another mechanism: the next token fails.
    exchange: SaslExchange | None
    #: 0: bare SASL tokens follow (SaslHandshake v0); 1: SaslAuthenticate requests.
    handshake_version: int
    reauthenticating: bool = False
    #: Trio time the handshake came in.
    started: float = 0.0
    #: Why the next token fails, when ``exchange`` is None.
    refusal: str = ""
    #: Whether it completed (the session is authenticated by it).
    finished: bool = False

    @property
    def activity(self) -> str:
        return "re-authentication" if self.reauthenticating else "authentication"

    def client_message(self, failure: SaslFailure) -> str:
        """What the client is told about ``failure`` (Kafka's wording)."""
        if isinstance(failure, SaslInvalidCredentials):
            return (
                f"Authentication failed during {self.activity} due to invalid credentials with "
                f"SASL mechanism {self.mechanism}"
            )
        return failure.detail


def enabled_mechanisms(config: Config, listener: str) -> list[str]:
    """``sasl.enabled.mechanisms`` as ``listener`` sees it."""
    text = config.for_listener(listener, "sasl.enabled.mechanisms")
    return [m.strip() for m in text.split(",") if m.strip()]


class SaslAuthenticator:
    """Starts SASL exchanges for the listeners of one broker."""

    def __init__(self, config: Config, credentials: ScramCredentialStore) -> None:
        self.config = config
        self.credentials = credentials
        self._mechanisms: dict[str, list[str]] = {}
        self._plain_users: dict[str, dict[str, str]] = {}

    def enabled_mechanisms(self, listener: str) -> list[str]:
        found = self._mechanisms.get(listener)
        if found is None:
            found = self._mechanisms[listener] = enabled_mechanisms(self.config, listener)
        return found

    def plain_users(self, listener: str) -> dict[str, str]:
        """The PLAIN users of ``listener`` (from its JAAS config; none without one)."""
        found = self._plain_users.get(listener)
        if found is None:
            text = self.config.for_listener(listener, "sasl.jaas.config", "PLAIN")
            found = plain_users(parse_jaas_config(text)) if text else {}
            self._plain_users[listener] = found
        return found

    def start(self, listener: str, mechanism: str) -> SaslExchange:
        """A new exchange for an enabled mechanism of ``listener``."""
        if mechanism == "PLAIN":
            return PlainServerExchange(self.plain_users(listener))
        scram = SCRAM_MECHANISMS.get(mechanism)
        if scram is None:
            raise ValueError(f"SASL mechanism {mechanism} is not implemented")
        credentials = self.credentials
        return ScramServerExchange(scram, lambda user: credentials.get(user, scram))

    def session_lifetime_ms(self, listener: str) -> int:
        """How long an authentication lasts on ``listener`` (``connections.max.reauth.ms``;
        0: for ever)."""
        value = self.config.settings.get(
            f"listener.name.{listener.lower()}.connections.max.reauth.ms"
        )
        if not isinstance(value, int) or isinstance(value, bool):
            value = self.config.get_int("connections.max.reauth.ms")
        return max(0, value)

    @property
    def failure_delay(self) -> float:
        """Seconds a connection stays open after a failed authentication."""
        return self.config.get_int("connection.failed.authentication.delay.ms") / 1000


def check_sasl_config(config: Config, listeners: Iterable[Listener]) -> None:
    """Refuse to start with SASL settings this broker cannot serve: a SASL listener enabling no
    mechanism or one not implemented here (GSSAPI, OAUTHBEARER), PLAIN without a JAAS config
    (or with one that does not parse)."""
    supported = ", ".join(SUPPORTED_MECHANISMS)
    for listener in listeners:
        if not listener.uses_sasl:
            continue
        mechanisms = enabled_mechanisms(config, listener.name)
        if not mechanisms:
            raise ConfigError(
                f"sasl.enabled.mechanisms must be non-empty for SASL listener {listener.name}"
            )
        for mechanism in mechanisms:
            if mechanism not in SUPPORTED_MECHANISMS:
                raise ConfigError(
                    f"SASL mechanism {mechanism} enabled on listener {listener.name} is not "
                    f"supported; set sasl.enabled.mechanisms to some of: {supported}"
                )
        if "PLAIN" in mechanisms:
            text = config.for_listener(listener.name, "sasl.jaas.config", "PLAIN")
            if not text:
                raise ConfigError(
                    f"SASL/PLAIN on listener {listener.name} needs a JAAS config: set "
                    f"listener.name.{listener.name.lower()}.plain.sasl.jaas.config"
                )
            try:
                entries = parse_jaas_config(text)
            except JaasError as error:
                raise ConfigError(
                    f"bad JAAS config for SASL/PLAIN on listener {listener.name}: {error}"
                ) from None
            if len(entries) != 1:
                raise ConfigError(
                    f"the JAAS config for SASL/PLAIN on listener {listener.name} contains "
                    f"{len(entries)} login modules, should be 1 module"
                )
