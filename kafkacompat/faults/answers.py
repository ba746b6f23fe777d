"""Error answers for injected faults: each API's real response with the error where Kafka puts it.

A fault scoped to a topic or partition fails only what it covers: an API that changes state
(Produce, OffsetCommit) serves the rest through its handler and adds error entries for the covered
partitions; a read-only API runs its handler and then overwrites the covered entries.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, fields, replace
from typing import Any

from kafkacompat.broker.context import RequestContext
from kafkacompat.broker.fetch import error_partition
from kafkacompat.broker.router import Handler
from kafkacompat.errors import ErrorCode
from kafkacompat.protocol.messages import APIS
from kafkacompat.protocol.messages.fetch_response import FetchableTopicResponse, FetchResponse
from kafkacompat.protocol.messages.find_coordinator_response import (
    Coordinator,
    FindCoordinatorResponse,
)
from kafkacompat.protocol.messages.init_producer_id_response import InitProducerIdResponse
from kafkacompat.protocol.messages.offset_commit_response import (
    OffsetCommitResponse,
    OffsetCommitResponsePartition,
    OffsetCommitResponseTopic,
)
from kafkacompat.protocol.messages.produce_response import (
    PartitionProduceResponse,
    ProduceResponse,
    TopicProduceResponse,
)
from kafkacompat.protocol.primitives import ZERO_UUID

__all__ = ["PARTITIONED_APIS", "Scope", "answer_with_error", "can_fail", "touches"]

PRODUCE, FETCH, LIST_OFFSETS, METADATA, OFFSET_COMMIT, OFFSET_FETCH = 0, 1, 2, 3, 8, 9
FIND_COORDINATOR, INIT_PRODUCER_ID = 10, 22
#: APIs whose requests name topics and partitions, so a fault can be scoped to some of them.
PARTITIONED_APIS = frozenset({PRODUCE, FETCH, LIST_OFFSETS, METADATA, OFFSET_COMMIT, OFFSET_FETCH})
#: Fetch errors about the fetch session, which Kafka answers in the top-level error code.
FETCH_SESSION_ERRORS = frozenset(
    {
        ErrorCode.FETCH_SESSION_ID_NOT_FOUND,
        ErrorCode.INVALID_FETCH_SESSION_EPOCH,
        ErrorCode.FETCH_SESSION_TOPIC_ID_ERROR,
    }
)


@dataclass(frozen=True, slots=True)
class Scope:
    """Which topic and partition a fault covers; None covers all."""

    topic: str | None = None
    partition: int | None = None

    @property
    def everything(self) -> bool:
        return self.topic is None and self.partition is None

    def covers(self, topic: str | None, partition: int | None = None) -> bool:
        """Whether the scope covers this partition (``partition=None``: any of the topic's)."""
        if self.topic is not None and topic != self.topic:
            return False
        return self.partition is None or partition is None or partition == self.partition


def _name(context: RequestContext, name: str | None, topic_id: uuid.UUID) -> str | None:
    """A topic's name from the request, or from its id (Fetch v13+, Metadata v10+)."""
    if name or topic_id == ZERO_UUID:
        return name
    topic = context.image.topic_by_id(topic_id)
    return topic.name if topic is not None else None


def _requested(context: RequestContext, api_key: int, request: Any) -> Iterator[tuple[Any, Any]]:
    """(topic name, partition or None) for everything a partitioned request names; a request
    for all topics (Metadata, OffsetFetch) yields (None, None)."""
    if api_key == PRODUCE:
        for t in request.topic_data:
            yield from ((t.name, p.index) for p in t.partition_data)
    elif api_key == FETCH:
        for f in request.topics:
            name = _name(context, f.topic, f.topic_id)
            yield from ((name, p.partition) for p in f.partitions)
    elif api_key in (LIST_OFFSETS, OFFSET_COMMIT):
        for t in request.topics:
            yield from ((t.name, p.partition_index) for p in t.partitions)
    elif api_key == METADATA:
        if not request.topics:
            yield None, None
        for m in request.topics or ():
            yield _name(context, m.name, m.topic_id), None
    elif api_key == OFFSET_FETCH:
        for topics in [request.topics, *(g.topics for g in request.groups)]:
            if topics is None:
                yield None, None
            for o in topics or ():
                yield from ((o.name, i) for i in o.partition_indexes)


def touches(context: RequestContext, api_key: int, request: Any, scope: Scope) -> bool:
    """Whether a request names anything the scope covers (a request for all topics does)."""
    if scope.everything:
        return True
    for name, partition in _requested(context, api_key, request):
        if name is None and partition is None:
            return True
        if scope.covers(name, partition):
            return True
    return False


def response_class(api_key: int) -> type[Any]:
    module = APIS[api_key][1]
    words = module.__name__.rsplit(".", 1)[-1].split("_")
    return getattr(module, "".join(w.capitalize() for w in words))  # type: ignore[no-any-return]


def _has_error_code(api_key: int) -> bool:
    return any(f.name == "error_code" for f in fields(response_class(api_key)))


def can_fail(api_key: int) -> bool:
    """Whether an error answer can be built for this API."""
    return api_key in _ANSWERS or _has_error_code(api_key)


async def answer_with_error(
    context: RequestContext, request: Any, handler: Handler, code: ErrorCode, scope: Scope
) -> Any:
    """The response to ``request`` with ``code`` wherever ``scope`` covers it."""
    build = _ANSWERS.get(handler.api_key)
    if build is not None:
        return await build(context, request, handler, code, scope)
    return response_class(handler.api_key)(error_code=code)


async def _produce(
    context: RequestContext, request: Any, handler: Handler, code: ErrorCode, scope: Scope
) -> Any:
    failed: list[tuple[str, int]] = []
    kept = []
    for topic in request.topic_data:
        served = []
        for p in topic.partition_data:
            if scope.covers(topic.name, p.index):
                failed.append((topic.name, p.index))
            else:
                served.append(p)
        if served:
            kept.append(replace(topic, partition_data=served))
    response = await handler.func(context, replace(request, topic_data=kept)) if kept else None
    if request.acks == 0:
        return None
    response = response or ProduceResponse()
    entries = {t.name: t for t in response.responses}
    for name, index in failed:
        if name not in entries:
            entries[name] = TopicProduceResponse(name=name)
            response.responses.append(entries[name])
        entries[name].partition_responses.append(
            PartitionProduceResponse(index=index, error_code=code, base_offset=-1)
        )
    return response


async def _offset_commit(
    context: RequestContext, request: Any, handler: Handler, code: ErrorCode, scope: Scope
) -> Any:
    failed: list[tuple[str, int]] = []
    kept = []
    for topic in request.topics:
        served = []
        for p in topic.partitions:
            if scope.covers(topic.name, p.partition_index):
                failed.append((topic.name, p.partition_index))
            else:
                served.append(p)
        if served:
            kept.append(replace(topic, partitions=served))
    if kept:
        response = await handler.func(context, replace(request, topics=kept))
    else:
        response = OffsetCommitResponse()
    entries = {t.name: t for t in response.topics}
    for name, index in failed:
        if name not in entries:
            entries[name] = OffsetCommitResponseTopic(name=name)
            response.topics.append(entries[name])
        entries[name].partitions.append(OffsetCommitResponsePartition(index, code))
    return response


async def _fetch(
    context: RequestContext, request: Any, handler: Handler, code: ErrorCode, scope: Scope
) -> Any:
    if scope.everything:
        # Answered at once, without the handler's long poll, and without a session: the client
        # starts a new one with its next full fetch.
        if code in FETCH_SESSION_ERRORS:
            return FetchResponse(error_code=code)
        responses = [
            FetchableTopicResponse(
                topic=t.topic,
                topic_id=t.topic_id,
                partitions=[error_partition(p.partition, code) for p in t.partitions],
            )
            for t in request.topics
        ]
        return FetchResponse(responses=responses)
    # An error in any partition makes Kafka answer at once: no long poll for the others either.
    response = await handler.func(context, replace(request, max_wait_ms=0))
    answered = set()
    for entry in response.responses:
        name = _name(context, entry.topic, entry.topic_id)
        for i, data in enumerate(entry.partitions):
            answered.add((name, data.partition_index))
            if scope.covers(name, data.partition_index):
                entry.partitions[i] = error_partition(data.partition_index, code)
    for t in request.topics:
        name = _name(context, t.topic, t.topic_id)
        missing = [
            error_partition(p.partition, code)
            for p in t.partitions
            if scope.covers(name, p.partition) and (name, p.partition) not in answered
        ]
        if missing:
            topic = FetchableTopicResponse(topic=t.topic, topic_id=t.topic_id, partitions=missing)
            response.responses.append(topic)
    return response


async def _list_offsets(
    context: RequestContext, request: Any, handler: Handler, code: ErrorCode, scope: Scope
) -> Any:
    response = await handler.func(context, request)
    for topic in response.topics:
        for p in topic.partitions:
            if scope.covers(topic.name, p.partition_index):
                p.error_code, p.timestamp, p.offset, p.leader_epoch = code, -1, -1, -1
                p.old_style_offsets = []
    return response


async def _metadata(
    context: RequestContext, request: Any, handler: Handler, code: ErrorCode, scope: Scope
) -> Any:
    response = await handler.func(context, request)
    for topic in response.topics:
        name = _name(context, topic.name, topic.topic_id)
        if not scope.covers(name):
            continue
        if scope.partition is None:
            # As for Kafka's own topic-level errors: the error, no partitions.
            topic.error_code, topic.partitions = code, []
        else:
            for p in topic.partitions:
                if p.partition_index == scope.partition:
                    p.error_code = code
    return response


async def _offset_fetch(
    context: RequestContext, request: Any, handler: Handler, code: ErrorCode, scope: Scope
) -> Any:
    response = await handler.func(context, request)
    if scope.everything:
        response.error_code = code
    for group in response.groups:
        if scope.everything:
            group.error_code = code
    for topics in [response.topics, *(g.topics for g in response.groups)]:
        for topic in topics:
            for p in topic.partitions:
                if scope.covers(topic.name, p.partition_index):
                    p.error_code, p.committed_offset, p.metadata = code, -1, ""
    return response


async def _find_coordinator(
    context: RequestContext, request: Any, handler: Handler, code: ErrorCode, scope: Scope
) -> Any:
    return FindCoordinatorResponse(
        error_code=code,
        error_message=None,
        node_id=-1,
        host="",
        port=-1,
        coordinators=[Coordinator(key, -1, "", -1, code, None) for key in request.coordinator_keys],
    )


async def _init_producer_id(
    context: RequestContext, request: Any, handler: Handler, code: ErrorCode, scope: Scope
) -> Any:
    return InitProducerIdResponse(error_code=code, producer_id=-1, producer_epoch=-1)


_Answer = Callable[[RequestContext, Any, Handler, ErrorCode, Scope], Awaitable[Any]]
_ANSWERS: dict[int, _Answer] = {
    PRODUCE: _produce,
    FETCH: _fetch,
    LIST_OFFSETS: _list_offsets,
    METADATA: _metadata,
    OFFSET_COMMIT: _offset_commit,
    OFFSET_FETCH: _offset_fetch,
    FIND_COORDINATOR: _find_coordinator,
    INIT_PRODUCER_ID: _init_producer_id,
}
