"""ConsumerGroupDescribe (KIP-848): consumer groups with their epochs, members and both the
current and the target assignment of each member."""

from __future__ import annotations

from kafkacompat.broker.context import RequestContext
from kafkacompat.broker.groups import coordinator
from kafkacompat.broker.router import handles
from kafkacompat.coordinators.assignors import Assignment
from kafkacompat.coordinators.consumer_group_describe import subscribed_names
from kafkacompat.coordinators.consumer_group_state import ConsumerGroup
from kafkacompat.errors import ErrorCode
from kafkacompat.protocol.messages.consumer_group_describe_request import (
    API_KEY as CONSUMER_GROUP_DESCRIBE,
)
from kafkacompat.protocol.messages.consumer_group_describe_request import (
    ConsumerGroupDescribeRequest,
)
from kafkacompat.protocol.messages.consumer_group_describe_response import (
    Assignment as WireAssignment,
)
from kafkacompat.protocol.messages.consumer_group_describe_response import (
    ConsumerGroupDescribeResponse,
    DescribedGroup,
    Member,
    TopicPartitions,
)
from kafkacompat.security.acls import AclOperation, ResourceType

AUTHORIZED_OPERATIONS_OMITTED = -2147483648


def _assignment(group: ConsumerGroup, assignment: Assignment) -> WireAssignment:
    names = group.topic_names()
    return WireAssignment(
        [
            TopicPartitions(tid, names[tid], sorted(parts))
            for tid, parts in sorted(assignment.items(), key=lambda item: names.get(item[0], ""))
            if tid in names
        ]
    )


def describe(group: ConsumerGroup, operations: int) -> DescribedGroup:
    return DescribedGroup(
        error_code=ErrorCode.NONE,
        group_id=group.group_id,
        group_state=group.state.value,
        group_epoch=group.group_epoch,
        assignment_epoch=group.assignment_epoch,
        assignor_name=group.assignor_name,
        members=[
            Member(
                member_id=m.member_id,
                instance_id=m.instance_id,
                rack_id=m.rack_id,
                member_epoch=m.member_epoch,
                client_id=m.client_id,
                client_host=m.client_host,
                subscribed_topic_names=subscribed_names(group, m),
                subscribed_topic_regex=m.subscribed_topic_regex,
                assignment=_assignment(group, m.assigned),
                target_assignment=_assignment(group, group.target.get(m.member_id, {})),
            )
            for m in group.members.values()
        ],
        authorized_operations=operations,
    )


@handles(CONSUMER_GROUP_DESCRIBE)
async def consumer_group_describe(
    context: RequestContext, request: ConsumerGroupDescribeRequest
) -> ConsumerGroupDescribeResponse:
    groups = coordinator(context)
    described = []
    for group_id in request.group_ids:
        if not context.authorize(AclOperation.DESCRIBE, ResourceType.GROUP, group_id):
            described.append(
                DescribedGroup(
                    error_code=ErrorCode.GROUP_AUTHORIZATION_FAILED,
                    error_message="Group authorization failed.",
                    group_id=group_id,
                )
            )
            continue
        not_here = context.services.groups.coordinator_error(group_id)
        if not_here:
            described.append(DescribedGroup(error_code=not_here, group_id=group_id))
            continue
        group = groups.consumer_group(group_id)
        if group is None:
            message = (
                f"Group {group_id} is not a consumer group."
                if groups.describe_group(group_id).state != "Dead"
                else f"Group {group_id} not found."
            )
            described.append(
                DescribedGroup(
                    error_code=ErrorCode.GROUP_ID_NOT_FOUND,
                    error_message=message,
                    group_id=group_id,
                )
            )
            continue
        operations = AUTHORIZED_OPERATIONS_OMITTED
        if request.include_authorized_operations:
            operations = context.authorized_operations(ResourceType.GROUP, group_id)
        described.append(describe(group, operations))
    return ConsumerGroupDescribeResponse(groups=described)
