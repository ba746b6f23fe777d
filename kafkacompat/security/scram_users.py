"""SCRAM users written into a data directory before the broker starts, given as kafka-storage's
``--add-scram`` takes them: ``SCRAM-SHA-256=[name=alice,password=alice-secret]`` with optional
``iterations=`` and ``salt=`` (base64), or ``saltedpassword=`` (base64, with ``salt=``)."""

from __future__ import annotations

import binascii
import fcntl
import os
from base64 import b64decode
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from kafkacompat.config import ConfigError
from kafkacompat.security.scram_credentials import (
    MAX_ITERATIONS,
    SCRAM_MECHANISMS,
    SCRAM_NAMESPACE,
    ScramCredential,
    ScramCredentialStore,
    ScramMechanism,
    credential_from_password,
    credential_from_salted_password,
)
from kafkacompat.storage.log_manager import STATE_DIR
from kafkacompat.storage.state_store import StateStore

__all__ = ["ScramUser", "add_scram_users", "parse_add_scram"]

_DEFAULT_ITERATIONS = 4096


@dataclass(frozen=True, slots=True)
class ScramUser:
    """One ``--add-scram`` argument: a user's credential for one mechanism."""

    mechanism: ScramMechanism
    name: str
    password: str | None = field(default=None, repr=False)
    salted_password: bytes | None = field(default=None, repr=False)
    salt: bytes | None = None
    iterations: int = _DEFAULT_ITERATIONS

    def credential(self) -> ScramCredential:
        if self.salted_password is not None:
            assert self.salt is not None
            return credential_from_salted_password(
                self.mechanism, self.salt, self.salted_password, self.iterations
            )
        assert self.password is not None
        return credential_from_password(self.mechanism, self.password, self.iterations, self.salt)


def _b64(value: str, what: str) -> bytes:
    try:
        return b64decode(value, validate=True)
    except binascii.Error:
        raise ConfigError(f"Failed to decode given {what}") from None


def _component(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep:
        raise ConfigError("No equals sign found in a SCRAM component")
    if len(value) >= 2 and value.startswith('"') and value.endswith('"'):
        value = value[1:-1]
    return key, value


def parse_add_scram(text: str) -> ScramUser:
    """One ``--add-scram`` value, checked as kafka-storage checks it (ConfigError)."""
    text = text.strip()
    mechanism_name, sep, rest = text.partition("=")
    if not sep:
        raise ConfigError("Failed to find equals sign in SCRAM argument")
    mechanism = SCRAM_MECHANISMS.get(mechanism_name)
    if mechanism is None:
        raise ConfigError(f"The add-scram mechanism {mechanism_name} is not supported.")
    if not rest.startswith("["):
        raise ConfigError("Expected configuration string to start with [")
    if not rest.endswith("]"):
        raise ConfigError("Expected configuration string to end with ]")
    components = dict(_component(part) for part in rest[1:-1].split(","))
    name = components.pop("name", None)
    if name is None:
        raise ConfigError("You must supply 'name' to add-scram")
    salt_text = components.pop("salt", None)
    salt = None if salt_text is None else _b64(salt_text, "salt")
    iterations_text = components.pop("iterations", None)
    try:
        iterations = _DEFAULT_ITERATIONS if iterations_text is None else int(iterations_text)
    except ValueError:
        raise ConfigError(f"Failed to parse iterations count: {iterations_text}") from None
    password = components.pop("password", None)
    salted_text = components.pop("saltedpassword", None)
    salted_password = None
    if password is None:
        if salted_text is None:
            raise ConfigError("You must supply one of 'password' or 'saltedpassword' to add-scram")
        if salt is None:
            raise ConfigError("You must supply 'salt' with 'saltedpassword' to add-scram")
        salted_password = _b64(salted_text, "saltedPassword")
    if components:
        raise ConfigError(f"Unknown SCRAM configurations: {', '.join(sorted(components))}")
    if iterations < mechanism.min_iterations:
        raise ConfigError(
            f"The 'iterations' value must be >= {mechanism.min_iterations} for add-scram using "
            f"{mechanism.name}"
        )
    if iterations > MAX_ITERATIONS:
        raise ConfigError(
            f"The 'iterations' value must be <= {MAX_ITERATIONS} for add-scram using "
            f"{mechanism.name}"
        )
    return ScramUser(mechanism, name, password, salted_password, salt, iterations)


def add_scram_users(data_dir: Path, users: Iterable[ScramUser]) -> None:
    """Write the users' credentials (replacing earlier ones) into the data directory of a broker
    that is not running."""
    data_dir.mkdir(parents=True, exist_ok=True)
    lock = os.open(data_dir / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise ConfigError(f"{data_dir} is in use by a running broker") from None
        state = StateStore(data_dir / STATE_DIR)
        try:
            store = ScramCredentialStore(state.namespace(SCRAM_NAMESPACE))
            store.apply([(u.name, u.mechanism, u.credential()) for u in users], [])
        finally:
            state.close()
    finally:
        os.close(lock)
