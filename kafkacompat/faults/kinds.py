"""The kinds of fault, what each applies to and its hit count; `Faults` keeps them."""

from __future__ import annotations

import threading
import time
from contextlib import suppress
from types import TracebackType
from typing import Any, Protocol

import trio

from kafkacompat.broker.context import RequestContext
from kafkacompat.errors import ErrorCode
from kafkacompat.faults.answers import Scope, touches
from kafkacompat.protocol.messages import API_MODULES

__all__ = [
    "Delay",
    "Drop",
    "Fail",
    "Fault",
    "Refuse",
    "Registry",
    "Stall",
    "Throttle",
    "api_key_of",
    "api_name",
]


class Registry(Protocol):
    """What a fault needs of the registry that keeps it."""

    lock: threading.Lock

    def remove(self, fault: Fault) -> None: ...

    def is_active(self, fault: Fault) -> bool: ...


def api_name(api_key: int) -> str:
    """Kafka's name of an API: ``0`` -> ``"Produce"``."""
    request = API_MODULES[api_key][0].removesuffix("_request")
    return "".join(word.capitalize() for word in request.split("_"))


def api_key_of(api: str | int) -> int:
    """An API key from a key or a name (``"Produce"``, ``"list_offsets"``, ``"ListOffsets"``)."""
    if isinstance(api, int):
        if api not in API_MODULES:
            raise ValueError(f"unknown Kafka API key {api}")
        return api
    wanted = api.replace("_", "").replace("-", "").lower()
    for key in API_MODULES:
        if api_name(key).lower() == wanted:
            return key
    raise ValueError(f"unknown Kafka API {api!r}")


class Fault:
    """One fault: what it applies to, how often (``times``; None: until cleared), its hits."""

    def __init__(
        self,
        registry: Registry,
        api_key: int | None,
        *,
        times: int | None = None,
        scope: Scope | None = None,
        client_id: str | None = None,
    ) -> None:
        if times is not None and times < 1:
            raise ValueError(f"times must be at least 1, got {times}")
        self.registry = registry
        self.api_key = api_key
        self.times = times
        self.scope = scope or Scope()
        self.client_id = client_id
        self.hits = 0
        #: The registry's number for the fault (from 1, in the order set); 0 until it is set.
        self.id = 0

    @property
    def api(self) -> str:
        return api_name(self.api_key) if self.api_key is not None else "connections"

    @property
    def active(self) -> bool:
        return self.registry.is_active(self)

    def applies(self, context: RequestContext, request: Any, api_key: int) -> bool:
        if self.client_id is not None and context.client_id != self.client_id:
            return False
        return touches(context, api_key, request, self.scope)

    def clear(self) -> None:
        """Stop injecting this fault (its hits stay readable)."""
        self.registry.remove(self)

    def __enter__(self) -> Fault:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.clear()

    def describe(self) -> str:
        raise NotImplementedError

    def __repr__(self) -> str:
        where = [f"{k} {v!r}" for k, v in self._filters() if v is not None]
        often = "until cleared" if self.times is None else f"{self.times} times"
        return f"<{self.describe()}, {often}{''.join(', ' + w for w in where)}, {self.hits} hits>"

    def _filters(self) -> list[tuple[str, object]]:
        return [
            ("topic", self.scope.topic),
            ("partition", self.scope.partition),
            ("client_id", self.client_id),
        ]


class Fail(Fault):
    """Answer with an error code instead of serving (what the scope covers)."""

    def __init__(self, registry: Registry, api_key: int, code: ErrorCode, **kwargs: Any) -> None:
        super().__init__(registry, api_key, **kwargs)
        self.code = code

    def describe(self) -> str:
        return f"fail {self.api} with {self.code.name}"


class Delay(Fault):
    """Wait before answering."""

    def __init__(self, registry: Registry, api_key: int, seconds: float, **kwargs: Any) -> None:
        super().__init__(registry, api_key, **kwargs)
        self.seconds = seconds

    def describe(self) -> str:
        return f"delay {self.api} by {self.seconds:g} s"


class Throttle(Fault):
    """Answer with ``throttle_time_ms`` set, as a broker enforcing quotas does."""

    def __init__(self, registry: Registry, api_key: int, throttle_ms: int, **kwargs: Any) -> None:
        super().__init__(registry, api_key, **kwargs)
        self.throttle_ms = throttle_ms

    def describe(self) -> str:
        return f"throttle {self.api} by {self.throttle_ms} ms"


class Drop(Fault):
    """Close the connection after serving the request, or instead (``before_answer``)."""

    def __init__(
        self, registry: Registry, api_key: int, before_answer: bool, **kwargs: Any
    ) -> None:
        super().__init__(registry, api_key, **kwargs)
        self.before_answer = before_answer

    def describe(self) -> str:
        when = "instead of" if self.before_answer else "after"
        return f"drop the connection {when} answering {self.api}"


class Stall(Fault):
    """Hold every matching request until `release()` (or until cleared)."""

    def __init__(self, registry: Registry, api_key: int, **kwargs: Any) -> None:
        super().__init__(registry, api_key, **kwargs)
        self.released = False
        self._waiters: list[tuple[trio.lowlevel.TrioToken, trio.Event]] = []

    def describe(self) -> str:
        return f"stall {self.api}"

    def release(self) -> None:
        """Let the held requests and all later ones through; callable from any thread."""
        self.clear()

    def _release(self) -> None:
        """Called by the registry, under its lock, when the fault is cleared."""
        self.released = True
        waiters, self._waiters = self._waiters, []
        for token, event in waiters:
            with suppress(trio.RunFinishedError):
                token.run_sync_soon(event.set)

    async def wait(self) -> None:
        with self.registry.lock:
            if self.released:
                return
            event = trio.Event()
            self._waiters.append((trio.lowlevel.current_trio_token(), event))
        await event.wait()


class Refuse(Fault):
    """Close new connections at once until a deadline."""

    def __init__(self, registry: Registry, seconds: float) -> None:
        super().__init__(registry, None)
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds

    def describe(self) -> str:
        return f"refuse connections for {self.seconds:g} s"
