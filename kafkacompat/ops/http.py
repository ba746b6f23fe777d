"""The operations HTTP listener: an ASGI app served by hypercorn's Trio worker in the broker's
own nursery, so every page reads broker state on the loop that owns it.

Routes: /metrics, /healthz, /readyz, /faults (`faults_api.py`, with ``http.faults.enable``), and
the console (`console.py`) at / with its static files.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any, cast
from urllib.parse import parse_qs, unquote

import trio

from kafkacompat.broker.broker import Broker
from kafkacompat.config import HostPort
from kafkacompat.ops.faults_api import FaultsApi
from kafkacompat.ops.health import Readiness
from kafkacompat.ops.metrics import CONTENT_TYPE_LATEST, BrokerMetrics

__all__ = ["OpsApp", "Request", "Response", "serve_http"]

log = logging.getLogger("kafkacompat.http")

#: The most request-body bytes read (console forms are small).
MAX_BODY_BYTES = 64 * 1024

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes = b""
    #: The path's segments, each unquoted on its own (a group id may hold a ``/``).
    segments: tuple[str, ...] = ()

    def arg(self, name: str, default: str = "") -> str:
        values = self.query.get(name)
        return values[0] if values else default

    def form(self) -> dict[str, str]:
        parsed = parse_qs(self.body.decode("utf-8", "replace"), keep_blank_values=True)
        return {key: values[0] for key, values in parsed.items()}


@dataclass(slots=True)
class Response:
    body: bytes
    status: int = 200
    content_type: str = "text/html; charset=utf-8"
    headers: list[tuple[str, str]] = field(default_factory=list)


def text(body: str, status: int = 200) -> Response:
    return Response(body.encode(), status, "text/plain; charset=utf-8")


Route = Callable[[Request], Awaitable[Response]]


class OpsApp:
    """The ASGI application: health, metrics and (when given) the console's routes."""

    def __init__(
        self,
        broker: Broker,
        metrics: BrokerMetrics,
        readiness: Readiness,
        console: Route | None = None,
    ) -> None:
        self.broker = broker
        self.metrics = metrics
        self.readiness = readiness
        self.console = console
        self.faults = FaultsApi(broker)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        body = b""
        if scope["method"] in ("POST", "PUT"):
            body = await _read_body(receive)
        request = Request(
            scope["method"],
            scope["path"],
            parse_qs(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True),
            {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]},
            body,
            _segments(scope),
        )
        try:
            response = await self.route(request)
        except Exception:
            log.exception("HTTP %s %s failed", request.method, request.path)
            response = text("internal error\n", 500)
        headers = [
            (b"content-type", response.content_type.encode()),
            (b"content-length", str(len(response.body)).encode()),
            (b"cache-control", b"no-store"),
        ]
        headers += [(k.encode(), v.encode()) for k, v in response.headers]
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        await send({"type": "http.response.body", "body": response.body})

    async def route(self, request: Request) -> Response:
        path = request.path
        if path == "/metrics":
            return Response(await self.metrics.render(), content_type=CONTENT_TYPE_LATEST)
        if path == "/healthz":
            return text("ok\n")
        if path == "/readyz":
            problems = self.readiness.problems()
            if problems:
                return text("not ready: " + "; ".join(problems) + "\n", 503)
            return text("ready\n")
        if request.segments[:1] == ("faults",):
            answer = await self.faults.handle(request)
            return Response(answer.body(), answer.status, "application/json", answer.headers)
        if self.console is not None:
            return await self.console(request)
        return text("not found\n", 404)


def _sole_cause(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def _segments(scope: Scope) -> tuple[str, ...]:
    raw = scope.get("raw_path")
    if not raw:
        return tuple(p for p in scope["path"].split("/") if p)
    path = raw.decode("latin-1").partition("?")[0]
    return tuple(unquote(p) for p in path.split("/") if p)


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _read_body(receive: Receive) -> bytes:
    chunks = bytearray()
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return bytes(chunks)
        chunks += message.get("body", b"")
        if len(chunks) > MAX_BODY_BYTES:
            return bytes(chunks[:MAX_BODY_BYTES])
        if not message.get("more_body", False):
            return bytes(chunks)


async def serve_http(
    app: OpsApp,
    address: HostPort,
    *,
    task_status: trio.TaskStatus[HostPort] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``app`` on ``address`` until cancelled; reports the address bound (port 0: a free
    port)."""
    from hypercorn.config import Config as HypercornConfig
    from hypercorn.trio import serve

    config = HypercornConfig()
    config.bind = [str(address)]
    config.accesslog = None
    config.errorlog = logging.getLogger("kafkacompat.http.server")
    config.graceful_timeout = 0.5

    async with trio.open_nursery() as nursery:
        # OpsApp speaks ASGI 3 with plain mappings rather than hypercorn's TypedDicts.
        framework = cast(Any, app)
        try:
            binds: list[str] = await nursery.start(partial(serve, framework, config, mode="asgi"))
        except BaseException as exc:
            cause = _sole_cause(exc)
            if isinstance(cause, OSError):
                raise OSError(cause.errno, f"http.listener {address}: {cause.strerror}") from exc
            raise
        bound = HostPort.parse(binds[0].removeprefix("http://"))
        task_status.started(bound)
