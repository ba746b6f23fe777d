"""SCRAM users before start: kafka-storage's --add-scram syntax and the data directory."""

from __future__ import annotations

import base64
import fcntl
import hashlib
import os
from pathlib import Path

import pytest

from kafkacompat.config import ConfigError
from kafkacompat.security.scram_credentials import (
    SCRAM_MECHANISMS,
    SCRAM_NAMESPACE,
    ScramCredentialStore,
    credential_from_password,
)
from kafkacompat.security.scram_users import ScramUser, add_scram_users, parse_add_scram
from kafkacompat.storage.log_manager import STATE_DIR
from kafkacompat.storage.state_store import StateStore
from kafkacompat.testing import create_scram_users

SHA256 = SCRAM_MECHANISMS["SCRAM-SHA-256"]
SHA512 = SCRAM_MECHANISMS["SCRAM-SHA-512"]


def test_name_and_password() -> None:
    user = parse_add_scram("SCRAM-SHA-256=[name=alice,password=alice-secret]")
    assert user == ScramUser(SHA256, "alice", "alice-secret")
    assert user.iterations == 4096
    assert "alice-secret" not in repr(user)


def test_quoted_values_iterations_and_salt() -> None:
    salt = base64.b64encode(b"0123456789").decode()
    user = parse_add_scram(
        f' SCRAM-SHA-512=[name="bob",password="pw",iterations=8192,salt="{salt}"] '
    )
    assert user == ScramUser(SHA512, "bob", "pw", None, b"0123456789", 8192)
    assert user.credential() == credential_from_password(SHA512, "pw", 8192, b"0123456789")


def test_salted_password() -> None:
    salted = hashlib.pbkdf2_hmac("sha256", b"pw", b"salt", 4096)
    text = (
        "SCRAM-SHA-256=[name=carol,salt="
        f"{base64.b64encode(b'salt').decode()},saltedpassword={base64.b64encode(salted).decode()}]"
    )
    assert parse_add_scram(text).credential() == credential_from_password(
        SHA256, "pw", 4096, b"salt"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("SCRAM-SHA-256", "Failed to find equals sign in SCRAM argument"),
        (
            "SCRAM-SHA-1=[name=a,password=b]",
            "The add-scram mechanism SCRAM-SHA-1 is not supported.",
        ),
        ("SCRAM-SHA-256=name=a,password=b]", "Expected configuration string to start with ["),
        ("SCRAM-SHA-256=[name=a,password=b", "Expected configuration string to end with ]"),
        ("SCRAM-SHA-256=[password=b]", "You must supply 'name' to add-scram"),
        (
            "SCRAM-SHA-256=[name=a]",
            "You must supply one of 'password' or 'saltedpassword' to add-scram",
        ),
        (
            "SCRAM-SHA-256=[name=a,saltedpassword=AAAA]",
            "You must supply 'salt' with 'saltedpassword' to add-scram",
        ),
        ("SCRAM-SHA-256=[name=a,password=b,iterations=x]", "Failed to parse iterations count: x"),
        (
            "SCRAM-SHA-256=[name=a,password=b,iterations=4095]",
            "The 'iterations' value must be >= 4096 for add-scram using SCRAM-SHA-256",
        ),
        (
            "SCRAM-SHA-512=[name=a,password=b,iterations=16385]",
            "The 'iterations' value must be <= 16384 for add-scram using SCRAM-SHA-512",
        ),
        ("SCRAM-SHA-256=[name=a,password=b,colour=red]", "Unknown SCRAM configurations: colour"),
        ("SCRAM-SHA-256=[name=a,password=b,salt=%%%]", "Failed to decode given salt"),
        ("SCRAM-SHA-256=[name=a,secret-password]", "No equals sign found in a SCRAM component"),
    ],
)
def test_refused(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_add_scram(text)
    assert str(error.value) == message


def read_back(data_dir: Path) -> ScramCredentialStore:
    return ScramCredentialStore(StateStore(data_dir / STATE_DIR).namespace(SCRAM_NAMESPACE))


def test_add_scram_users_replaces_earlier_credentials(tmp_path: Path) -> None:
    add_scram_users(tmp_path, [parse_add_scram("SCRAM-SHA-256=[name=alice,password=one]")])
    add_scram_users(
        tmp_path,
        [parse_add_scram("SCRAM-SHA-256=[name=alice,password=two,salt=c2FsdA==,iterations=5000]")],
    )
    assert read_back(tmp_path).get("alice", SHA256) == credential_from_password(
        SHA256, "two", 5000, b"salt"
    )


def test_a_running_brokers_data_dir_is_refused(tmp_path: Path) -> None:
    lock = os.open(tmp_path / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        with pytest.raises(ConfigError, match="in use"):
            add_scram_users(tmp_path, [parse_add_scram("SCRAM-SHA-256=[name=a,password=b]")])
    finally:
        os.close(lock)


def test_create_scram_users_for_every_mechanism(tmp_path: Path) -> None:
    create_scram_users(
        tmp_path, {"alice": "a-pw", "bob": "b-pw"}, ["SCRAM-SHA-256", "SCRAM-SHA-512"]
    )
    users = read_back(tmp_path).users()
    assert users == {
        "alice": [(SHA256, 4096), (SHA512, 4096)],
        "bob": [(SHA256, 4096), (SHA512, 4096)],
    }
    with pytest.raises(ValueError, match="PLAIN is not a SCRAM mechanism"):
        create_scram_users(tmp_path, {"alice": "pw"}, ["PLAIN"])
