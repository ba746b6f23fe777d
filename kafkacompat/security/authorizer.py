"""The standard authorizer: ACL bindings decide who may do what, as Kafka's StandardAuthorizer.

A request is allowed for a super user; otherwise the bindings whose pattern covers the resource
decide: a matching DENY wins, else a matching ALLOW allows. When no binding at all covers the
resource (whoever it is for) ``allow.everyone.if.no.acl.found`` decides. ALLOW bindings for
READ, WRITE, DELETE or ALTER also allow DESCRIBE, ALTER_CONFIGS allows DESCRIBE_CONFIGS, and ALL
covers every operation. Bindings live in a durable namespace and are loaded at start.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from kafkacompat.config import Config, ConfigError
from kafkacompat.security.acl_binding import AclBinding, AclBindingFilter, binding_error
from kafkacompat.security.acl_index import AclIndex
from kafkacompat.security.acls import (
    SUPPORTED_OPERATIONS,
    WILDCARD_HOST,
    WILDCARD_PRINCIPAL,
    WILDCARD_RESOURCE,
    AclOperation,
    PatternType,
    PermissionType,
    ResourceType,
)
from kafkacompat.storage.state_store import Namespace

__all__ = ["AUTHORIZER_CLASSES", "Authorizer", "build_authorizer"]

log = logging.getLogger(__name__)

#: The ``authorizer.class.name`` values served by this authorizer.
AUTHORIZER_CLASSES = frozenset(
    {
        "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "kafka.security.authorizer.AclAuthorizer",
    }
)

_IMPLIES_DESCRIBE = frozenset(
    {
        AclOperation.DESCRIBE,
        AclOperation.READ,
        AclOperation.WRITE,
        AclOperation.DELETE,
        AclOperation.ALTER,
    }
)
_IMPLIES_DESCRIBE_CONFIGS = frozenset({AclOperation.DESCRIBE_CONFIGS, AclOperation.ALTER_CONFIGS})


def parse_super_users(value: str) -> frozenset[str]:
    """``super.users``: principals separated by semicolons (``User:alice;User:bob``)."""
    return frozenset(p.strip() for p in value.split(";") if p.strip())


def _operation_applies(binding: AclBinding, operation: AclOperation) -> bool:
    """Whether ``binding``'s operation covers ``operation`` (implications only for ALLOW)."""
    granted = binding.operation
    if granted is AclOperation.ALL or granted == operation:
        return True
    if binding.permission is not PermissionType.ALLOW:
        return False
    if operation is AclOperation.DESCRIBE:
        return granted in _IMPLIES_DESCRIBE
    if operation is AclOperation.DESCRIBE_CONFIGS:
        return granted in _IMPLIES_DESCRIBE_CONFIGS
    return False


