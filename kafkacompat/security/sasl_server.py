"""The broker's side of SASL: enabled mechanisms per listener, one exchange per attempt
(STUB: to be written)."""

from __future__ import annotations

from kafkacompat.config import Config
from kafkacompat.security.scram_credentials import ScramCredentialStore

__all__ = ["SaslAuthenticator"]


class SaslAuthenticator:
    def __init__(self, config: Config, credentials: ScramCredentialStore) -> None:
        self.config = config
        self.credentials = credentials
