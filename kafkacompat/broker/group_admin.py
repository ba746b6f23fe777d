"""DescribeGroups, ListGroups (state and type filters) and DeleteGroups."""

from __future__ import annotations

from kafkacompat.broker.context import RequestContext
from kafkacompat.broker.groups import coordinator
from kafkacompat.broker.router import handles
from kafkacompat.errors import ErrorCode
from kafkacompat.protocol.messages.delete_groups_request import API_KEY as DELETE_GROUPS
from kafkacompat.protocol.messages.delete_groups_request import DeleteGroupsRequest
from kafkacompat.protocol.messages.delete_groups_response import (
    DeletableGroupResult,
    DeleteGroupsResponse,
)
from kafkacompat.protocol.messages.describe_groups_request import API_KEY as DESCRIBE_GROUPS
from kafkacompat.protocol.messages.describe_groups_request import DescribeGroupsRequest
from kafkacompat.protocol.messages.describe_groups_response import (
    DescribedGroup,
    DescribedGroupMember,
    DescribeGroupsResponse,
)
from kafkacompat.protocol.messages.list_groups_request import API_KEY as LIST_GROUPS
from kafkacompat.protocol.messages.list_groups_request import ListGroupsRequest
from kafkacompat.protocol.messages.list_groups_response import ListedGroup, ListGroupsResponse
from kafkacompat.security.acls import ALL_OPERATIONS_BITS, AclOperation, ResourceType

AUTHORIZED_OPERATIONS_OMITTED = -2147483648
# With no authorizer every group operation is allowed.
GROUP_OPERATIONS = ALL_OPERATIONS_BITS[ResourceType.GROUP]
GROUP = ResourceType.GROUP


@handles(DESCRIBE_GROUPS)
async def describe_groups(
    context: RequestContext, request: DescribeGroupsRequest
) -> DescribeGroupsResponse:
    groups = coordinator(context)
    operations = (
        GROUP_OPERATIONS if request.include_authorized_operations else AUTHORIZED_OPERATIONS_OMITTED
    )
    described = []
    secured = context.services.security.authorizer is not None
    for group_id in request.groups:
        if secured and not context.authorize(AclOperation.DESCRIBE, GROUP, group_id):
            described.append(
                DescribedGroup(
                    error_code=ErrorCode.GROUP_AUTHORIZATION_FAILED,
                    group_id=group_id,
                    authorized_operations=AUTHORIZED_OPERATIONS_OMITTED,
                )
            )
            continue
        not_here = context.services.groups.coordinator_error(group_id)
        if not_here:
            described.append(
                DescribedGroup(
                    error_code=not_here,
                    group_id=group_id,
                    authorized_operations=AUTHORIZED_OPERATIONS_OMITTED,
                )
            )
            continue
        if secured and request.include_authorized_operations:
            operations = context.authorized_operations(GROUP, group_id)
        d = groups.describe_group(group_id)
        described.append(
            DescribedGroup(
                error_code=ErrorCode.NONE,
                group_id=group_id,
                group_state=d.state,
                protocol_type=d.protocol_type,
                protocol_data=d.protocol_name,
                members=[
                    DescribedGroupMember(
                        m.member_id,
                        m.group_instance_id,
                        m.client_id,
                        m.client_host,
                        m.metadata,
                        m.assignment,
                    )
                    for m in d.members
                ],
                authorized_operations=operations,
            )
        )
    return DescribeGroupsResponse(groups=described)


@handles(LIST_GROUPS)
async def list_groups(context: RequestContext, request: ListGroupsRequest) -> ListGroupsResponse:
    states = {s.lower() for s in request.states_filter}
    types = {t.lower() for t in request.types_filter}
    listed = []
    # With DESCRIBE on the cluster every group is listed, else those the principal may describe.
    filtered = context.services.security.authorizer is not None and not (
        context.authorize_cluster(AclOperation.DESCRIBE)
    )
    for group_id, protocol_type, state, group_type in sorted(
        coordinator(context).list_groups_typed()
    ):
        if filtered and not context.authorize(AclOperation.DESCRIBE, GROUP, group_id):
            continue
        if states and state.lower() not in states:
            continue
        if types and group_type not in types:
            continue
        listed.append(ListedGroup(group_id, protocol_type, state, group_type))
    return ListGroupsResponse(error_code=ErrorCode.NONE, groups=listed)


@handles(DELETE_GROUPS)
async def delete_groups(
    context: RequestContext, request: DeleteGroupsRequest
) -> DeleteGroupsResponse:
    names = list(request.groups_names)
    denied = [n for n in names if not context.authorize(AclOperation.DELETE, GROUP, n)]
    services = context.services
    elsewhere = {
        n: services.groups.coordinator_error(n)
        for n in names
        if n not in denied and services.groups.coordinator_error(n)
    }
    results = coordinator(context).delete_groups(
        [n for n in names if n not in denied and n not in elsewhere]
    )
    await services.groups.settled()
    results.update(dict.fromkeys(denied, ErrorCode.GROUP_AUTHORIZATION_FAILED))
    results.update(elsewhere)
    return DeleteGroupsResponse(
        results=[DeletableGroupResult(name, results[name]) for name in request.groups_names]
    )
