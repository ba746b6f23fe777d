"""The broker's side of one SASL/SCRAM exchange (RFC 5802, without channel binding), with
Kafka's message grammar: ASCII user names, ``a=`` allowed only when it names the user, client
extensions ignored, and a final nonce accepted when it ends with the nonce the server sent."""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from collections.abc import Callable
from hmac import compare_digest

from kafkacompat.security.sasl_errors import SaslAuthenticationError, SaslInvalidCredentials
from kafkacompat.security.scram_credentials import ScramCredential, ScramMechanism

__all__ = ["ScramServerExchange", "scram_username"]

_SASLNAME = r"(?:[\x01-\x2b\x2d-\x3c\x3e-\x7f]|=2C|=3D)+"
_VALUE = r"[\x01-\x2b\x2d-\x7f]+"
_PRINTABLE = r"[\x21-\x2b\x2d-\x7e]+"
_BASE64 = r"(?:[a-zA-Z0-9+/]{4})*(?:[a-zA-Z0-9+/]{2}==|[a-zA-Z0-9+/]{3}=)?"
_EXTENSIONS = rf"(?:,[A-Za-z]+={_VALUE})*"
_CLIENT_FIRST = re.compile(
    rf"n,(?:a=(?P<authzid>{_SASLNAME}))?,"
    rf"(?P<bare>(?:m={_VALUE},)?n=(?P<saslname>{_SASLNAME}),r=(?P<nonce>{_PRINTABLE}){_EXTENSIONS})"
)
_CLIENT_FINAL = re.compile(
    rf"(?P<without_proof>c=(?P<channel>{_BASE64}),r=(?P<nonce>{_PRINTABLE}){_EXTENSIONS}),"
    rf"p=(?P<proof>{_BASE64})"
)

#: Looks up a user's credential for the exchange's mechanism; None: no such user.
CredentialLookup = Callable[[str], ScramCredential | None]


def scram_username(saslname: str) -> str:
    """A user name as it appears in a SCRAM message (``=2C`` and ``=3D`` escapes) unescaped."""
    return saslname.replace("=2C", ",").replace("=3D", "=")


def _text(token: bytes, what: str) -> str:
    try:
        return token.decode()
    except UnicodeDecodeError:
        raise SaslInvalidCredentials(f"Invalid SCRAM {what} message encoding") from None


class ScramServerExchange:
    """Two rounds: client-first -> server-first, client-final -> server-final."""

    def __init__(
        self, mechanism: ScramMechanism, lookup: CredentialLookup, server_nonce: str | None = None
    ) -> None:
        self.mechanism = mechanism
        self.lookup = lookup
        #: Appended to the client's nonce (random unless given: tests replay RFC examples).
        self.server_nonce = server_nonce
        self.user: str | None = None
        self.complete = False
        self._credential: ScramCredential | None = None
        self._client_first_bare = ""
        self._server_first = ""
        self._nonce = ""

    def evaluate(self, token: bytes) -> bytes:
        """The server's answer to the client's next message; raises SaslFailure."""
        if self.complete:
            raise SaslAuthenticationError("Unexpected SCRAM message after completion")
        if self._credential is None:
            return self._client_first(token)
        return self._client_final(token)

    def _client_first(self, token: bytes) -> bytes:
        message = _CLIENT_FIRST.fullmatch(_text(token, "client first"))
        if message is None:
            raise SaslInvalidCredentials("Invalid SCRAM client first message format")
        user = scram_username(message["saslname"])
        self.user = user
        credential = self.lookup(user)
        if credential is None:
            raise SaslInvalidCredentials("Authentication failed: Invalid user credentials", user)
        authzid = message["authzid"]
        if authzid and scram_username(authzid) != user:
            raise SaslAuthenticationError(
                "Authentication failed: Client requested an authorization id that is different "
                "from username",
                user,
            )
        if credential.iterations < self.mechanism.min_iterations:
            raise SaslInvalidCredentials(
                f"Iterations {credential.iterations} is less than the minimum "
                f"{self.mechanism.min_iterations} for {self.mechanism.name}",
                user,
            )
        self._credential = credential
        self._nonce = message["nonce"] + (self.server_nonce or secrets.token_hex(16))
        self._client_first_bare = message["bare"]
        salt = base64.b64encode(credential.salt).decode()
        self._server_first = f"r={self._nonce},s={salt},i={credential.iterations}"
        return self._server_first.encode()

    def _client_final(self, token: bytes) -> bytes:
        credential = self._credential
        assert credential is not None
        self._credential = None  # one try only: a second client-final is refused below
        message = _CLIENT_FINAL.fullmatch(_text(token, "client final"))
        if message is None:
            raise SaslInvalidCredentials("Invalid SCRAM client final message format", self.user)
        if not message["nonce"].endswith(self._nonce):
            raise SaslInvalidCredentials(
                "Invalid client nonce in the final client message.", self.user
            )
        auth_message = ",".join(
            (self._client_first_bare, self._server_first, message["without_proof"])
        ).encode()
        mechanism = self.mechanism
        try:
            proof = base64.b64decode(message["proof"], validate=True)
        except binascii.Error:
            raise SaslInvalidCredentials("Invalid client final message", self.user) from None
        signature = mechanism.hmac(credential.stored_key, auth_message)
        if len(proof) != len(signature):
            raise SaslInvalidCredentials("Invalid client credentials", self.user)
        client_key = bytes(a ^ b for a, b in zip(proof, signature, strict=True))
        if not compare_digest(mechanism.hash(client_key), credential.stored_key):
            raise SaslInvalidCredentials("Invalid client credentials", self.user)
        self.complete = True
        server_signature = mechanism.hmac(credential.server_key, auth_message)
        return b"v=" + base64.b64encode(server_signature)
