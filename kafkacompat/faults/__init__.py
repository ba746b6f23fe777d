"""Fault injection: a broker that misbehaves on purpose, over the real protocol, for users' tests.

``broker.faults`` holds the faults of one broker. Each fault applies to the requests of one API
(by name, ``"Produce"``, or key), optionally only to a topic, a partition or a client id; it is
logged once when set, counts its ``hits`` and is a context manager that clears it on exit::

    with broker.faults.fail("Produce", "NOT_LEADER_OR_FOLLOWER", times=2) as fault:
        ...  # the client retries
    assert fault.hits == 2

Thread-safety: tests set and clear faults from their own thread while the broker serves on its
Trio loop, so the registry's state is guarded by a `threading.Lock`, held only for bookkeeping
and never across an await; stalled requests are woken through the loop's `TrioToken`. While no
fault is set the pipeline's interceptor is unset and requests pay one truth test.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from typing import Any, TypeVar

import trio

from kafkacompat.broker.context import RequestContext
from kafkacompat.broker.dispatch import DropConnection, RequestPipeline
from kafkacompat.broker.router import Handler
from kafkacompat.broker.session import Session
from kafkacompat.errors import ErrorCode
from kafkacompat.faults.answers import PARTITIONED_APIS, Scope, answer_with_error, can_fail
from kafkacompat.faults.kinds import (
    Delay,
    Drop,
    Fail,
    Fault,
    Refuse,
    Stall,
    Throttle,
    api_key_of,
    api_name,
)

__all__ = [
    "Delay",
    "Drop",
    "Fail",
    "Fault",
    "Faults",
    "Refuse",
    "Scope",
    "Stall",
    "Throttle",
    "api_key_of",
    "api_name",
]

log = logging.getLogger("kafkacompat.faults")

F = TypeVar("F", bound=Fault)


class Faults:
    """The faults one broker injects; see the module docstring. Every method is thread-safe."""

    def __init__(self, *pipelines: RequestPipeline) -> None:
        self.lock = threading.Lock()
        self._pipelines = list(pipelines)
        self._active: list[Fault] = []
        self._hits: Counter[int | None] = Counter()
        self._last_id = 0

    def attach(self, pipeline: RequestPipeline) -> None:
        """Inject this registry's faults into the requests of one more pipeline."""
        with self.lock:
            self._pipelines.append(pipeline)
            self._sync()

    # Setting faults

    def fail(
        self,
        api: str | int,
        error_code: ErrorCode | int | str,
        times: int | None = 1,
        *,
        topic: str | None = None,
        partition: int | None = None,
        client_id: str | None = None,
    ) -> Fail:
        """Answer the next ``times`` matching requests with ``error_code`` where Kafka puts it;
        with a topic or partition, only what they cover errs and the rest is served."""
        key = self._api(api, topic, partition)
        if not can_fail(key):
            raise ValueError(f"no error answer is known for {api_name(key)}")
        code = ErrorCode[error_code] if isinstance(error_code, str) else ErrorCode(error_code)
        scope = Scope(topic, partition)
        return self._add(Fail(self, key, code, times=times, scope=scope, client_id=client_id))

    def delay(
        self,
        api: str | int,
        seconds: float,
        times: int | None = None,
        *,
        topic: str | None = None,
        client_id: str | None = None,
    ) -> Delay:
        """Wait ``seconds`` (without blocking the broker) before answering."""
        key = self._api(api, topic, None)
        scope = Scope(topic)
        return self._add(Delay(self, key, seconds, times=times, scope=scope, client_id=client_id))

    def stall(
        self, api: str | int, *, topic: str | None = None, client_id: str | None = None
    ) -> Stall:
        """Hold matching requests (and the connections they came on) until ``.release()``."""
        key = self._api(api, topic, None)
        return self._add(Stall(self, key, scope=Scope(topic), client_id=client_id))

    def drop_connection(
        self,
        api: str | int,
        before_answer: bool = False,
        times: int | None = 1,
        *,
        topic: str | None = None,
        client_id: str | None = None,
    ) -> Drop:
        """Close the connection after serving a matching request, or instead of serving it."""
        key = self._api(api, topic, None)
        fault = Drop(self, key, before_answer, times=times, scope=Scope(topic), client_id=client_id)
        return self._add(fault)

    def throttle(
        self,
        api: str | int,
        throttle_time_ms: int,
        times: int | None = None,
        *,
        client_id: str | None = None,
    ) -> Throttle:
        """Set ``throttle_time_ms`` in the answers (the request is served normally)."""
        key = self._api(api, None, None)
        return self._add(Throttle(self, key, throttle_time_ms, times=times, client_id=client_id))

    def refuse_connections(self, seconds: float) -> Refuse:
        """Close every connection accepted in the next ``seconds`` at once."""
        return self._add(Refuse(self, seconds))

    # Reading and clearing

    @property
    def active(self) -> list[Fault]:
        with self.lock:
            return list(self._active)

    def find(self, fault_id: int) -> Fault | None:
        """The active fault numbered ``fault_id``; None when there is none."""
        with self.lock:
            return next((f for f in self._active if f.id == fault_id), None)

    def is_active(self, fault: Fault) -> bool:
        with self.lock:
            return fault in self._active

    def hits(self, api: str | int | None = None) -> int:
        """Requests (or refused connections) hit by faults on ``api`` since the last `clear()`;
        all of them without ``api``."""
        with self.lock:
            if api is None:
                return sum(self._hits.values())
            return self._hits[api_key_of(api)]

    def remove(self, fault: Fault) -> None:
        with self.lock:
            self._remove(fault)
            self._sync()

    def clear(self) -> None:
        """Clear every fault (stalled requests go on) and the hit counts."""
        with self.lock:
            for fault in list(self._active):
                self._remove(fault)
            self._hits.clear()
            self._sync()

    # The interceptor the pipeline calls while a fault is set

    async def intercept(self, context: RequestContext, request: Any, handler: Handler) -> Any:
        """Serve one request through the faults set for it."""
        fail, delay, stalls, drop, throttle = self._take(context, request, handler.api_key)
        if delay:
            await trio.sleep(delay)
        for stall in stalls:
            await stall.wait()
        if drop is not None and drop.before_answer:
            raise DropConnection(f"fault injection: dropped instead of answering {drop.api}")
        if fail is not None:
            response = await answer_with_error(context, request, handler, fail.code, fail.scope)
        else:
            response = await handler.func(context, request)
        if throttle is not None and hasattr(response, "throttle_time_ms"):
            response.throttle_time_ms = throttle.throttle_ms
        if drop is not None:
            raise DropConnection(f"fault injection: dropped after answering {drop.api}")
        return response

    def refuses_connection(self, session: Session) -> bool:
        with self.lock:
            now = time.monotonic()
            for fault in list(self._active):
                if isinstance(fault, Refuse):
                    if now >= fault.deadline:
                        self._remove(fault)
                        continue
                    self._hit(fault)
                    self._sync()
                    return True
            self._sync()
        return False

    def _take(
        self, context: RequestContext, request: Any, api_key: int
    ) -> tuple[Fail | None, float, list[Stall], Drop | None, Throttle | None]:
        """The faults that apply to this request, each counting the hit."""
        fail: Fail | None = None
        drop: Drop | None = None
        throttle: Throttle | None = None
        delay = 0.0
        stalls: list[Stall] = []
        with self.lock:
            for fault in list(self._active):
                if fault.api_key != api_key or not fault.applies(context, request, api_key):
                    continue
                if isinstance(fault, Fail):
                    if fail is not None:
                        continue
                    fail = fault
                elif isinstance(fault, Drop):
                    if drop is not None:
                        continue
                    drop = fault
                elif isinstance(fault, Throttle):
                    if throttle is not None:
                        continue
                    throttle = fault
                elif isinstance(fault, Delay):
                    delay += fault.seconds
                elif isinstance(fault, Stall):
                    stalls.append(fault)
                self._hit(fault)
            self._sync()
        return fail, delay, stalls, drop, throttle

    def _hit(self, fault: Fault) -> None:
        fault.hits += 1
        self._hits[fault.api_key] += 1
        if fault.times is not None and fault.hits >= fault.times:
            self._remove(fault)

    def _api(self, api: str | int, topic: str | None, partition: int | None) -> int:
        key = api_key_of(api)
        served = all(key in p.handlers for p in self._pipelines)
        if not served:
            raise ValueError(f"{api_name(key)} is not served by this broker")
        if (topic is not None or partition is not None) and key not in PARTITIONED_APIS:
            raise ValueError(f"{api_name(key)} requests name no topics or partitions")
        return key

    def _add(self, fault: F) -> F:
        with self.lock:
            self._last_id += 1
            fault.id = self._last_id
            self._active.append(fault)
            self._sync()
        log.info("fault injection: #%d %s", fault.id, fault.describe())
        return fault

    def _remove(self, fault: Fault) -> None:
        """Under the lock."""
        if fault in self._active:
            self._active.remove(fault)
        if isinstance(fault, Stall):
            fault._release()

    def _sync(self) -> None:
        """Under the lock: the interceptor is set exactly while a fault is."""
        interceptor = self if self._active else None
        for pipeline in self._pipelines:
            pipeline.intercept = interceptor
