"""InitProducerId: producer ids and epochs for idempotent and transactional producers.

A transactional id goes to the transaction coordinator (epoch bumps, fencing, KIP-360).
"""

from __future__ import annotations

from kafkacompat.broker.context import RequestContext
from kafkacompat.broker.router import handles
from kafkacompat.broker.transactions import init_transactional_producer
from kafkacompat.errors import ErrorCode, KafkaError
from kafkacompat.protocol.messages.init_producer_id_request import API_KEY as INIT_PRODUCER_ID
from kafkacompat.protocol.messages.init_producer_id_request import InitProducerIdRequest
from kafkacompat.protocol.messages.init_producer_id_response import InitProducerIdResponse
from kafkacompat.security.acls import AclOperation, ResourceType

NO_PRODUCER_ID = -1
NO_PRODUCER_EPOCH = -1


def _error(code: ErrorCode) -> InitProducerIdResponse:
    return InitProducerIdResponse(
        error_code=code, producer_id=NO_PRODUCER_ID, producer_epoch=NO_PRODUCER_EPOCH
    )


@handles(INIT_PRODUCER_ID)
async def handle_init_producer_id(
    context: RequestContext, request: InitProducerIdRequest
) -> InitProducerIdResponse:
    producer_id, epoch = request.producer_id, request.producer_epoch
    if context.services.security.authorizer is not None:
        if request.transactional_id is not None:
            if not context.authorize(
                AclOperation.WRITE, ResourceType.TRANSACTIONAL_ID, request.transactional_id
            ):
                return _error(ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
        elif not (
            context.authorize_cluster(AclOperation.IDEMPOTENT_WRITE)
            or context.authorize_any(AclOperation.WRITE, ResourceType.TOPIC)
        ):
            # An idempotent producer needs IDEMPOTENT_WRITE on the cluster or WRITE on a topic.
            return _error(ErrorCode.CLUSTER_AUTHORIZATION_FAILED)
    # v3+ may name the producer's current id and epoch (KIP-360): both or neither.
    if (producer_id == NO_PRODUCER_ID) != (epoch == NO_PRODUCER_EPOCH):
        return _error(ErrorCode.INVALID_REQUEST)
    if request.transactional_id is not None:
        if not request.transactional_id:
            return _error(ErrorCode.INVALID_REQUEST)
        expected = None if producer_id == NO_PRODUCER_ID else (producer_id, epoch)
        code, pid, granted_epoch = await init_transactional_producer(
            context, request.transactional_id, request.transaction_timeout_ms, expected
        )
        if code != ErrorCode.NONE:
            return _error(code)
        return InitProducerIdResponse(
            error_code=ErrorCode.NONE, producer_id=pid, producer_epoch=granted_epoch
        )
    # Without a transactional id Kafka always grants a fresh id at epoch 0, even to a producer
    # naming its current id and epoch.
    try:
        await context.services.producer_ids.ready()
        granted = context.services.producer_ids.allocate()
    except KafkaError as exc:
        return _error(exc.code)
    return InitProducerIdResponse(
        error_code=ErrorCode.NONE, producer_id=granted.producer_id, producer_epoch=granted.epoch
    )
