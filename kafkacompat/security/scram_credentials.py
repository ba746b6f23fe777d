"""SCRAM credentials, stored durably (STUB: to be written)."""

from __future__ import annotations

from kafkacompat.storage.state_store import Namespace

__all__ = ["ScramCredentialStore"]


class ScramCredentialStore:
    def __init__(self, namespace: Namespace) -> None:
        self.namespace = namespace
