"""ACL bindings (a resource pattern with an access-control entry) and the filters that select
them, with Kafka's validation and matching rules."""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import IntEnum
from typing import TypeVar

from kafkacompat.security.acls import (
    CLUSTER_NAME,
    WILDCARD_RESOURCE,
    AclOperation,
    PatternType,
    PermissionType,
    ResourceType,
)

__all__ = ["AclBinding", "AclBindingFilter", "binding_error", "enum_of"]

_E = TypeVar("_E", bound=IntEnum)


def enum_of(kind: type[_E], code: int) -> _E:
    """The member of ``kind`` with ``code``; UNKNOWN (0) for codes it does not know."""
    try:
        return kind(code)
    except ValueError:
        return kind(0)


@dataclass(frozen=True, slots=True)
class AclBinding:
    """One ACL: who (principal, host) may or may not (permission) do what (operation) on which
    resources (type, name and whether the name is LITERAL or a PREFIX)."""

    resource_type: ResourceType
    resource_name: str
    pattern_type: PatternType
    principal: str
    host: str
    operation: AclOperation
    permission: PermissionType

    def to_bytes(self) -> bytes:
        """A stable encoding (the key under which the binding is stored)."""
        return json.dumps(
            [
                int(self.resource_type),
                self.resource_name,
                int(self.pattern_type),
                self.principal,
                self.host,
                int(self.operation),
                int(self.permission),
            ],
            separators=(",", ":"),
        ).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> AclBinding:
        rt, name, pt, principal, host, op, perm = json.loads(data)
        return cls(
            ResourceType(rt),
            name,
            PatternType(pt),
            principal,
            host,
            AclOperation(op),
            PermissionType(perm),
        )


def binding_error(binding: AclBinding) -> str | None:
    """Why Kafka refuses to create ``binding`` (INVALID_REQUEST), or None when it is valid.
    The broker's checks (cluster name, empty name) come before the controller's (codes)."""
    if binding.resource_type is ResourceType.CLUSTER and binding.resource_name != CLUSTER_NAME:
        return f"The only valid name for the CLUSTER resource is {CLUSTER_NAME}"
    if not binding.resource_name:
        return "Invalid empty resource name"
    if binding.resource_type in (ResourceType.UNKNOWN, ResourceType.ANY):
        return f"Invalid resourceType {binding.resource_type.name}"
    if binding.pattern_type not in (PatternType.LITERAL, PatternType.PREFIXED):
        return f"Invalid patternType {binding.pattern_type.name}"
    if binding.operation in (AclOperation.UNKNOWN, AclOperation.ANY):
        return f"Invalid operation {binding.operation.name}"
    if binding.permission not in (PermissionType.ALLOW, PermissionType.DENY):
        return f"Invalid permissionType {binding.permission.name}"
    # Kafka's StandardAuthorizer stores such a principal and then fails every check of the
    # resource; refusing it up front keeps the resource usable.
    kind, colon, name = binding.principal.partition(":")
    if not colon or not kind or not name:
        return f"Could not parse principal from `{binding.principal}`"
    return None


@dataclass(frozen=True, slots=True)
class AclBindingFilter:
    """Selects bindings (DescribeAcls, DeleteAcls): None names and ANY codes match everything;
    pattern type MATCH selects every pattern that would apply to the named resource."""

    resource_type: ResourceType
    resource_name: str | None
    pattern_type: PatternType
    principal: str | None
    host: str | None
    operation: AclOperation
    permission: PermissionType

    def unknown_reason(self) -> str | None:
        """Why Kafka refuses the filter (an UNKNOWN field: INVALID_REQUEST), or None."""
        if self.resource_type is ResourceType.UNKNOWN or self.pattern_type is PatternType.UNKNOWN:
            return "Unknown patternFilter."
        if self.operation is AclOperation.UNKNOWN or self.permission is PermissionType.UNKNOWN:
            return "Unknown entryFilter."
        return None

    def matches(self, binding: AclBinding) -> bool:
        return self.matches_pattern(binding) and self.matches_entry(binding)

    def matches_pattern(self, binding: AclBinding) -> bool:
        if (
            self.resource_type is not ResourceType.ANY
            and self.resource_type != binding.resource_type
        ):
            return False
        wanted = self.pattern_type
        if wanted not in (PatternType.ANY, PatternType.MATCH) and wanted != binding.pattern_type:
            return False
        name = self.resource_name
        if name is None:
            return True
        if wanted in (PatternType.ANY, binding.pattern_type):
            return name == binding.resource_name
        if binding.pattern_type is PatternType.LITERAL:
            return name == binding.resource_name or binding.resource_name == WILDCARD_RESOURCE
        return name.startswith(binding.resource_name)

    def matches_entry(self, binding: AclBinding) -> bool:
        return (
            (self.principal is None or self.principal == binding.principal)
            and (self.host is None or self.host == binding.host)
            and (self.operation is AclOperation.ANY or self.operation == binding.operation)
            and (self.permission is PermissionType.ANY or self.permission == binding.permission)
        )
