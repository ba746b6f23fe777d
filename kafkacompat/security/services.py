"""The security services of one broker: SASL, credentials, the authorizer, quotas."""

from __future__ import annotations

from dataclasses import dataclass

from kafkacompat.config import Config
from kafkacompat.security.authorizer import Authorizer, build_authorizer
from kafkacompat.security.quotas import QuotaManager
from kafkacompat.security.sasl_server import SaslAuthenticator
from kafkacompat.security.scram_credentials import SCRAM_NAMESPACE, ScramCredentialStore
from kafkacompat.storage.state_store import StateStore

__all__ = ["SecurityServices", "build_security"]


@dataclass(frozen=True, slots=True)
class SecurityServices:
    sasl: SaslAuthenticator
    scram_credentials: ScramCredentialStore
    #: None when no authorizer is configured: every request is allowed.
    authorizer: Authorizer | None
    quotas: QuotaManager


def build_security(config: Config, state: StateStore) -> SecurityServices:
    """Open the durable security state (credentials, ACLs, quotas) in ``state``."""
    credentials = ScramCredentialStore(state.namespace(SCRAM_NAMESPACE))
    return SecurityServices(
        sasl=SaslAuthenticator(config, credentials),
        scram_credentials=credentials,
        authorizer=build_authorizer(config, state.namespace("acls")),
        quotas=QuotaManager(config, state.namespace("client-quotas")),
    )
