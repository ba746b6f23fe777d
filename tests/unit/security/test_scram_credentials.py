"""SCRAM credentials: derivation, durable storage (never a password), and the admin APIs'
describe/alter logic with Kafka's errors."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from kafkacompat.broker.scram_admin import (
    alter_user_scram_credentials,
    describe_user_scram_credentials,
)
from kafkacompat.errors import ErrorCode
from kafkacompat.protocol.messages.alter_user_scram_credentials_request import (
    AlterUserScramCredentialsRequest,
    ScramCredentialDeletion,
    ScramCredentialUpsertion,
)
from kafkacompat.security.scram_credentials import (
    SCRAM_MECHANISMS,
    ScramCredential,
    ScramCredentialStore,
    credential_from_password,
    credential_from_salted_password,
    scram_mechanism,
)
from kafkacompat.storage.state_store import StateStore

SHA256 = SCRAM_MECHANISMS["SCRAM-SHA-256"]
SHA512 = SCRAM_MECHANISMS["SCRAM-SHA-512"]


@pytest.fixture
def store(tmp_path: Path) -> ScramCredentialStore:
    return ScramCredentialStore(StateStore(tmp_path / "state").namespace("scram-credentials"))


def test_mechanisms_by_name_and_type() -> None:
    assert scram_mechanism("SCRAM-SHA-256") is SHA256
    assert scram_mechanism(1) is SHA256
    assert scram_mechanism(2) is SHA512
    assert scram_mechanism(0) is None
    assert scram_mechanism("SCRAM-SHA-1") is None


def test_salted_password_route_equals_password_route() -> None:
    salt = os.urandom(16)
    salted = hashlib.pbkdf2_hmac("sha512", b"secret", salt, 4096)
    assert credential_from_salted_password(SHA512, salt, salted, 4096) == (
        credential_from_password(SHA512, "secret", 4096, salt)
    )


def test_credential_round_trips_through_bytes() -> None:
    credential = credential_from_password(SHA256, "secret", 5000)
    assert ScramCredential.from_bytes(credential.to_bytes()) == credential
    assert credential.iterations == 5000
    assert len(credential.salt) == 32
    assert "stored_key" not in repr(credential)
    assert "server_key" not in repr(credential)


def test_store_survives_reopen_and_holds_no_password(tmp_path: Path) -> None:
    state = StateStore(tmp_path / "state")
    store = ScramCredentialStore(state.namespace("scram-credentials"))
    credential = credential_from_password(SHA512, "very-secret-password")
    store.put("alice", SHA512, credential)
    state.close()
    reopened = StateStore(tmp_path / "state")
    again = ScramCredentialStore(reopened.namespace("scram-credentials"))
    assert again.get("alice", SHA512) == credential
    assert again.get("alice", SHA256) is None
    assert again.users() == {"alice": [(SHA512, 4096)]}
    reopened.close()
    for path in (tmp_path / "state").iterdir():
        assert b"very-secret-password" not in path.read_bytes()


def test_user_names_with_colons(store: ScramCredentialStore) -> None:
    credential = credential_from_password(SHA256, "pw")
    store.put("a:b", SHA256, credential)
    assert [(u, m.name) for u, m, _c in store.entries()] == [("a:b", "SCRAM-SHA-256")]


def upsert(name: str, mechanism: int = 1, iterations: int = 4096) -> ScramCredentialUpsertion:
    salt = b"salt-of-" + name.encode()
    salted = hashlib.pbkdf2_hmac("sha256", b"pw-" + name.encode(), salt, 4096)
    return ScramCredentialUpsertion(name, mechanism, iterations, salt, salted)


def results(
    store: ScramCredentialStore, request: AlterUserScramCredentialsRequest
) -> dict[str, tuple[int, str | None]]:
    return {
        r.user: (r.error_code, r.error_message)
        for r in alter_user_scram_credentials(store, request)
    }


def test_upsert_then_describe(store: ScramCredentialStore) -> None:
    got = results(
        store,
        AlterUserScramCredentialsRequest(upsertions=[upsert("alice"), upsert("bob", 2, 8192)]),
    )
    assert got == {"alice": (0, None), "bob": (0, None)}
    expected = credential_from_password(SHA256, "pw-alice", 4096, b"salt-of-alice")
    assert store.get("alice", SHA256) == expected
    described = describe_user_scram_credentials(store, None)
    assert [
        (r.user, r.error_code, [(i.mechanism, i.iterations) for i in r.credential_infos])
        for r in described
    ] == [("alice", 0, [(1, 4096)]), ("bob", 0, [(2, 8192)])]


def test_describe_unknown_and_duplicate_users(store: ScramCredentialStore) -> None:
    store.put("alice", SHA256, credential_from_password(SHA256, "pw"))
    store.put("alice", SHA512, credential_from_password(SHA512, "pw"))
    described = describe_user_scram_credentials(store, ["alice", "nobody", "bob", "bob"])
    assert [(r.user, r.error_code, r.error_message) for r in described] == [
        ("alice", 0, None),
        (
            "nobody",
            ErrorCode.RESOURCE_NOT_FOUND,
            "Attempt to describe a user credential that does not exist: nobody",
        ),
        (
            "bob",
            ErrorCode.DUPLICATE_RESOURCE,
            "Cannot describe SCRAM credentials for the same user twice in a single request: bob",
        ),
    ]
    assert [(i.mechanism, i.iterations) for i in described[0].credential_infos] == [
        (1, 4096),
        (2, 4096),
    ]


def test_alter_refusals(store: ScramCredentialStore) -> None:
    carol = credential_from_password(SHA256, "pw")
    store.put("carol", SHA256, carol)
    request = AlterUserScramCredentialsRequest(
        deletions=[
            ScramCredentialDeletion("carol", 1),
            ScramCredentialDeletion("nobody", 1),
            ScramCredentialDeletion("dave", 7),
        ],
        upsertions=[
            upsert("carol"),
            upsert("few", iterations=4095),
            upsert("many", iterations=16385),
            upsert("max", iterations=16384),
            upsert(""),
            upsert("odd", mechanism=0),
            upsert("twice"),
            upsert("twice", 2),
        ],
    )
    twice = (
        ErrorCode.DUPLICATE_RESOURCE,
        "A user credential cannot be altered twice in the same request",
    )
    assert results(store, request) == {
        "carol": twice,
        "nobody": (
            ErrorCode.RESOURCE_NOT_FOUND,
            "Attempt to delete a user credential that does not exist",
        ),
        "dave": (ErrorCode.UNSUPPORTED_SASL_MECHANISM, "Unknown SCRAM mechanism"),
        "few": (ErrorCode.UNACCEPTABLE_CREDENTIAL, "Too few iterations"),
        "many": (ErrorCode.UNACCEPTABLE_CREDENTIAL, "Too many iterations"),
        "max": (0, None),
        "": (ErrorCode.UNACCEPTABLE_CREDENTIAL, "Username must not be empty"),
        "odd": (ErrorCode.UNSUPPORTED_SASL_MECHANISM, "Unknown SCRAM mechanism"),
        "twice": twice,
    }
    # carol was named twice: neither her deletion nor her upsertion happened
    assert store.get("carol", SHA256) == carol
    assert store.users().keys() == {"carol", "max"}


def test_delete(store: ScramCredentialStore) -> None:
    store.put("alice", SHA256, credential_from_password(SHA256, "pw"))
    store.put("alice", SHA512, credential_from_password(SHA512, "pw"))
    request = AlterUserScramCredentialsRequest(deletions=[ScramCredentialDeletion("alice", 1)])
    assert results(store, request) == {"alice": (0, None)}
    assert store.users() == {"alice": [(SHA512, 4096)]}
