"""The request pipeline: decode, authorization hooks, handler, observer hooks, encode, in order."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from kafkacompat.broker.broker import Broker
from kafkacompat.broker.context import RequestContext
from kafkacompat.broker.session import ANONYMOUS, Session
from kafkacompat.errors import ErrorCode
from kafkacompat.protocol.messages import metadata_request, metadata_response, request_header
from kafkacompat.protocol.messages.metadata_request import MetadataRequest, MetadataRequestTopic
from kafkacompat.protocol.messages.request_header import RequestHeader
from kafkacompat.testing import local_config

VERSION = 9  # flexible: request header v2


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    broker = Broker(local_config(tmp_path / "data"))
    yield broker
    broker.close()


def metadata_frame(topic: str, client_id: str = "pipeline-test") -> bytes:
    out = bytearray()
    request_header.ENCODERS[2](RequestHeader(metadata_request.API_KEY, VERSION, 5, client_id), out)
    request = MetadataRequest(topics=[MetadataRequestTopic(name=topic)])
    metadata_request.ENCODERS[VERSION](request, out)
    return bytes(out)


def decode(frame: bytearray) -> Any:
    assert struct.unpack_from(">i", frame, 4)[0] == 5
    response, _ = metadata_response.DECODERS[VERSION](memoryview(frame)[4:], 4 + 1)
    return response


async def test_hooks_run_around_the_handler_in_order(broker: Broker) -> None:
    pipeline = broker.pipeline
    calls: list[str] = []
    handler = pipeline.handlers[metadata_request.API_KEY]

    async def recording(context: RequestContext, request: Any) -> Any:
        calls.append(f"handler {request.topics[0].name}")
        return await handler.func(context, request)

    pipeline.handlers[metadata_request.API_KEY] = replace(handler, func=recording)
    pipeline.authorize_hooks += [
        lambda context, request: calls.append(f"authorize 1 {context.session.principal}"),
        lambda context, request: calls.append(f"authorize 2 {context.client_id}"),
    ]

    def observe(context: RequestContext, request: Any, response: Any, elapsed: float) -> None:
        assert elapsed >= 0
        calls.append(f"observe {len(response.topics)} {context.api_version}")

    pipeline.observe_hooks.append(observe)
    session = Session("127.0.0.1:5555")
    frame = await pipeline.handle_frame(metadata_frame("orders"), session)
    assert frame is not None
    response = decode(frame)
    assert [t.error_code for t in response.topics] == [ErrorCode.NONE]  # auto-created
    assert calls == [
        f"authorize 1 {ANONYMOUS}",
        "authorize 2 pipeline-test",
        "handler orders",
        f"observe 1 {VERSION}",
    ]
    assert session.client_id == "pipeline-test"


async def test_a_refusing_hook_stops_the_request_before_the_handler(broker: Broker) -> None:
    pipeline = broker.pipeline

    class Refused(Exception):
        pass

    def refuse(context: RequestContext, request: Any) -> None:
        raise Refused(context.session.peer)

    pipeline.authorize_hooks.append(refuse)
    with pytest.raises(Refused, match=r"10\.0\.0\.1:1"):
        await pipeline.handle_frame(metadata_frame("never"), Session("10.0.0.1:1"))
    assert broker.controller.image.topic("never") is None


async def test_the_session_follows_the_client_id_of_each_request(broker: Broker) -> None:
    session = Session("127.0.0.1:6000")
    await broker.pipeline.handle_frame(metadata_frame("a", client_id="first"), session)
    assert session.client_id == "first"
    await broker.pipeline.handle_frame(metadata_frame("a", client_id="second"), session)
    assert session.client_id == "second"
    assert Session("x").connection_id != session.connection_id
