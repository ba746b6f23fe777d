"""The broker's SCRAM exchange: RFC 7677's example byte for byte, scramp as an independent
client for both mechanisms, and every way Kafka refuses a login."""

from __future__ import annotations

import base64

import pytest
import scramp

from kafkacompat.security.sasl_errors import (
    SaslAuthenticationError,
    SaslFailure,
    SaslInvalidCredentials,
)
from kafkacompat.security.sasl_scram import ScramServerExchange, scram_username
from kafkacompat.security.scram_credentials import (
    SCRAM_MECHANISMS,
    ScramCredential,
    credential_from_password,
)

SHA256 = SCRAM_MECHANISMS["SCRAM-SHA-256"]
SHA512 = SCRAM_MECHANISMS["SCRAM-SHA-512"]


def exchange_for(
    users: dict[str, ScramCredential], mechanism: str = "SCRAM-SHA-256", nonce: str | None = None
) -> ScramServerExchange:
    return ScramServerExchange(SCRAM_MECHANISMS[mechanism], users.get, nonce)


def test_rfc_7677_example_byte_for_byte() -> None:
    salt = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
    users = {"user": credential_from_password(SHA256, "pencil", 4096, salt)}
    server = exchange_for(users, nonce="%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0")
    first = server.evaluate(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO")
    assert first == (
        b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
    )
    final = server.evaluate(
        b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
        b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
    )
    assert final == b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
    assert server.complete
    assert server.user == "user"


def login(server: ScramServerExchange, user: str, password: str, mechanism: str) -> None:
    client = scramp.ScramClient([mechanism], user, password)
    server_first = server.evaluate(client.get_client_first().encode())
    client.set_server_first(server_first.decode())
    server_final = server.evaluate(client.get_client_final().encode())
    client.set_server_final(server_final.decode())  # checks the server's signature


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_scramp_client_logs_in(mechanism: str) -> None:
    credential = credential_from_password(SCRAM_MECHANISMS[mechanism], "alice-secret", 8192)
    server = exchange_for({"alice": credential}, mechanism)
    login(server, "alice", "alice-secret", mechanism)
    assert server.complete
    assert server.user == "alice"


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_wrong_password_is_invalid_credentials(mechanism: str) -> None:
    credential = credential_from_password(SCRAM_MECHANISMS[mechanism], "alice-secret")
    server = exchange_for({"alice": credential}, mechanism)
    with pytest.raises(SaslInvalidCredentials) as failure:
        login(server, "alice", "wrong", mechanism)
    assert failure.value.detail == "Invalid client credentials"
    assert failure.value.user == "alice"
    assert not server.complete


def test_a_credential_of_the_other_mechanism_does_not_match() -> None:
    credential = credential_from_password(SHA512, "alice-secret")
    server = exchange_for({"alice": credential}, "SCRAM-SHA-256")
    with pytest.raises(SaslInvalidCredentials):
        login(server, "alice", "alice-secret", "SCRAM-SHA-256")


def test_unknown_user_fails_at_the_first_message() -> None:
    server = exchange_for({})
    with pytest.raises(SaslInvalidCredentials) as failure:
        server.evaluate(b"n,,n=mallory,r=abc")
    assert failure.value.detail == "Authentication failed: Invalid user credentials"
    assert failure.value.user == "mallory"


def test_authzid_must_name_the_user() -> None:
    users = {"alice": credential_from_password(SHA256, "pw")}
    with pytest.raises(SaslAuthenticationError) as failure:
        exchange_for(users).evaluate(b"n,a=bob,n=alice,r=abc")
    assert failure.value.detail == (
        "Authentication failed: Client requested an authorization id that is different from "
        "username"
    )
    assert exchange_for(users).evaluate(b"n,a=alice,n=alice,r=abc").startswith(b"r=abc")


def test_extensions_and_reserved_mext_are_accepted() -> None:
    users = {"alice": credential_from_password(SHA256, "pw")}
    reply = exchange_for(users, nonce="S").evaluate(b"n,,n=alice,r=abc,tokenauth=false")
    assert reply.startswith(b"r=abcS,s=")


def test_escaped_user_names() -> None:
    assert scram_username("a=2Cb=3Dc") == "a,b=c"
    users = {"a,b=c": credential_from_password(SHA256, "pw")}
    server = exchange_for(users)
    login(server, "a,b=c", "pw", "SCRAM-SHA-256")
    assert server.user == "a,b=c"


@pytest.mark.parametrize(
    "message",
    [
        b"",
        b"y,,n=alice,r=abc",  # only gs2 flag "n" is accepted, as Kafka
        b"p=tls-unique,,n=alice,r=abc",
        b"n,,n=alice",
        b"n,,r=abc,n=alice",
        b"n,,n=alice,r=a,bc",
        b"n,,n=al=ice,r=abc",
        "n,,n=\u00e9,r=abc".encode(),  # Kafka's grammar is ASCII only
        b"\xff\xfe",
    ],
)
def test_malformed_client_first(message: bytes) -> None:
    with pytest.raises(SaslInvalidCredentials):
        exchange_for({"alice": credential_from_password(SHA256, "pw")}).evaluate(message)


def test_final_nonce_must_end_with_the_servers_nonce() -> None:
    users = {"alice": credential_from_password(SHA256, "pw")}
    server = exchange_for(users, nonce="SERVER")
    server.evaluate(b"n,,n=alice,r=client")
    with pytest.raises(SaslInvalidCredentials) as failure:
        server.evaluate(b"c=biws,r=client,p=AAAA")
    assert failure.value.detail == "Invalid client nonce in the final client message."


def test_final_nonce_with_a_prefix_is_accepted_as_kafka_does() -> None:
    """Kafka checks only that the final nonce ends with the nonce it sent; the proof covers the
    final message as the client wrote it."""
    client = scramp.ScramClient(["SCRAM-SHA-256"], "alice", "pw")
    users = {"alice": credential_from_password(SHA256, "pw")}
    server = exchange_for(users)
    server_first = server.evaluate(client.get_client_first().encode())
    client.set_server_first(server_first.decode())
    final = client.get_client_final()
    assert final.startswith("c=biws,r=")
    mangled = final.replace("r=", "r=x", 1)
    with pytest.raises(SaslInvalidCredentials) as failure:
        server.evaluate(mangled.encode())
    assert failure.value.detail == "Invalid client credentials"  # the nonce passed, the proof not


@pytest.mark.parametrize(
    "final",
    [
        b"r=clientS,p=AAAA",
        b"c=biws,r=clientS",
        b"c=biws,r=clientS,p=!!!!",
        b"c=biws,r=clientS,p=AAAA",
    ],
)
def test_malformed_or_wrong_client_final(final: bytes) -> None:
    server = exchange_for({"alice": credential_from_password(SHA256, "pw")}, nonce="S")
    server.evaluate(b"n,,n=alice,r=client")
    with pytest.raises(SaslInvalidCredentials):
        server.evaluate(final)


def test_too_few_stored_iterations_are_refused() -> None:
    weak = credential_from_password(SHA256, "pw", 1000)
    with pytest.raises(SaslInvalidCredentials) as failure:
        exchange_for({"alice": weak}).evaluate(b"n,,n=alice,r=abc")
    assert failure.value.detail == "Iterations 1000 is less than the minimum 4096 for SCRAM-SHA-256"


def test_nothing_after_completion() -> None:
    server = exchange_for({"alice": credential_from_password(SHA256, "pw")})
    login(server, "alice", "pw", "SCRAM-SHA-256")
    with pytest.raises(SaslFailure):
        server.evaluate(b"n,,n=alice,r=abc")


def test_failures_never_carry_the_password() -> None:
    server = exchange_for({"alice": credential_from_password(SHA256, "right-one")})
    with pytest.raises(SaslFailure) as failure:
        login(server, "alice", "wrong-one", "SCRAM-SHA-256")
    assert "right-one" not in str(failure.value)
    assert "wrong-one" not in str(failure.value)
