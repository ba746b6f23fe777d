"""SCRAM credentials (RFC 5802 as Kafka uses it), stored durably: salt, iterations, stored key
and server key per user and mechanism, never a password."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from base64 import b64decode, b64encode
from collections.abc import Iterator
from dataclasses import dataclass, field

from kafkacompat.storage.state_store import Namespace

__all__ = [
    "MAX_ITERATIONS",
    "SCRAM_MECHANISMS",
    "SCRAM_NAMESPACE",
    "ScramCredential",
    "ScramCredentialStore",
    "ScramMechanism",
    "credential_from_password",
    "credential_from_salted_password",
    "scram_mechanism",
]

#: The broker's state namespace holding the credentials.
SCRAM_NAMESPACE = "scram-credentials"
#: Kafka refuses credentials with more iterations than this.
MAX_ITERATIONS = 16384


@dataclass(frozen=True, slots=True)
class ScramMechanism:
    """One SCRAM mechanism: its SASL name, the type code the admin APIs use, its hash."""

    name: str
    type: int
    hash_name: str
    min_iterations: int = 4096

    def hmac(self, key: bytes, message: bytes) -> bytes:
        return hmac.new(key, message, self.hash_name).digest()

    def hash(self, data: bytes) -> bytes:
        return hashlib.new(self.hash_name, data).digest()

    def salted_password(self, password: str, salt: bytes, iterations: int) -> bytes:
        """Hi(password, salt, i) of RFC 5802 over the password's UTF-8 bytes (Kafka does not
        SASLprep passwords)."""
        return hashlib.pbkdf2_hmac(self.hash_name, password.encode(), salt, iterations)


SCRAM_MECHANISMS: dict[str, ScramMechanism] = {
    m.name: m
    for m in (
        ScramMechanism("SCRAM-SHA-256", 1, "sha256"),
        ScramMechanism("SCRAM-SHA-512", 2, "sha512"),
    )
}
_BY_TYPE = {m.type: m for m in SCRAM_MECHANISMS.values()}


def scram_mechanism(name_or_type: str | int) -> ScramMechanism | None:
    """The mechanism with this SASL name or admin-API type code; None: unknown."""
    if isinstance(name_or_type, int):
        return _BY_TYPE.get(name_or_type)
    return SCRAM_MECHANISMS.get(name_or_type)


@dataclass(frozen=True, slots=True)
class ScramCredential:
    """What the broker keeps to verify a SCRAM login."""

    salt: bytes
    stored_key: bytes = field(repr=False)
    server_key: bytes = field(repr=False)
    iterations: int

    def to_bytes(self) -> bytes:
        return json.dumps(
            {
                "salt": b64encode(self.salt).decode(),
                "stored_key": b64encode(self.stored_key).decode(),
                "server_key": b64encode(self.server_key).decode(),
                "iterations": self.iterations,
            },
            sort_keys=True,
        ).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> ScramCredential:
        raw = json.loads(data)
        return cls(
            b64decode(raw["salt"]),
            b64decode(raw["stored_key"]),
            b64decode(raw["server_key"]),
            int(raw["iterations"]),
        )


def credential_from_salted_password(
    mechanism: ScramMechanism, salt: bytes, salted_password: bytes, iterations: int
) -> ScramCredential:
    """The credential for a salted password (what AlterUserScramCredentials carries)."""
    client_key = mechanism.hmac(salted_password, b"Client Key")
    return ScramCredential(
        salt,
        mechanism.hash(client_key),
        mechanism.hmac(salted_password, b"Server Key"),
        iterations,
    )


def credential_from_password(
    mechanism: ScramMechanism,
    password: str,
    iterations: int | None = None,
    salt: bytes | None = None,
) -> ScramCredential:
    """A new credential for ``password`` (a random salt unless one is given)."""
    iterations = mechanism.min_iterations if iterations is None else iterations
    salt = os.urandom(32) if salt is None else salt
    salted = mechanism.salted_password(password, salt, iterations)
    return credential_from_salted_password(mechanism, salt, salted, iterations)


def _key(user: str, mechanism: ScramMechanism) -> bytes:
    return f"{mechanism.name}:{user}".encode()


class ScramCredentialStore:
    """Every SCRAM credential of the broker, by user and mechanism, kept in ``namespace``."""

    def __init__(self, namespace: Namespace) -> None:
        self.namespace = namespace

    def get(self, user: str, mechanism: ScramMechanism) -> ScramCredential | None:
        data = self.namespace.get(_key(user, mechanism))
        return None if data is None else ScramCredential.from_bytes(data)

    def put(self, user: str, mechanism: ScramMechanism, credential: ScramCredential) -> None:
        self.namespace.put(_key(user, mechanism), credential.to_bytes())

    def apply(
        self,
        upserts: list[tuple[str, ScramMechanism, ScramCredential]],
        deletions: list[tuple[str, ScramMechanism]],
    ) -> None:
        """Several changes at once: all of them survive a crash or none does."""
        entries: list[tuple[bytes, bytes | None]] = [(_key(u, m), None) for u, m in deletions]
        entries += [(_key(u, m), c.to_bytes()) for u, m, c in upserts]
        if entries:
            self.namespace.put_many(entries)

    def contains(self, user: str, mechanism: ScramMechanism) -> bool:
        return _key(user, mechanism) in self.namespace

    def entries(self) -> Iterator[tuple[str, ScramMechanism, ScramCredential]]:
        """Every (user, mechanism, credential)."""
        for key, value in self.namespace.items():
            name, _, user = key.decode().partition(":")
            mechanism = SCRAM_MECHANISMS.get(name)
            if mechanism is not None:
                yield user, mechanism, ScramCredential.from_bytes(value)

    def users(self) -> dict[str, list[tuple[ScramMechanism, int]]]:
        """Each user's mechanisms with their iterations."""
        found: dict[str, list[tuple[ScramMechanism, int]]] = {}
        for user, mechanism, credential in self.entries():
            found.setdefault(user, []).append((mechanism, credential.iterations))
        for infos in found.values():
            infos.sort(key=lambda info: info[0].type)
        return found
