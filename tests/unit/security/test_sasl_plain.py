"""SASL/PLAIN on the broker: Kafka's checks and messages, in Kafka's order."""

from __future__ import annotations

import pytest

from kafkacompat.security.sasl_errors import SaslAuthenticationError
from kafkacompat.security.sasl_plain import PlainServerExchange

USERS = {"admin": "admin-secret", "alice": "alice-secret"}


def failure(token: bytes) -> SaslAuthenticationError:
    with pytest.raises(SaslAuthenticationError) as raised:
        PlainServerExchange(USERS).evaluate(token)
    return raised.value


def test_good_login_answers_nothing() -> None:
    exchange = PlainServerExchange(USERS)
    assert exchange.evaluate(b"\0alice\0alice-secret") == b""
    assert exchange.complete
    assert exchange.user == "alice"


def test_authzid_naming_the_user_is_fine() -> None:
    exchange = PlainServerExchange(USERS)
    exchange.evaluate(b"alice\0alice\0alice-secret")
    assert exchange.complete


@pytest.mark.parametrize(
    ("token", "message", "user"),
    [
        (b"\0alice\0wrong", "Authentication failed: Invalid username or password", "alice"),
        (b"\0mallory\0x", "Authentication failed: Invalid username or password", "mallory"),
        (b"\0\0alice-secret", "Authentication failed: username not specified", None),
        (b"\0alice\0", "Authentication failed: password not specified", "alice"),
        (b"alice-secret", "Invalid SASL/PLAIN response: expected 3 tokens, got 1", None),
        (b"\0alice", "Invalid SASL/PLAIN response: expected 3 tokens, got 2", None),
        (b"\0a\0b\0c", "Invalid SASL/PLAIN response: expected 3 tokens, got 4", None),
        (
            b"bob\0alice\0alice-secret",
            "Authentication failed: Client requested an authorization id that is different "
            "from username",
            "alice",
        ),
    ],
)
def test_refusals(token: bytes, message: str, user: str | None) -> None:
    refused = failure(token)
    assert refused.detail == message
    assert refused.user == user


def test_password_of_another_user_is_refused() -> None:
    assert failure(b"\0alice\0admin-secret").detail == (
        "Authentication failed: Invalid username or password"
    )


def test_no_second_message() -> None:
    exchange = PlainServerExchange(USERS)
    exchange.evaluate(b"\0alice\0alice-secret")
    with pytest.raises(SaslAuthenticationError):
        exchange.evaluate(b"\0alice\0alice-secret")
