"""CreateAcls, DescribeAcls and DeleteAcls: the standard authorizer's bindings, administered.

Without an authorizer each answers SECURITY_DISABLED; without ALTER (create, delete) or DESCRIBE
(describe) on the cluster, CLUSTER_AUTHORIZATION_FAILED, as Kafka does. A request Kafka cannot
parse (UNKNOWN codes) closes the connection.
"""

from __future__ import annotations

from collections.abc import Iterable

from kafkacompat.broker.context import RequestContext
from kafkacompat.broker.router import handles
from kafkacompat.errors import ErrorCode, ProtocolError
from kafkacompat.protocol.messages.create_acls_request import API_KEY as CREATE_ACLS
from kafkacompat.protocol.messages.create_acls_request import AclCreation, CreateAclsRequest
from kafkacompat.protocol.messages.create_acls_response import (
    AclCreationResult,
    CreateAclsResponse,
)
from kafkacompat.protocol.messages.delete_acls_request import API_KEY as DELETE_ACLS
from kafkacompat.protocol.messages.delete_acls_request import DeleteAclsFilter, DeleteAclsRequest
from kafkacompat.protocol.messages.delete_acls_response import (
    DeleteAclsFilterResult,
    DeleteAclsMatchingAcl,
    DeleteAclsResponse,
)
from kafkacompat.protocol.messages.describe_acls_request import API_KEY as DESCRIBE_ACLS
from kafkacompat.protocol.messages.describe_acls_request import DescribeAclsRequest
from kafkacompat.protocol.messages.describe_acls_response import (
    AclDescription,
    DescribeAclsResource,
    DescribeAclsResponse,
)
from kafkacompat.security.acl_binding import AclBinding, AclBindingFilter, enum_of
from kafkacompat.security.acls import (
    AclOperation,
    PatternType,
    PermissionType,
    ResourceType,
)

_NO_AUTHORIZER = "No Authorizer is configured on the broker"
_CLUSTER_DENIED = "Cluster authorization failed."


def _filter(request: DescribeAclsRequest | DeleteAclsFilter) -> AclBindingFilter:
    """The filter a request carries; ProtocolError (the connection is closed, as Kafka does for
    a request it cannot parse) for UNKNOWN fields. A v0 request has no pattern type: LITERAL."""
    pattern_type = enum_of(PatternType, request.pattern_type_filter)
    acl_filter = AclBindingFilter(
        enum_of(ResourceType, request.resource_type_filter),
        request.resource_name_filter,
        pattern_type,
        request.principal_filter,
        request.host_filter,
        enum_of(AclOperation, request.operation),
        enum_of(PermissionType, request.permission_type),
    )
    reason = acl_filter.unknown_reason()
    if reason is not None:
        raise ProtocolError(f"ACL filter with UNKNOWN elements: {reason}")
    return acl_filter


def _binding(creation: AclCreation) -> AclBinding:
    """The binding a creation asks for; ProtocolError for UNKNOWN fields (Kafka refuses to
    parse such a request)."""
    binding = AclBinding(
        enum_of(ResourceType, creation.resource_type),
        creation.resource_name,
        enum_of(PatternType, creation.resource_pattern_type),
        creation.principal,
        creation.host,
        enum_of(AclOperation, creation.operation),
        enum_of(PermissionType, creation.permission_type),
    )
    unknown = (
        binding.resource_type is ResourceType.UNKNOWN
        or binding.pattern_type is PatternType.UNKNOWN
        or binding.operation is AclOperation.UNKNOWN
        or binding.permission is PermissionType.UNKNOWN
    )
    if unknown:
        raise ProtocolError("CreateAcls with UNKNOWN elements")
    return binding


@handles(CREATE_ACLS)
async def create_acls(context: RequestContext, request: CreateAclsRequest) -> CreateAclsResponse:
    def every(code: ErrorCode, message: str) -> CreateAclsResponse:
        return CreateAclsResponse(
            results=[AclCreationResult(code, message) for _ in request.creations]
        )

    bindings = [_binding(c) for c in request.creations]
    if not context.authorize_cluster(AclOperation.ALTER):
        return every(ErrorCode.CLUSTER_AUTHORIZATION_FAILED, _CLUSTER_DENIED)
    authorizer = context.services.security.authorizer
    if authorizer is None:
        return every(ErrorCode.SECURITY_DISABLED, "No Authorizer is configured.")
    errors = authorizer.create_acls(bindings)
    return CreateAclsResponse(
        results=[
            AclCreationResult(ErrorCode.NONE, None)
            if error is None
            else AclCreationResult(ErrorCode.INVALID_REQUEST, error)
            for error in errors
        ]
    )


def _resources(bindings: Iterable[AclBinding]) -> list[DescribeAclsResource]:
    """Bindings grouped by their resource pattern, as DescribeAcls answers them."""
    grouped: dict[tuple[int, str, int], list[AclDescription]] = {}
    for b in sorted(bindings, key=lambda b: b.to_bytes()):
        key = (b.resource_type, b.resource_name, b.pattern_type)
        grouped.setdefault(key, []).append(
            AclDescription(b.principal, b.host, b.operation, b.permission)
        )
    return [
        DescribeAclsResource(resource_type=t, resource_name=n, pattern_type=p, acls=acls)
        for (t, n, p), acls in grouped.items()
    ]


@handles(DESCRIBE_ACLS)
async def describe_acls(
    context: RequestContext, request: DescribeAclsRequest
) -> DescribeAclsResponse:
    acl_filter = _filter(request)
    if not context.authorize_cluster(AclOperation.DESCRIBE):
        return DescribeAclsResponse(
            error_code=ErrorCode.CLUSTER_AUTHORIZATION_FAILED, error_message=_CLUSTER_DENIED
        )
    authorizer = context.services.security.authorizer
    if authorizer is None:
        return DescribeAclsResponse(
            error_code=ErrorCode.SECURITY_DISABLED, error_message=_NO_AUTHORIZER
        )
    return DescribeAclsResponse(
        error_message=None, resources=_resources(authorizer.acls(acl_filter))
    )


def _matching(binding: AclBinding) -> DeleteAclsMatchingAcl:
    return DeleteAclsMatchingAcl(
        error_code=ErrorCode.NONE,
        error_message=None,
        resource_type=binding.resource_type,
        resource_name=binding.resource_name,
        pattern_type=binding.pattern_type,
        principal=binding.principal,
        host=binding.host,
        operation=binding.operation,
        permission_type=binding.permission,
    )


@handles(DELETE_ACLS)
async def delete_acls(context: RequestContext, request: DeleteAclsRequest) -> DeleteAclsResponse:
    def every(code: ErrorCode, message: str) -> DeleteAclsResponse:
        return DeleteAclsResponse(
            filter_results=[DeleteAclsFilterResult(code, message) for _ in request.filters]
        )

    filters = [_filter(f) for f in request.filters]
    if not context.authorize_cluster(AclOperation.ALTER):
        return every(ErrorCode.CLUSTER_AUTHORIZATION_FAILED, _CLUSTER_DENIED)
    authorizer = context.services.security.authorizer
    if authorizer is None:
        return every(ErrorCode.SECURITY_DISABLED, "No Authorizer is configured.")
    return DeleteAclsResponse(
        filter_results=[
            DeleteAclsFilterResult(ErrorCode.NONE, None, [_matching(b) for b in deleted])
            for deleted in authorizer.delete_acls(filters)
        ]
    )