class Authorizer:
    """ACL bindings (durable in ``namespace``) and the decisions they make."""

    def __init__(self, config: Config, namespace: Namespace) -> None:
        self.config = config
        self.namespace = namespace
        self.super_users = parse_super_users(config.get_str("super.users"))
        self.allow_if_no_acl = config.get_bool("allow.everyone.if.no.acl.found")
        self.index = AclIndex()
        for key, _value in namespace.items():
            try:
                self.index.add(AclBinding.from_bytes(key))
            except (ValueError, TypeError) as exc:
                log.warning("Skipped an unreadable stored ACL %r: %s", key, exc)

    # -- decisions ----------------------------------------------------------------------------

    def authorize(
        self,
        principal: str,
        host: str,
        operation: AclOperation,
        resource_type: ResourceType,
        name: str,
    ) -> bool:
        """Whether ``principal`` connecting from ``host`` may do ``operation`` on a resource."""
        if principal in self.super_users:
            return True
        found_any = False
        allowed = False
        for binding in self.index.applicable(resource_type, name):
            found_any = True
            if binding.principal != principal and binding.principal != WILDCARD_PRINCIPAL:
                continue
            if binding.host != host and binding.host != WILDCARD_HOST:
                continue
            if not _operation_applies(binding, operation):
                continue
            if binding.permission is PermissionType.DENY:
                return False
            allowed = True
        if allowed:
            return True
        return not found_any and self.allow_if_no_acl

    def authorized_operations(
        self, principal: str, host: str, resource_type: ResourceType, name: str
    ) -> int:
        """The KIP-430 bit field of the operations ``principal`` may do on the resource."""
        bits = 0
        for operation in SUPPORTED_OPERATIONS.get(resource_type, ()):
            if self.authorize(principal, host, operation, resource_type, name):
                bits |= 1 << operation
        return bits

    def authorize_any(
        self, principal: str, host: str, operation: AclOperation, resource_type: ResourceType
    ) -> bool:
        """Whether ``principal`` may do ``operation`` on at least one resource of the type
        (Kafka's authorizeByResourceType: an ALLOW not overridden by a DENY covering it)."""
        if self.authorize(principal, host, operation, resource_type, "hardcode"):
            return True
        deny_literal: set[str] = set()
        deny_prefixed: set[str] = set()
        allow_literal: set[str] = set()
        allow_prefixed: set[str] = set()
        wildcard_allow = False
        for binding in self.index.of_type(resource_type):
            if binding.host != host and binding.host != WILDCARD_HOST:
                continue
            if binding.principal != principal and binding.principal != WILDCARD_PRINCIPAL:
                continue
            if binding.operation is not operation and binding.operation is not AclOperation.ALL:
                continue
            literal = binding.pattern_type is PatternType.LITERAL
            if binding.permission is PermissionType.DENY:
                if literal and binding.resource_name == WILDCARD_RESOURCE:
                    return False
                (deny_literal if literal else deny_prefixed).add(binding.resource_name)
            elif binding.permission is PermissionType.ALLOW:
                if literal and binding.resource_name == WILDCARD_RESOURCE:
                    wildcard_allow = True
                else:
                    (allow_literal if literal else allow_prefixed).add(binding.resource_name)
        if wildcard_allow:
            # Only after every binding: a wildcard DENY anywhere wins.
            return True
        for literal, names in ((True, allow_literal), (False, allow_prefixed)):
            for name in names:
                if literal and name in deny_literal:
                    continue
                if not any(name[:i] in deny_prefixed for i in range(1, len(name) + 1)):
                    return True
        return False

    # -- administration -----------------------------------------------------------------------

    def create_acls(self, bindings: Sequence[AclBinding]) -> list[str | None]:
        """Add the valid ``bindings`` durably (adding one already there succeeds); per binding
        the reason it was refused (INVALID_REQUEST) or None."""
        errors = [binding_error(b) for b in bindings]
        added = []
        for binding, error in zip(bindings, errors, strict=True):
            if error is None and self.index.add(binding):
                added.append(binding)
        if added:
            self.namespace.put_many([(b.to_bytes(), b"") for b in added])
        return errors

    def delete_acls(self, filters: Sequence[AclBindingFilter]) -> list[list[AclBinding]]:
        """Remove every binding each filter matches, durably; per filter the bindings removed.
        A binding matched by several filters is reported for each."""
        existing = list(self.index)
        results = [[b for b in existing if f.matches(b)] for f in filters]
        removed = {b: None for matched in results for b in matched}
        if removed:
            for binding in removed:
                self.index.remove(binding)
            self.namespace.put_many([(b.to_bytes(), None) for b in removed])
        return results

    def acls(self, acl_filter: AclBindingFilter) -> list[AclBinding]:
        """The bindings ``acl_filter`` matches."""
        return [b for b in self.index if acl_filter.matches(b)]


def build_authorizer(config: Config, namespace: Namespace) -> Authorizer | None:
    """The authorizer ``authorizer.class.name`` asks for, or None when it is empty."""
    name = config.get_str("authorizer.class.name").strip()
    if not name:
        return None
    if name not in AUTHORIZER_CLASSES:
        raise ConfigError(
            f"authorizer.class.name: {name!r} is not available (use "
            "org.apache.kafka.metadata.authorizer.StandardAuthorizer)"
        )
    return Authorizer(config, namespace)
