"""Transaction APIs: AddPartitionsToTxn, AddOffsetsToTxn, EndTxn and TxnOffsetCommit.

InitProducerId with a transactional id also lands here (`init_transactional_producer`).
Requests older than KIP-588 get INVALID_PRODUCER_EPOCH where newer ones get PRODUCER_FENCED.
"""

from __future__ import annotations

from kafkacompat.broker.context import RequestContext
from kafkacompat.broker.router import handles
from kafkacompat.coordinators.group_offsets import OffsetAndMetadata, TopicPartition
from kafkacompat.coordinators.transaction_service import TransactionService
from kafkacompat.errors import ErrorCode, KafkaError
from kafkacompat.protocol.messages.add_offsets_to_txn_request import API_KEY as ADD_OFFSETS_TO_TXN
from kafkacompat.protocol.messages.add_offsets_to_txn_request import AddOffsetsToTxnRequest
from kafkacompat.protocol.messages.add_offsets_to_txn_response import AddOffsetsToTxnResponse
from kafkacompat.protocol.messages.add_partitions_to_txn_request import (
    API_KEY as ADD_PARTITIONS_TO_TXN,
)
from kafkacompat.protocol.messages.add_partitions_to_txn_request import (
    AddPartitionsToTxnRequest,
    AddPartitionsToTxnTopic,
    AddPartitionsToTxnTransaction,
)
from kafkacompat.protocol.messages.add_partitions_to_txn_response import (
    AddPartitionsToTxnPartitionResult,
    AddPartitionsToTxnResponse,
    AddPartitionsToTxnResult,
    AddPartitionsToTxnTopicResult,
)
from kafkacompat.protocol.messages.end_txn_request import API_KEY as END_TXN
from kafkacompat.protocol.messages.end_txn_request import EndTxnRequest
from kafkacompat.protocol.messages.end_txn_response import EndTxnResponse
from kafkacompat.protocol.messages.txn_offset_commit_request import API_KEY as TXN_OFFSET_COMMIT
from kafkacompat.protocol.messages.txn_offset_commit_request import TxnOffsetCommitRequest
from kafkacompat.protocol.messages.txn_offset_commit_response import (
    TxnOffsetCommitResponse,
    TxnOffsetCommitResponsePartition,
    TxnOffsetCommitResponseTopic,
)
from kafkacompat.security.acls import AclOperation, ResourceType

E = ErrorCode
TOPIC = ResourceType.TOPIC
#: From these versions PRODUCER_FENCED is sent as such (KIP-588).
FIRST_FENCED_VERSION = {22: 4, ADD_PARTITIONS_TO_TXN: 2, ADD_OFFSETS_TO_TXN: 2, END_TXN: 2,
                        TXN_OFFSET_COMMIT: 3}  # fmt: skip
#: AddPartitionsToTxn from v4 carries a batch of transactions (brokers' verify-only form).
FIRST_BATCHED_VERSION = 4
MAX_INIT_ATTEMPTS = 3


def service(context: RequestContext) -> TransactionService:
    return context.services.transactions


def may_write_transaction(context: RequestContext, transactional_id: str) -> bool:
    """Whether the principal may WRITE the transactional id (every client transaction API)."""
    return context.authorize(AclOperation.WRITE, ResourceType.TRANSACTIONAL_ID, transactional_id)


def for_version(code: ErrorCode, api_key: int, version: int) -> ErrorCode:
    if code == E.PRODUCER_FENCED and version < FIRST_FENCED_VERSION[api_key]:
        return E.INVALID_PRODUCER_EPOCH
    return code


async def init_transactional_producer(
    context: RequestContext,
    transactional_id: str,
    timeout_ms: int,
    expected: tuple[int, int] | None,
) -> tuple[ErrorCode, int, int]:
    """InitProducerId for a transactional id: an open transaction of the previous epoch is
    aborted first (the answer is then what the client's retry would get)."""
    txns = service(context)
    not_here = txns.coordinator_error(transactional_id)
    if not_here:
        return not_here, -1, -1
    try:
        await context.services.producer_ids.ready()
    except KafkaError as exc:
        return exc.code, -1, -1
    for _ in range(MAX_INIT_ATTEMPTS):
        result = txns.coordinator.init_producer_id(transactional_id, timeout_ms, expected)
        if result.abort_first is None:
            await txns.settled()
            code = for_version(result.error, 22, context.api_version)
            return code, result.producer_id, result.producer_epoch
        await txns.complete_or_retry(result.abort_first)
    return E.CONCURRENT_TRANSACTIONS, -1, -1


