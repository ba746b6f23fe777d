"""ConsumerGroupHeartbeat (KIP-848): the consumer protocol's one membership API. The coordinator
decides; this handler checks access, shows it the topics and translates the answer."""

from __future__ import annotations

from kafkacompat.broker.context import RequestContext
from kafkacompat.broker.groups import client_host, coordinator, may_read_group, visible_topics
from kafkacompat.broker.router import handles
from kafkacompat.coordinators.consumer_group_heartbeat import Heartbeat
from kafkacompat.errors import ErrorCode
from kafkacompat.protocol.messages.consumer_group_heartbeat_request import (
    API_KEY as CONSUMER_GROUP_HEARTBEAT,
)
from kafkacompat.protocol.messages.consumer_group_heartbeat_request import (
    ConsumerGroupHeartbeatRequest,
)
from kafkacompat.protocol.messages.consumer_group_heartbeat_response import (
    Assignment,
    ConsumerGroupHeartbeatResponse,
    TopicPartitions,
)
from kafkacompat.security.acls import AclOperation, ResourceType


def _denied_topics(context: RequestContext, names: list[str] | None) -> list[str]:
    if context.services.security.authorizer is None or not names:
        return []
    return [n for n in names if not context.authorize(AclOperation.DESCRIBE, ResourceType.TOPIC, n)]


# v1 is marked unstable in the schema, yet it is what Kafka 4.0 serves (client-made member ids
# and regex subscriptions).
@handles(CONSUMER_GROUP_HEARTBEAT, max_version=1)
async def consumer_group_heartbeat(
    context: RequestContext, request: ConsumerGroupHeartbeatRequest
) -> ConsumerGroupHeartbeatResponse:
    if not may_read_group(context, request.group_id):
        return ConsumerGroupHeartbeatResponse(
            error_code=ErrorCode.GROUP_AUTHORIZATION_FAILED,
            error_message="Group authorization failed.",
        )
    not_here = context.services.groups.coordinator_error(request.group_id)
    if not_here:
        return ConsumerGroupHeartbeatResponse(error_code=not_here, error_message=None)
    denied = _denied_topics(context, request.subscribed_topic_names)
    if denied:
        return ConsumerGroupHeartbeatResponse(
            error_code=ErrorCode.TOPIC_AUTHORIZATION_FAILED,
            error_message=f"Topic authorization failed for {', '.join(sorted(denied))}.",
        )
    owned = request.topic_partitions
    heartbeat = Heartbeat(
        group_id=request.group_id,
        member_id=request.member_id,
        member_epoch=request.member_epoch,
        instance_id=request.instance_id,
        rack_id=request.rack_id,
        rebalance_timeout_ms=request.rebalance_timeout_ms,
        subscribed_topic_names=(
            None
            if request.subscribed_topic_names is None
            else tuple(request.subscribed_topic_names)
        ),
        subscribed_topic_regex=request.subscribed_topic_regex,
        server_assignor=request.server_assignor,
        owned=None if owned is None else [(t.topic_id, list(t.partitions)) for t in owned],
        client_id=context.client_id or "",
        client_host=client_host(context),
        version=context.api_version,
    )
    result = coordinator(context).consumer_group_heartbeat(heartbeat, visible_topics(context))
    await context.services.groups.settled()
    assignment = None
    if result.assignment is not None:
        assignment = Assignment(
            [TopicPartitions(tid, sorted(parts)) for tid, parts in result.assignment.items()]
        )
    return ConsumerGroupHeartbeatResponse(
        error_code=result.error,
        error_message=result.message,
        member_id=result.member_id,
        member_epoch=result.member_epoch,
        heartbeat_interval_ms=result.heartbeat_interval_ms,
        assignment=assignment,
    )
