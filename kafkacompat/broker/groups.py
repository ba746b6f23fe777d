"""FindCoordinator and the classic group membership APIs: JoinGroup, SyncGroup, Heartbeat,
LeaveGroup. The coordinator decides; these handlers translate versions and await its answers."""

from __future__ import annotations

from types import MappingProxyType

from kafkacompat.broker.context import RequestContext
from kafkacompat.broker.router import handles
from kafkacompat.cluster.metadata_image import MetadataImage
from kafkacompat.coordinators.consumer_group_heartbeat import TopicsView
from kafkacompat.coordinators.group_coordinator import GroupCoordinator, JoinRequest
from kafkacompat.coordinators.group_service import wait_for
from kafkacompat.coordinators.internal_records import partition_for
from kafkacompat.errors import ErrorCode
from kafkacompat.protocol.messages.find_coordinator_request import API_KEY as FIND_COORDINATOR
from kafkacompat.protocol.messages.find_coordinator_request import FindCoordinatorRequest
from kafkacompat.protocol.messages.find_coordinator_response import (
    Coordinator,
    FindCoordinatorResponse,
)
from kafkacompat.protocol.messages.heartbeat_request import API_KEY as HEARTBEAT
from kafkacompat.protocol.messages.heartbeat_request import HeartbeatRequest
from kafkacompat.protocol.messages.heartbeat_response import HeartbeatResponse
from kafkacompat.protocol.messages.join_group_request import API_KEY as JOIN_GROUP
from kafkacompat.protocol.messages.join_group_request import JoinGroupRequest
from kafkacompat.protocol.messages.join_group_response import (
    JoinGroupResponse,
    JoinGroupResponseMember,
)
from kafkacompat.protocol.messages.leave_group_request import API_KEY as LEAVE_GROUP
from kafkacompat.protocol.messages.leave_group_request import LeaveGroupRequest
from kafkacompat.protocol.messages.leave_group_response import LeaveGroupResponse, MemberResponse
from kafkacompat.protocol.messages.sync_group_request import API_KEY as SYNC_GROUP
from kafkacompat.protocol.messages.sync_group_request import SyncGroupRequest
from kafkacompat.protocol.messages.sync_group_response import SyncGroupResponse
from kafkacompat.security.acls import AclOperation, ResourceType

#: FindCoordinator key types: consumer groups and transactional ids.
COORDINATOR_KEY_TYPES = (0, 1)


#: The topics view of the last metadata image seen (without an authorizer): one per image, so
#: the coordinator can tell by identity that no topic changed.
_VIEW: tuple[MetadataImage, TopicsView] | None = None


def visible_topics(context: RequestContext) -> TopicsView:
    """The topics a member may be assigned: not internal, and (with an authorizer) those the
    principal may describe."""
    global _VIEW
    image = context.image
    secured = context.services.security.authorizer is not None
    cached = _VIEW
    if not secured and cached is not None and cached[0] is image:
        return cached[1]
    view: TopicsView = MappingProxyType(
        {
            t.name: (t.topic_id, t.partitions)
            for t in image.list_topics()
            if not t.internal
            and (
                not secured or context.authorize(AclOperation.DESCRIBE, ResourceType.TOPIC, t.name)
            )
        }
    )
    if not secured:
        _VIEW = (image, view)
    return view


def coordinator(context: RequestContext) -> GroupCoordinator:
    return context.services.groups.coordinator


def client_host(context: RequestContext) -> str:
    """The client's address as Kafka reports it (``/ip``)."""
    return "/" + context.client_address.rsplit(":", 1)[0]


def _coordinator_denied(
    context: RequestContext, key_type: int, key: str
) -> tuple[ErrorCode, str] | None:
    """Finding a group's coordinator needs DESCRIBE on the group, a transactional id's DESCRIBE
    on the transactional id."""
    if key_type == 0:
        if not context.authorize(AclOperation.DESCRIBE, ResourceType.GROUP, key):
            return ErrorCode.GROUP_AUTHORIZATION_FAILED, "Group authorization failed."
    elif not context.authorize(AclOperation.DESCRIBE, ResourceType.TRANSACTIONAL_ID, key):
        return (
            ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
            "Transactional Id authorization failed.",
        )
    return None


def may_read_group(context: RequestContext, group_id: str) -> bool:
    """Whether the principal may READ the group (join, sync, heartbeat, leave, commit)."""
    return context.authorize(AclOperation.READ, ResourceType.GROUP, group_id)


def group_refusal(context: RequestContext, group_id: str) -> ErrorCode:
    """Why a membership or offsets request for ``group_id`` cannot be served here, in Kafka's
    order: GROUP_AUTHORIZATION_FAILED, then NOT_COORDINATOR or COORDINATOR_LOAD_IN_PROGRESS
    (its partition of ``__consumer_offsets`` is led elsewhere or being read); else NONE."""
    if not may_read_group(context, group_id):
        return ErrorCode.GROUP_AUTHORIZATION_FAILED
    return context.services.groups.coordinator_error(group_id)


async def _find(context: RequestContext, key_type: int, key: str) -> Coordinator:
    """The leader of the internal-topic partition that holds ``key`` (the topic is created on
    first use); COORDINATOR_NOT_AVAILABLE while that partition has no reachable leader."""
    denied = _coordinator_denied(context, key_type, key)
    if denied is not None:
        return Coordinator(key, -1, "", -1, denied[0], denied[1])
    services = context.services
    topic = (services.groups if key_type == 0 else services.transactions).topic
    if context.image.topic(topic.name) is None:
        await topic.create()
    image = context.image
    found = image.topic(topic.name)
    leader = None
    if found is not None and found.partitions:
        placed = found.partition(partition_for(key, found.partitions))
        leader = None if placed is None else image.broker(placed.leader)
    endpoint = None if leader is None else leader.endpoint(context.session.listener_name)
    if leader is None or endpoint is None:
        return Coordinator(
            key,
            -1,
            "",
            -1,
            ErrorCode.COORDINATOR_NOT_AVAILABLE,
            "The coordinator is not available.",
        )
    return Coordinator(key, leader.node_id, endpoint.host, endpoint.port, ErrorCode.NONE, None)