def _partition_errors(
    context: RequestContext, topics: list[AddPartitionsToTxnTopic], client: bool
) -> tuple[list[TopicPartition], dict[TopicPartition, ErrorCode]]:
    """The partitions to add, and the errors of the others (a client's request, v0-3, needs
    WRITE on each topic)."""
    image = context.image
    wanted: list[TopicPartition] = []
    unknown: dict[TopicPartition, ErrorCode] = {}
    secured = client and context.services.security.authorizer is not None
    for topic in topics:
        info = image.topic(topic.name)
        denied = secured and not context.authorize(AclOperation.WRITE, TOPIC, topic.name)
        for p in topic.partitions:
            if denied:
                unknown[(topic.name, p)] = E.TOPIC_AUTHORIZATION_FAILED
            elif info is None or not 0 <= p < info.partitions:
                unknown[(topic.name, p)] = E.UNKNOWN_TOPIC_OR_PARTITION
            else:
                wanted.append((topic.name, p))
    return wanted, unknown


def _add_one(
    context: RequestContext, txn: AddPartitionsToTxnTransaction, version: int
) -> AddPartitionsToTxnResult:
    client = version < FIRST_BATCHED_VERSION
    wanted, errors = _partition_errors(context, txn.topics, client)
    coordinator = service(context).coordinator
    if client and not may_write_transaction(context, txn.transactional_id):
        errors = dict.fromkeys([*wanted, *errors], E.TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
    elif not txn.transactional_id:
        errors = dict.fromkeys([*wanted, *errors], E.INVALID_REQUEST)
    elif not_here := service(context).coordinator_error(txn.transactional_id):
        errors = dict.fromkeys([*wanted, *errors], not_here)
    elif txn.verify_only:
        errors.update(
            coordinator.verify_partitions(
                txn.transactional_id, txn.producer_id, txn.producer_epoch, wanted
            )
        )
    elif errors:
        errors.update(dict.fromkeys(wanted, E.OPERATION_NOT_ATTEMPTED))
    else:
        code = coordinator.add_partitions(
            txn.transactional_id, txn.producer_id, txn.producer_epoch, wanted
        )
        errors = dict.fromkeys(wanted, for_version(code, ADD_PARTITIONS_TO_TXN, version))
        service(context).wake()
    by_topic: dict[str, list[AddPartitionsToTxnPartitionResult]] = {}
    for topic in txn.topics:
        results = by_topic.setdefault(topic.name, [])
        for p in topic.partitions:
            results.append(AddPartitionsToTxnPartitionResult(p, errors[(topic.name, p)]))
    return AddPartitionsToTxnResult(
        txn.transactional_id,
        [AddPartitionsToTxnTopicResult(name, parts) for name, parts in by_topic.items()],
    )


@handles(ADD_PARTITIONS_TO_TXN)
async def handle_add_partitions_to_txn(
    context: RequestContext, request: AddPartitionsToTxnRequest
) -> AddPartitionsToTxnResponse:
    version = context.api_version
    if version >= FIRST_BATCHED_VERSION:
        # v4+ comes from brokers verifying transactions: CLUSTER_ACTION on the cluster.
        if not context.authorize_cluster(AclOperation.CLUSTER_ACTION):
            return AddPartitionsToTxnResponse(error_code=E.CLUSTER_AUTHORIZATION_FAILED)
        results = [_add_one(context, txn, version) for txn in request.transactions]
        await service(context).settled()
        return AddPartitionsToTxnResponse(error_code=E.NONE, results_by_transaction=results)
    single = AddPartitionsToTxnTransaction(
        request.v3_and_below_transactional_id,
        request.v3_and_below_producer_id,
        request.v3_and_below_producer_epoch,
        False,
        request.v3_and_below_topics,
    )
    result = _add_one(context, single, version)
    await service(context).settled()
    return AddPartitionsToTxnResponse(results_by_topic_v3_and_below=result.topic_results)


@handles(ADD_OFFSETS_TO_TXN)
async def handle_add_offsets_to_txn(
    context: RequestContext, request: AddOffsetsToTxnRequest
) -> AddOffsetsToTxnResponse:
    if not may_write_transaction(context, request.transactional_id):
        return AddOffsetsToTxnResponse(error_code=E.TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
    if not context.authorize(AclOperation.READ, ResourceType.GROUP, request.group_id):
        return AddOffsetsToTxnResponse(error_code=E.GROUP_AUTHORIZATION_FAILED)
    if not request.transactional_id or not request.group_id:
        return AddOffsetsToTxnResponse(error_code=E.INVALID_REQUEST)
    not_here = service(context).coordinator_error(request.transactional_id)
    if not_here:
        return AddOffsetsToTxnResponse(error_code=not_here)
    code = service(context).coordinator.add_offsets(
        request.transactional_id, request.producer_id, request.producer_epoch, request.group_id
    )
    service(context).wake()
    await service(context).settled()
    return AddOffsetsToTxnResponse(
        error_code=for_version(code, ADD_OFFSETS_TO_TXN, context.api_version)
    )


@handles(END_TXN)
async def handle_end_txn(context: RequestContext, request: EndTxnRequest) -> EndTxnResponse:
    if not may_write_transaction(context, request.transactional_id):
        return EndTxnResponse(
            error_code=E.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
            producer_id=request.producer_id,
            producer_epoch=request.producer_epoch,
        )
    if not request.transactional_id:
        return EndTxnResponse(error_code=E.INVALID_REQUEST)
    txns = service(context)
    not_here = txns.coordinator_error(request.transactional_id)
    if not_here:
        return EndTxnResponse(
            error_code=not_here,
            producer_id=request.producer_id,
            producer_epoch=request.producer_epoch,
        )
    code, completion = txns.coordinator.end_txn(
        request.transactional_id, request.producer_id, request.producer_epoch, request.committed
    )
    if completion is not None:
        await txns.complete_or_retry(completion)
    await txns.settled()
    return EndTxnResponse(
        error_code=for_version(code, END_TXN, context.api_version),
        producer_id=request.producer_id,
        producer_epoch=request.producer_epoch,
    )


def _member_error(context: RequestContext, request: TxnOffsetCommitRequest) -> ErrorCode:
    """The group membership checks of TxnOffsetCommit v3+ (skipped without a generation)."""
    if request.generation_id < 0 and not request.member_id:
        return E.NONE
    groups = context.services.groups.coordinator
    consumer_error = groups.validate_consumer_txn_offset_commit(
        request.group_id, request.member_id, request.generation_id
    )
    if consumer_error is not None:
        return consumer_error
    group = groups.groups.get(request.group_id)
    if group is None:
        return E.NONE if request.generation_id < 0 else E.ILLEGAL_GENERATION
    if group.static_member_fenced(request.member_id, request.group_instance_id):
        return E.FENCED_INSTANCE_ID
    if request.member_id and request.member_id not in group.members:
        return E.UNKNOWN_MEMBER_ID
    if request.generation_id >= 0 and request.generation_id != group.generation_id:
        return E.ILLEGAL_GENERATION
    return E.NONE


@handles(TXN_OFFSET_COMMIT)
async def handle_txn_offset_commit(
    context: RequestContext, request: TxnOffsetCommitRequest
) -> TxnOffsetCommitResponse:
    version = context.api_version
    txns = service(context)
    code = E.INVALID_GROUP_ID if not request.group_id else E.NONE
    secured = context.services.security.authorizer is not None
    if secured and not may_write_transaction(context, request.transactional_id):
        code = E.TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    elif secured and not context.authorize(AclOperation.READ, ResourceType.GROUP, request.group_id):
        code = E.GROUP_AUTHORIZATION_FAILED
    if code in (E.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, E.GROUP_AUTHORIZATION_FAILED):
        return TxnOffsetCommitResponse(
            topics=[
                TxnOffsetCommitResponseTopic(
                    t.name,
                    [
                        TxnOffsetCommitResponsePartition(p.partition_index, code)
                        for p in t.partitions
                    ],
                )
                for t in request.topics
            ]
        )
    if code == E.NONE:
        code = context.services.groups.coordinator_error(request.group_id)
    if code == E.NONE and not txns.coordinator_error(request.transactional_id):
        # The transaction's own coordinator checks it (on another broker, it is not asked).
        code = txns.coordinator.check_offset_commit(
            request.transactional_id, request.producer_id, request.producer_epoch, request.group_id
        )
    if code == E.NONE:
        code = _member_error(context, request)
    code = for_version(code, TXN_OFFSET_COMMIT, version)
    image = context.image
    limit = context.services.config.get_int("offset.metadata.max.bytes")
    accepted: dict[TopicPartition, OffsetAndMetadata] = {}
    topics = []
    for topic in request.topics:
        info = image.topic(topic.name)
        partitions = []
        denied = secured and not context.authorize(AclOperation.READ, TOPIC, topic.name)
        for p in topic.partitions:
            error = E.TOPIC_AUTHORIZATION_FAILED if denied else code
            if error == E.NONE and (info is None or not 0 <= p.partition_index < info.partitions):
                error = E.UNKNOWN_TOPIC_OR_PARTITION
            metadata = p.committed_metadata
            if error == E.NONE and metadata is not None and len(metadata.encode()) > limit:
                error = E.OFFSET_METADATA_TOO_LARGE
            if error == E.NONE:
                accepted[(topic.name, p.partition_index)] = OffsetAndMetadata(
                    p.committed_offset, p.committed_leader_epoch, metadata
                )
            partitions.append(TxnOffsetCommitResponsePartition(p.partition_index, error))
        topics.append(TxnOffsetCommitResponseTopic(topic.name, partitions))
    if accepted:
        txns.offsets.add(request.group_id, request.producer_id, accepted)
    return TxnOffsetCommitResponse(topics=topics)
