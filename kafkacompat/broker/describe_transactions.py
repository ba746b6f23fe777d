"""Transaction introspection: DescribeTransactions, ListTransactions and DescribeProducers."""

from __future__ import annotations

from kafkacompat.broker.context import RequestContext
from kafkacompat.broker.router import handles
from kafkacompat.coordinators.transaction_state import TxnState
from kafkacompat.errors import ErrorCode, KafkaError
from kafkacompat.protocol.messages.describe_producers_request import API_KEY as DESCRIBE_PRODUCERS
from kafkacompat.protocol.messages.describe_producers_request import DescribeProducersRequest
from kafkacompat.protocol.messages.describe_producers_response import (
    DescribeProducersResponse,
    PartitionResponse,
    ProducerState,
    TopicResponse,
)
from kafkacompat.protocol.messages.describe_transactions_request import (
    API_KEY as DESCRIBE_TRANSACTIONS,
)
from kafkacompat.protocol.messages.describe_transactions_request import (
    DescribeTransactionsRequest,
)
from kafkacompat.protocol.messages.describe_transactions_response import (
    DescribeTransactionsResponse,
    TopicData,
    TransactionState,
)
from kafkacompat.protocol.messages.list_transactions_request import API_KEY as LIST_TRANSACTIONS
from kafkacompat.protocol.messages.list_transactions_request import ListTransactionsRequest
from kafkacompat.protocol.messages.list_transactions_response import (
    ListTransactionsResponse,
)
from kafkacompat.protocol.messages.list_transactions_response import (
    TransactionState as ListedTransaction,
)
from kafkacompat.security.acls import AclOperation, ResourceType

KNOWN_STATES = {state.value for state in TxnState}


@handles(DESCRIBE_TRANSACTIONS)
async def handle_describe_transactions(
    context: RequestContext, request: DescribeTransactionsRequest
) -> DescribeTransactionsResponse:
    coordinator = context.services.transactions.coordinator
    states = []
    for txn_id in request.transactional_ids:
        if not context.authorize(AclOperation.DESCRIBE, ResourceType.TRANSACTIONAL_ID, txn_id):
            code = ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED
            states.append(TransactionState(error_code=code, transactional_id=txn_id))
            continue
        not_here = context.services.transactions.coordinator_error(txn_id) if txn_id else None
        if not_here:
            states.append(TransactionState(error_code=not_here, transactional_id=txn_id))
            continue
        txn = coordinator.describe(txn_id) if txn_id else None
        if txn is None:
            code = ErrorCode.TRANSACTIONAL_ID_NOT_FOUND if txn_id else ErrorCode.INVALID_REQUEST
            states.append(TransactionState(error_code=code, transactional_id=txn_id))
            continue
        topics: dict[str, list[int]] = {}
        for topic, partition in sorted(txn.partitions):
            # Only the partitions of topics the principal may describe are shown.
            if context.authorize(AclOperation.DESCRIBE, ResourceType.TOPIC, topic):
                topics.setdefault(topic, []).append(partition)
        states.append(
            TransactionState(
                error_code=ErrorCode.NONE,
                transactional_id=txn_id,
                transaction_state=txn.state.value,
                transaction_timeout_ms=txn.timeout_ms,
                transaction_start_time_ms=txn.start_ms,
                producer_id=txn.producer_id,
                producer_epoch=txn.producer_epoch,
                topics=[TopicData(name, parts) for name, parts in topics.items()],
            )
        )
    return DescribeTransactionsResponse(transaction_states=states)


@handles(LIST_TRANSACTIONS)
async def handle_list_transactions(
    context: RequestContext, request: ListTransactionsRequest
) -> ListTransactionsResponse:
    wanted = set(request.state_filters)
    unknown = sorted(wanted - KNOWN_STATES)
    duration = request.duration_filter if context.api_version >= 1 else -1
    found = context.services.transactions.coordinator.list(
        wanted & KNOWN_STATES if wanted else set(), set(request.producer_id_filters), duration
    )
    if wanted and not wanted & KNOWN_STATES:
        found = []
    if context.services.security.authorizer is not None:
        found = [
            t
            for t in found
            if context.authorize(
                AclOperation.DESCRIBE, ResourceType.TRANSACTIONAL_ID, t.transactional_id
            )
        ]
    return ListTransactionsResponse(
        error_code=ErrorCode.NONE,
        unknown_state_filters=unknown,
        transaction_states=[
            ListedTransaction(t.transactional_id, t.producer_id, t.state.value)
            for t in sorted(found, key=lambda t: t.transactional_id)
        ],
    )


def _producers(context: RequestContext, topic: str, partition: int) -> PartitionResponse:
    if not context.authorize(AclOperation.READ, ResourceType.TOPIC, topic):
        return PartitionResponse(
            partition, ErrorCode.TOPIC_AUTHORIZATION_FAILED, "Topic authorization failed."
        )
    hosted = context.services.partitions.partition_or_none(topic, partition)
    if hosted is None:
        return PartitionResponse(partition, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
    try:
        state = hosted.producer_state_now()
    except KafkaError as exc:
        return PartitionResponse(partition, exc.code, exc.message)
    active = [
        ProducerState(
            producer_id=entry.producer_id,
            producer_epoch=entry.epoch,
            last_sequence=entry.last_seq,
            last_timestamp=entry.last_timestamp,
            coordinator_epoch=0,
            current_txn_start_offset=state.ongoing.get(entry.producer_id, -1),
        )
        for entry in sorted(state.entries.values(), key=lambda e: e.producer_id)
    ]
    return PartitionResponse(partition, ErrorCode.NONE, None, active)


@handles(DESCRIBE_PRODUCERS)
async def handle_describe_producers(
    context: RequestContext, request: DescribeProducersRequest
) -> DescribeProducersResponse:
    return DescribeProducersResponse(
        topics=[
            TopicResponse(t.name, [_producers(context, t.name, p) for p in t.partition_indexes])
            for t in request.topics
        ]
    )
