"""The broker: turns one request frame into one response frame by dispatching to a handler."""

from __future__ import annotations

import importlib
import logging
import pkgutil
import uuid
from types import ModuleType
from typing import Any

from kafkacompat.broker.context import RequestContext
from kafkacompat.broker.identity import load_or_create_identity
from kafkacompat.broker.router import Handler, registered_handlers
from kafkacompat.broker.topics import TopicInfo
from kafkacompat.config import Config, HostPort
from kafkacompat.errors import ErrorCode, KafkaError, ProtocolError
from kafkacompat.protocol.framing import frame
from kafkacompat.protocol.headers import (
    ANSWER_UNSUPPORTED_AT_V0_APIS,
    RequestFrame,
    encode_response_header,
    parse_request,
)
from kafkacompat.protocol.primitives import DECODE_ERRORS

log = logging.getLogger("kafkacompat.broker")


def _load_handlers() -> dict[int, Handler]:
    """Import every module of this package: importing an API module registers its handlers."""
    import kafkacompat.broker as package

    for info in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{package.__name__}.{info.name}")
    return registered_handlers()


class Broker:
    """One broker's state and request dispatch; the server feeds it frames."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.node_id = config.node_id
        identity = load_or_create_identity(config.data_dir, config.node_id, config.cluster_id)
        self.cluster_id = identity.cluster_id
        self.handlers = _load_handlers()
        self.advertised = config.advertised_for(config.listen.port)
        self._topics: dict[str, TopicInfo] = {}

    def bind(self, bound_port: int) -> None:
        """Record the port actually bound (it differs from the configured one for port 0)."""
        self.advertised = self.config.advertised_for(bound_port)

    @property
    def endpoint(self) -> HostPort:
        return self.advertised

    # -- topics ------------------------------------------------------------------------------

    def list_topics(self) -> list[TopicInfo]:
        return sorted(self._topics.values(), key=lambda t: t.name)

    def find_topic(self, name: str) -> TopicInfo | None:
        return self._topics.get(name)

    def find_topic_by_id(self, topic_id: uuid.UUID) -> TopicInfo | None:
        return next((t for t in self._topics.values() if t.topic_id == topic_id), None)

    async def auto_create_topic(self, name: str) -> TopicInfo:
        return self.create_topic(name, self.config.get_int("num.partitions"))

    def create_topic(self, name: str, partitions: int) -> TopicInfo:
        if name in self._topics:
            raise KafkaError(ErrorCode.TOPIC_ALREADY_EXISTS, f"topic {name!r} already exists")
        topic = TopicInfo(name, uuid.uuid4(), partitions)
        self._topics[name] = topic
        return topic

    def leader_epoch(self, topic: str, partition: int) -> int:
        return 0

    async def handle_frame(self, data: bytes, client_address: str) -> bytes | None:
        """Answer one request frame; None means no response is due (acks=0).

        Raises ProtocolError when the connection must be closed, as Kafka does for requests it
        cannot parse, unknown API keys and unsupported versions of APIs other than ApiVersions.
        """
        request_frame = parse_request(memoryview(data))
        handler = self.handlers.get(request_frame.api_key)
        if handler is None:
            raise ProtocolError(f"API key {request_frame.api_key} is not served by this broker")
        version = request_frame.api_version
        if not handler.min_version <= version <= handler.max_version:
            if request_frame.api_key in ANSWER_UNSUPPORTED_AT_V0_APIS:
                return self._unsupported_version_response(handler, request_frame)
            raise ProtocolError(
                f"{handler.name} version {version} is not supported "
                f"({handler.min_version}-{handler.max_version})"
            )
        request = self._decode(handler.request_module, request_frame)
        context = RequestContext(self, request_frame.header, client_address)
        response = await handler.func(context, request)
        if response is None:
            return None
        return self.encode_response(handler, version, request_frame.correlation_id, response)

    @staticmethod
    def _decode(module: ModuleType, request_frame: RequestFrame) -> Any:
        try:
            request, _end = module.DECODERS[request_frame.api_version](request_frame.body, 0)
        except DECODE_ERRORS as exc:
            raise ProtocolError(f"malformed {module.__name__} body: {exc}") from exc
        return request

    @staticmethod
    def encode_response(
        handler: Handler, version: int, correlation_id: int, response: Any
    ) -> bytes:
        body = bytearray(encode_response_header(handler.api_key, version, correlation_id))
        handler.response_module.ENCODERS[version](response, body)
        return frame(body)

    def _unsupported_version_response(self, handler: Handler, request_frame: RequestFrame) -> bytes:
        from kafkacompat.broker.api_versions import api_versions_response

        response = api_versions_response(self, ErrorCode.UNSUPPORTED_VERSION)
        return self.encode_response(handler, 0, request_frame.correlation_id, response)
