"""The broker: turns one request frame into one response frame by dispatching to a handler."""

from __future__ import annotations

import importlib
import logging
import pkgutil
from types import ModuleType
from typing import Any

import trio

from kafkacompat.broker.context import RequestContext
from kafkacompat.broker.identity import load_or_create_identity
from kafkacompat.broker.replica_manager import ReplicaManager, now_ms
from kafkacompat.broker.router import Handler, registered_handlers
from kafkacompat.config import Config, HostPort
from kafkacompat.coordinators.group_service import GroupService
from kafkacompat.coordinators.txn_markers import TransactionService
from kafkacompat.errors import ErrorCode, ProtocolError
from kafkacompat.protocol.headers import (
    ANSWER_UNSUPPORTED_AT_V0_APIS,
    RequestFrame,
    finish_response_frame,
    parse_request,
    start_response_frame,
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
        self.replicas = ReplicaManager(config, config.data_dir)
        self.groups = GroupService(config, self.replicas.logs.state)
        self.transactions = TransactionService(
            config, self.replicas.logs.state, self.replicas, self.groups.coordinator
        )
        self._last_retention_ms = now_ms()

    def bind(self, bound_port: int) -> None:
        """Record the port actually bound (it differs from the configured one for port 0)."""
        self.advertised = self.config.advertised_for(bound_port)

    @property
    def endpoint(self) -> HostPort:
        return self.advertised

    def close(self) -> None:
        """Flush and close storage; the next start needs no recovery."""
        self.replicas.close()

    async def run_background_tasks(self) -> None:
        """Group timers, retention and time-based flushes, forever (storage work on worker threads)."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self.groups.run_timers)
            nursery.start_soon(self.transactions.run_timers)
            await self._run_storage_maintenance()

    async def _run_storage_maintenance(self) -> None:
        interval = self.config.get_int("log.retention.check.interval.ms") / 1000
        while True:
            await trio.sleep(min(interval, 1.0))
            now = now_ms()
            retention = now - self._last_retention_ms >= interval * 1000
            if retention:
                self._last_retention_ms = now
            await self.replicas.maintain(now, retention=retention)

    async def handle_frame(
        self, data: bytes | bytearray | memoryview, client_address: str
    ) -> bytearray | None:
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
    ) -> bytearray:
        out = start_response_frame(handler.api_key, version, correlation_id)
        handler.response_module.ENCODERS[version](response, out)
        return finish_response_frame(out)

    def _unsupported_version_response(
        self, handler: Handler, request_frame: RequestFrame
    ) -> bytearray:
        from kafkacompat.broker.api_versions import api_versions_response

        response = api_versions_response(self, ErrorCode.UNSUPPORTED_VERSION)
        return self.encode_response(handler, 0, request_frame.correlation_id, response)
