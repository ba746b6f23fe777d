"""What the request pipeline's observe hook counts, exactly: per request and per partition of a
response, never per record (records and bytes in are counted on the partitions by the produce
handler, from the append's result).

Plain dicts of ints, turned into Prometheus families only when scraped (`metrics.py`).
"""

from __future__ import annotations

import re
import sys
from dataclasses import fields, is_dataclass
from typing import Any, NamedTuple

from kafkacompat.broker.context import RequestContext
from kafkacompat.broker.router import Handler

__all__ = ["LATENCY_BUCKETS", "VALIDATION_ERRORS", "ApiStats", "RequestCounters", "request_name"]

#: Upper bounds (seconds) of the request-latency histogram buckets (the last is +Inf).
LATENCY_BUCKETS: tuple[float, ...] = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)

#: Produce errors that mean the broker refused the records themselves (validation).
VALIDATION_ERRORS = frozenset(
    {
        2,  # CORRUPT_MESSAGE
        10,  # MESSAGE_TOO_LARGE
        18,  # RECORD_LIST_TOO_LARGE
        32,  # INVALID_TIMESTAMP
        43,  # UNSUPPORTED_FOR_MESSAGE_FORMAT
        76,  # UNSUPPORTED_COMPRESSION_TYPE
        87,  # INVALID_RECORD
    }
)

PRODUCE = 0
FETCH = 1
#: Series of partitions beyond `metrics.max.partitions` are added up under this key.
OVERFLOW = ("_overflow", -1)


def request_name(handler: Handler) -> str:
    """Kafka's request name (the ``request`` label of its RequestMetrics): ``ListOffsets``."""
    return "".join(part.capitalize() for part in handler.name.split("_"))


class ApiStats:
    """One API's request count (every request; the timing hook times one in 16)."""

    __slots__ = ("name", "requests")

    def __init__(self, name: str) -> None:
        self.name = name
        self.requests = 0


class RequestCounters:
    """Counters kept by the observe hook; read (not reset) by the scrape."""

    def __init__(self, handlers: dict[int, Handler], max_partitions: int) -> None:
        self.names = {key: request_name(handler) for key, handler in handlers.items()}
        self.max_partitions = max_partitions
        self.apis: dict[int, ApiStats] = {}
        #: (request, error code) -> count; error NONE is not counted.
        self.errors: dict[tuple[str, int], int] = {}
        #: (topic, partition) -> record bytes sent by Fetch.
        self.bytes_out: dict[tuple[str, int], int] = {}
        #: Produce refusals by error code (what validation refused).
        self.refusals: dict[int, int] = {}
        #: Open and accepted connections by listener.
        self.connections: dict[str, int] = {}
        self.connections_accepted: dict[str, int] = {}

    # -- the hook --------------------------------------------------------------------------------

    def observe(self, context: RequestContext, request: Any, response: Any, elapsed: float) -> None:
        api_key = context.header.request_api_key
        stats = self.apis.get(api_key) or self._add_api(api_key)
        stats.requests += 1
        if api_key == PRODUCE:
            if response is not None:  # None: acks=0
                for topic in response.responses:
                    for part in topic.partition_responses:
                        if part.error_code:
                            self._produce_error(stats.name, part.error_code)
        elif api_key == FETCH:
            if response is not None:
                self._fetch(stats.name, context, response)
        elif response is not None:
            self._errors(stats.name, response)

    def _add_api(self, api_key: int) -> ApiStats:
        stats = self.apis[api_key] = ApiStats(self.names.get(api_key, str(api_key)))
        return stats

    def _key(self, table: dict[tuple[str, int], Any], topic: str, index: int) -> tuple[str, int]:
        key = (topic, index)
        if key in table or len(table) < self.max_partitions:
            return key
        return OVERFLOW

    def _produce_error(self, name: str, code: int) -> None:
        self.errors[(name, code)] = self.errors.get((name, code), 0) + 1
        if code in VALIDATION_ERRORS:
            self.refusals[code] = self.refusals.get(code, 0) + 1

    def _fetch(self, name: str, context: RequestContext, response: Any) -> None:
        errors = self.errors
        if response.error_code:
            errors[(name, response.error_code)] = errors.get((name, response.error_code), 0) + 1
        out = self.bytes_out
        for topic in response.responses:
            topic_name = topic.topic
            if not topic_name:  # Fetch v13+ names topics by id
                image = context.services.metadata.image.topic_by_id(topic.topic_id)
                topic_name = image.name if image is not None else str(topic.topic_id)
            for part in topic.partitions:
                code = part.error_code
                if code:
                    errors[(name, code)] = errors.get((name, code), 0) + 1
                records = part.records
                if records is not None:
                    size = records.size if hasattr(records, "size") else len(records)
                    if size:
                        key = self._key(out, topic_name, part.partition_index)
                        out[key] = out.get(key, 0) + size

    def _errors(self, name: str, response: Any) -> None:
        """Every ``error_code`` in the response, at any depth (per partition at most)."""
        errors = self.errors
        stack = [response]
        while stack:
            item = stack.pop()
            code = getattr(item, "error_code", 0)
            if code:
                errors[(name, code)] = errors.get((name, code), 0) + 1
            shape = _shape(type(item))
            for list_field in shape.message_lists:
                stack.extend(getattr(item, list_field) or ())
            for message_field in shape.messages:
                child = getattr(item, message_field)
                if child is not None:
                    stack.append(child)

    # -- connections (counted by the listener's connection wrapper) -------------------------------

    def connection_opened(self, listener: str) -> None:
        self.connections[listener] = self.connections.get(listener, 0) + 1
        self.connections_accepted[listener] = self.connections_accepted.get(listener, 0) + 1

    def connection_closed(self, listener: str) -> None:
        self.connections[listener] = self.connections.get(listener, 0) - 1


class _Shape(NamedTuple):
    """Where a generated message class holds nested messages."""

    #: Fields holding lists of messages.
    message_lists: tuple[str, ...]
    #: Fields holding one message (or None).
    messages: tuple[str, ...]


_SHAPES: dict[type, _Shape] = {}
_LIST_OF = re.compile(r"list\[(\w+)\]( \| None)?")
_ONE_OF = re.compile(r"(\w+)( \| None)?")


def _shape(cls: type) -> _Shape:
    """The shape of a response class, worked out from its field types once."""
    found = _SHAPES.get(cls)
    if found is None:
        found = _SHAPES[cls] = _work_out_shape(cls)
    return found


def _work_out_shape(cls: type) -> _Shape:
    """Nested message fields, told from the field annotations: ``list[Name]`` and ``Name``
    (either ``| None``) where Name is a message class of the class's module."""
    if not is_dataclass(cls):
        return _Shape((), ())
    names = vars(sys.modules[cls.__module__])

    def is_message(type_name: str) -> bool:
        candidate = names.get(type_name)
        return isinstance(candidate, type) and is_dataclass(candidate)

    lists = []
    ones = []
    for f in fields(cls):
        annotation = str(f.type)
        if match := _LIST_OF.fullmatch(annotation):
            if is_message(match[1]):
                lists.append(f.name)
        elif (match := _ONE_OF.fullmatch(annotation)) and is_message(match[1]):
            ones.append(f.name)
    return _Shape(tuple(lists), tuple(ones))
