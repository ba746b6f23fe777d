"""The request pipeline, in one place: frame -> header -> decode -> hooks -> handler -> encode.

Authorization hooks run after decoding and before the handler (raising KafkaError refuses the
request); observer hooks (metrics) run after the handler with the response and the time spent.
Both lists are empty on a plain broker and then cost one truth test each. An interceptor (fault
injection) answers in the handler's place while it is set; unset, it costs one truth test too.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any, Protocol

import trio

from kafkacompat.broker.api_versions import api_versions_response
from kafkacompat.broker.context import RequestContext
from kafkacompat.broker.router import Handler
from kafkacompat.broker.sasl import PRE_AUTHENTICATION_APIS, raw_sasl_token
from kafkacompat.broker.services import BrokerServices
from kafkacompat.broker.session import Session
from kafkacompat.errors import ErrorCode, ProtocolError
from kafkacompat.protocol.headers import (
    ANSWER_UNSUPPORTED_AT_V0_APIS,
    RequestFrame,
    finish_response_frame,
    parse_request,
    start_response_frame,
)
from kafkacompat.protocol.primitives import DECODE_ERRORS

__all__ = [
    "TIME_ONE_REQUEST_IN",
    "AuthorizeHook",
    "ConnectionHook",
    "DropConnection",
    "Interceptor",
    "ObserveHook",
    "RequestPipeline",
]

#: Called with the context and the decoded request before the handler; raises to refuse.
AuthorizeHook = Callable[[RequestContext, Any], None]
#: Called with the context, the request, the response (None: none sent) and seconds spent.
ObserveHook = Callable[[RequestContext, Any, Any, float], None]
#: Called by the connection loop after a timed request's response is written (or not, for
#: acks=0) with its API key and seconds queued, handled (decode to encode), spent writing the
#: response and in all.
ConnectionHook = Callable[[int, float, float, float, float], None]
#: The connection loops time one request in this many of each API, its 1st, 17th, 33rd...
#: (Kafka's request histograms sample too); the observe hooks still see every request.
TIME_ONE_REQUEST_IN = 16


class DropConnection(ProtocolError):
    """Close the connection without (further) answers: a fault injected on purpose."""


class Interceptor(Protocol):
    """Stands between the pipeline and the handlers (fault injection)."""

    async def intercept(self, context: RequestContext, request: Any, handler: Handler) -> Any:
        """The response to send (None: none), usually from ``handler.func``; may raise
        DropConnection."""

    def refuses_connection(self, session: Session) -> bool:
        """Whether a connection just accepted is to be closed at once."""


class RequestPipeline:
    """Turns one request frame of a session into one response frame (or none, for acks=0)."""

    def __init__(self, handlers: Mapping[int, Handler], services: BrokerServices) -> None:
        self.handlers = dict(handlers)
        self.services = services
        self.authorize_hooks: list[AuthorizeHook] = []
        self.observe_hooks: list[ObserveHook] = []
        self.connection_hooks: list[ConnectionHook] = []
        #: API key -> its requests left untimed before the next timed one (connection loops).
        self.untimed: dict[int, int] = {}
        self.intercept: Interceptor | None = None

    async def handle_frame(
        self, data: bytes | bytearray | memoryview, session: Session
    ) -> bytearray | None:
        """Answer one request frame; None means no response is due (acks=0).

        Raises ProtocolError when the connection must be closed, as Kafka does for requests it
        cannot parse, unknown API keys and unsupported versions of APIs other than ApiVersions.
        """
        if session.raw_sasl_tokens:
            return await raw_sasl_token(self.services, session, bytes(data))
        frame = parse_request(memoryview(data))
        handler = self.handlers.get(frame.api_key)
        if handler is None:
            raise ProtocolError(f"API key {frame.api_key} is not served by this broker")
        if not session.authenticated and frame.api_key not in PRE_AUTHENTICATION_APIS:
            raise ProtocolError(
                f"{handler.name} request before SASL authentication completed (ILLEGAL_SASL_STATE)"
            )
        if (
            session.reauth_deadline != math.inf
            and frame.api_key not in PRE_AUTHENTICATION_APIS
            and trio.current_time() > session.reauth_deadline
        ):
            raise DropConnection("its SASL session expired (connections.max.reauth.ms)")
        version = frame.api_version
        if not handler.min_version <= version <= handler.max_version:
            if frame.api_key in ANSWER_UNSUPPORTED_AT_V0_APIS:
                return self._unsupported_version(handler, frame)
            raise ProtocolError(
                f"{handler.name} version {version} is not supported "
                f"({handler.min_version}-{handler.max_version})"
            )
        request = _decode(handler.request_module, frame)
        header = frame.header
        if header.client_id != session.client_id:
            session.client_id = header.client_id
        context = RequestContext(self.services, session, header)
        observing = self.observe_hooks
        started = time.perf_counter()
        for authorize in self.authorize_hooks:
            authorize(context, request)
        intercept = self.intercept
        if intercept is None:
            response = await handler.func(context, request)
        else:
            response = await intercept.intercept(context, request, handler)
        quotas = self.services.security.quotas
        if quotas.active:
            self._throttle(context, request, response, len(data), started)
        if observing:
            elapsed = time.perf_counter() - started
            for observe in observing:
                observe(context, request, response, elapsed)
        if response is None:
            return None
        return encode_response(handler, version, frame.correlation_id, response)

    def _throttle(
        self, context: RequestContext, request: Any, response: Any, size: int, started: float
    ) -> None:
        """Record the request against its client's quotas; over quota, the response says for how
        long the client is throttled and the connection is muted that long (KIP-219). A request
        without a response (acks=0) mutes the connection all the same."""
        session = context.session
        throttle_ms = self.services.security.quotas.throttle_ms(
            session.principal,
            session.client_id,
            context.header.request_api_key,
            request,
            response,
            size,
            time.perf_counter() - started,
        )
        if throttle_ms <= 0:
            return
        if hasattr(response, "throttle_time_ms"):
            response.throttle_time_ms = max(response.throttle_time_ms, throttle_ms)
        session.muted_until = max(session.muted_until, trio.current_time() + throttle_ms / 1000)

    def _unsupported_version(self, handler: Handler, frame: RequestFrame) -> bytearray:
        response = api_versions_response(self.services, ErrorCode.UNSUPPORTED_VERSION)
        return encode_response(handler, 0, frame.correlation_id, response)


def _decode(module: ModuleType, frame: RequestFrame) -> Any:
    try:
        request, _end = module.DECODERS[frame.api_version](frame.body, 0)
    except DECODE_ERRORS as exc:
        raise ProtocolError(f"malformed {module.__name__} body: {exc}") from exc
    return request


def encode_response(
    handler: Handler, version: int, correlation_id: int, response: Any
) -> bytearray:
    out = start_response_frame(handler.api_key, version, correlation_id)
    handler.response_module.ENCODERS[version](response, out)
    return finish_response_frame(out)