@handles(FIND_COORDINATOR)
async def find_coordinator(
    context: RequestContext, request: FindCoordinatorRequest
) -> FindCoordinatorResponse:
    """Where each group or transactional id is coordinated: the leader of its partition of
    ``__consumer_offsets`` or ``__transaction_state`` (`_find`)."""
    if request.key_type not in COORDINATOR_KEY_TYPES:
        error, message = ErrorCode.INVALID_REQUEST, "unknown coordinator key type"
        if context.api_version < 4:
            return FindCoordinatorResponse(
                error_code=error, error_message=message, node_id=-1, host="", port=-1
            )
        return FindCoordinatorResponse(
            coordinators=[
                Coordinator(key, -1, "", -1, error, message) for key in request.coordinator_keys
            ]
        )
    if context.api_version >= 4:
        return FindCoordinatorResponse(
            coordinators=[
                await _find(context, request.key_type, key) for key in request.coordinator_keys
            ]
        )
    found = await _find(context, request.key_type, request.key)
    return FindCoordinatorResponse(
        error_code=found.error_code,
        error_message=found.error_message,
        node_id=found.node_id,
        host=found.host,
        port=found.port,
    )


@handles(JOIN_GROUP)
async def join_group(context: RequestContext, request: JoinGroupRequest) -> JoinGroupResponse:
    version = context.api_version
    refused = group_refusal(context, request.group_id)
    if refused:
        return JoinGroupResponse(
            error_code=refused,
            generation_id=-1,
            protocol_type=None,
            protocol_name=None if version >= 7 else "",
            leader="",
            member_id="",
        )
    rebalance_timeout = request.rebalance_timeout_ms
    if version == 0 or rebalance_timeout < 0:
        rebalance_timeout = request.session_timeout_ms
    join = JoinRequest(
        group_id=request.group_id,
        member_id=request.member_id,
        group_instance_id=request.group_instance_id,
        protocol_type=request.protocol_type,
        protocols=[(p.name, bytes(p.metadata)) for p in request.protocols],
        session_timeout_ms=request.session_timeout_ms,
        rebalance_timeout_ms=rebalance_timeout,
        client_id=context.client_id or "",
        client_host=client_host(context),
        require_known_member_id=version >= 4,
    )
    groups = coordinator(context)
    # A classic member joining a consumer group is assigned from the topics it may see.
    topics = None if groups.consumer_group(join.group_id) is None else visible_topics(context)
    result = await wait_for(groups.join_group(join, topics))
    await context.services.groups.settled()
    ok = result.error == ErrorCode.NONE
    # Before v7 the protocol name is not nullable.
    protocol_name = result.protocol_name if ok else None
    if version < 7 and protocol_name is None:
        protocol_name = ""
    return JoinGroupResponse(
        error_code=result.error,
        generation_id=result.generation_id if ok else -1,
        protocol_type=result.protocol_type if ok else None,
        protocol_name=protocol_name,
        leader=result.leader,
        skip_assignment=result.skip_assignment,
        member_id=result.member_id,
        members=[
            JoinGroupResponseMember(m.member_id, m.group_instance_id, m.metadata)
            for m in result.members
        ],
    )


@handles(SYNC_GROUP)
async def sync_group(context: RequestContext, request: SyncGroupRequest) -> SyncGroupResponse:
    refused = group_refusal(context, request.group_id)
    if refused:
        return SyncGroupResponse(
            error_code=refused,
            protocol_type=None,
            protocol_name=None,
            assignment=b"",
        )
    completion = coordinator(context).sync_group(
        request.group_id,
        request.generation_id,
        request.member_id,
        request.group_instance_id,
        request.protocol_type,
        request.protocol_name,
        {a.member_id: bytes(a.assignment) for a in request.assignments},
    )
    result = await wait_for(completion)
    await context.services.groups.settled()
    return SyncGroupResponse(
        error_code=result.error,
        protocol_type=result.protocol_type,
        protocol_name=result.protocol_name,
        assignment=result.assignment,
    )


@handles(HEARTBEAT)
async def heartbeat(context: RequestContext, request: HeartbeatRequest) -> HeartbeatResponse:
    refused = group_refusal(context, request.group_id)
    if refused:
        return HeartbeatResponse(error_code=refused)
    error = coordinator(context).heartbeat(
        request.group_id, request.member_id, request.group_instance_id, request.generation_id
    )
    return HeartbeatResponse(error_code=error)


@handles(LEAVE_GROUP)
async def leave_group(context: RequestContext, request: LeaveGroupRequest) -> LeaveGroupResponse:
    refused = group_refusal(context, request.group_id)
    if refused:
        return LeaveGroupResponse(error_code=refused)
    members: list[tuple[str, str | None]]
    if context.api_version < 3:
        members = [(request.member_id, None)]
    else:
        members = [(m.member_id, m.group_instance_id) for m in request.members]
    error, errors = coordinator(context).leave_group(request.group_id, members)
    await context.services.groups.settled()
    if context.api_version < 3:
        return LeaveGroupResponse(error_code=errors[0] if error == ErrorCode.NONE else error)
    return LeaveGroupResponse(
        error_code=error,
        members=[
            MemberResponse(member_id, instance_id, member_error)
            for (member_id, instance_id), member_error in zip(members, errors, strict=False)
        ],
    )
