"""The SASL authenticator's settings per listener and the startup check of SASL settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from kafkacompat.config import Config, ConfigError
from kafkacompat.listeners import configured_listeners
from kafkacompat.security.sasl_errors import SaslAuthenticationError, SaslInvalidCredentials
from kafkacompat.security.sasl_plain import PlainServerExchange
from kafkacompat.security.sasl_scram import ScramServerExchange
from kafkacompat.security.sasl_server import (
    SaslAuthenticator,
    SaslConversation,
    check_sasl_config,
    enabled_mechanisms,
)
from kafkacompat.security.scram_credentials import ScramCredentialStore
from kafkacompat.storage.state_store import StateStore

PLAIN_JAAS = (
    "org.apache.kafka.common.security.plain.PlainLoginModule required "
    'username="admin" password="admin-secret" user_admin="admin-secret" user_alice="alice-secret";'
)
LISTENERS = "SASL_PLAINTEXT://127.0.0.1:0,INTERNAL://127.0.0.1:0,PLAINTEXT://127.0.0.1:0"
PROTOCOLS = "SASL_PLAINTEXT:SASL_PLAINTEXT,INTERNAL:SASL_PLAINTEXT,PLAINTEXT:PLAINTEXT"


def config(**settings: int | bool | str) -> Config:
    base: dict[str, int | bool | str] = {
        "listeners": LISTENERS,
        "listener.security.protocol.map": PROTOCOLS,
    }
    return Config(settings={**base, **settings})


def check(cfg: Config) -> None:
    check_sasl_config(cfg, configured_listeners(cfg))


def authenticator(cfg: Config, tmp_path: Path) -> SaslAuthenticator:
    store = ScramCredentialStore(StateStore(tmp_path / "state").namespace("scram-credentials"))
    return SaslAuthenticator(cfg, store)


def test_kafkas_default_gssapi_is_refused_naming_what_is_supported() -> None:
    with pytest.raises(ConfigError) as error:
        check(config())
    assert str(error.value) == (
        "SASL mechanism GSSAPI enabled on listener SASL_PLAINTEXT is not supported; set "
        "sasl.enabled.mechanisms to some of: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512"
    )


def test_oauthbearer_on_one_listener_is_refused() -> None:
    cfg = config(
        **{
            "sasl.enabled.mechanisms": "SCRAM-SHA-256",
            "listener.name.internal.sasl.enabled.mechanisms": "OAUTHBEARER",
        }
    )
    with pytest.raises(ConfigError, match="OAUTHBEARER enabled on listener INTERNAL"):
        check(cfg)


def test_no_mechanism_is_refused() -> None:
    with pytest.raises(ConfigError, match="must be non-empty for SASL listener SASL_PLAINTEXT"):
        check(config(**{"sasl.enabled.mechanisms": " "}))


def test_plain_needs_a_jaas_config() -> None:
    with pytest.raises(ConfigError) as error:
        check(config(**{"sasl.enabled.mechanisms": "PLAIN"}))
    assert "listener.name.sasl_plaintext.plain.sasl.jaas.config" in str(error.value)


def test_a_jaas_config_that_does_not_parse_is_refused_without_quoting_it() -> None:
    cfg = config(
        **{"sasl.enabled.mechanisms": "PLAIN", "sasl.jaas.config": 'x required user_a="secret"'}
    )
    with pytest.raises(ConfigError) as error:
        check(cfg)
    assert "secret" not in str(error.value)


def test_good_settings_pass() -> None:
    check(
        config(**{"sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-512", "sasl.jaas.config": PLAIN_JAAS})
    )
    check(config(**{"sasl.enabled.mechanisms": "SCRAM-SHA-256"}))
    check(Config())  # no SASL listener: nothing to check


def test_per_listener_mechanisms_and_jaas(tmp_path: Path) -> None:
    cfg = config(
        **{
            "sasl.enabled.mechanisms": "SCRAM-SHA-256, SCRAM-SHA-512",
            "listener.name.internal.sasl.enabled.mechanisms": "PLAIN",
            "listener.name.internal.plain.sasl.jaas.config": PLAIN_JAAS,
        }
    )
    check(cfg)
    assert enabled_mechanisms(cfg, "SASL_PLAINTEXT") == ["SCRAM-SHA-256", "SCRAM-SHA-512"]
    sasl = authenticator(cfg, tmp_path)
    assert sasl.enabled_mechanisms("INTERNAL") == ["PLAIN"]
    assert sasl.plain_users("INTERNAL") == {"admin": "admin-secret", "alice": "alice-secret"}
    assert sasl.plain_users("SASL_PLAINTEXT") == {}
    assert isinstance(sasl.start("INTERNAL", "PLAIN"), PlainServerExchange)
    assert isinstance(sasl.start("SASL_PLAINTEXT", "SCRAM-SHA-512"), ScramServerExchange)


def test_session_lifetime_and_failure_delay(tmp_path: Path) -> None:
    cfg = config(
        **{
            "connections.max.reauth.ms": 60000,
            "listener.name.internal.connections.max.reauth.ms": 5000,
            "connection.failed.authentication.delay.ms": 250,
        }
    )
    sasl = authenticator(cfg, tmp_path)
    assert sasl.session_lifetime_ms("SASL_PLAINTEXT") == 60000
    assert sasl.session_lifetime_ms("INTERNAL") == 5000
    assert sasl.failure_delay == 0.25
    assert authenticator(config(), tmp_path / "2").session_lifetime_ms("SASL_PLAINTEXT") == 0


def test_what_the_client_is_told() -> None:
    conversation = SaslConversation("SCRAM-SHA-256", None, 1)
    assert conversation.client_message(SaslInvalidCredentials("Invalid client credentials")) == (
        "Authentication failed during authentication due to invalid credentials with SASL "
        "mechanism SCRAM-SHA-256"
    )
    conversation.reauthenticating = True
    assert conversation.client_message(SaslInvalidCredentials("x")).startswith(
        "Authentication failed during re-authentication due to"
    )
    assert conversation.client_message(SaslAuthenticationError("told as is")) == "told as is"
