"""The standard authorizer: ACL bindings decide who may do what (STUB: to be written)."""

from __future__ import annotations

from kafkacompat.config import Config
from kafkacompat.security.acls import AclOperation, ResourceType
from kafkacompat.storage.state_store import Namespace

__all__ = ["Authorizer", "build_authorizer"]


class Authorizer:
    def __init__(self, config: Config, namespace: Namespace) -> None:
        self.config = config
        self.namespace = namespace

    def authorize(
        self,
        principal: str,
        host: str,
        operation: AclOperation,
        resource_type: ResourceType,
        name: str,
    ) -> bool:
        return True


def build_authorizer(config: Config, namespace: Namespace) -> Authorizer | None:
    """The authorizer ``authorizer.class.name`` asks for, or None when it is empty."""
    if not config.get_str("authorizer.class.name"):
        return None
    return Authorizer(config, namespace)
