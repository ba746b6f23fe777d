"""Fault injection over HTTP, for tests in any language against a `kafkacompat serve` process.

The routes (on the ``http.listener``, only with ``http.faults.enable``) drive ``broker.faults``,
the registry the Python API uses, so a fault behaves, counts and logs the same however it is set:

- ``POST /faults`` with a JSON object: ``kind`` (``fail``, ``delay``, ``stall``,
  ``drop_connection``, ``throttle``, ``refuse_connections``) and the Python method's arguments
  by name (``error`` and ``ms`` stand for ``error_code`` and ``throttle_time_ms``) -> 201 and
  the fault;
- ``GET /faults`` -> the active faults; ``GET /faults/{id}`` -> one, still readable once spent;
- ``DELETE /faults/{id}`` clears one and answers it with its final hits; ``DELETE /faults``
  clears them all (and the hit counts);
- ``POST /faults/{id}/release`` lets a stall's held requests go.

Answers are JSON; an error is ``{"error": "..."}`` with 400 (bad kind, API, error or
argument), 404 (no such fault) or 401/403. With SASL users on the broker every request needs
HTTP basic auth as one of them, as the console's changes do. The app runs on the broker's Trio
loop; the registry is thread-safe anyway.
"""

from __future__ import annotations

import json
import logging
import math
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

from kafkacompat.broker.broker import Broker
from kafkacompat.errors import ErrorCode
from kafkacompat.faults import Delay, Drop, Fail, Fault, Refuse, Stall, Throttle
from kafkacompat.ops.auth import basic_credentials, check_user

__all__ = ["KINDS", "FaultsApi", "JsonAnswer", "fault_json", "parse_fault"]

log = logging.getLogger("kafkacompat.faults")

#: How many faults set over HTTP stay readable by id after they are spent or cleared.
MAX_REMEMBERED = 1000

#: Short names accepted in a request body for the Python API's argument names.
ALIASES = {"error": "error_code", "ms": "throttle_time_ms"}


def _api(value: object) -> bool:
    return isinstance(value, str | int) and not isinstance(value, bool)


def _text(value: object) -> bool:
    return isinstance(value, str)


def _count(value: object) -> bool:
    return value is None or (isinstance(value, int) and not isinstance(value, bool))


def _index(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _seconds(value: object) -> bool:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    return math.isfinite(value) and value >= 0


def _flag(value: object) -> bool:
    return isinstance(value, bool)


_Check = Callable[[object], bool]
#: What each check wants, for the error message.
_WANTS: dict[_Check, str] = {
    _api: "an API name or key",
    _text: "a string",
    _count: "an integer or null",
    _index: "a non-negative integer",
    _seconds: "a non-negative number",
    _flag: "true or false",
}

#: Each kind's arguments (the Python method's names, in its order) and whether each is required.
KINDS: dict[str, dict[str, tuple[_Check, bool]]] = {
    "fail": {
        "api": (_api, True),
        "error_code": (_api, True),
        "times": (_count, False),
        "topic": (_text, False),
        "partition": (_index, False),
        "client_id": (_text, False),
    },
    "delay": {
        "api": (_api, True),
        "seconds": (_seconds, True),
        "times": (_count, False),
        "topic": (_text, False),
        "client_id": (_text, False),
    },
    "stall": {"api": (_api, True), "topic": (_text, False), "client_id": (_text, False)},
    "drop_connection": {
        "api": (_api, True),
        "before_answer": (_flag, False),
        "times": (_count, False),
        "topic": (_text, False),
        "client_id": (_text, False),
    },
    "throttle": {
        "api": (_api, True),
        "throttle_time_ms": (_index, True),
        "times": (_count, False),
        "client_id": (_text, False),
    },
    "refuse_connections": {"seconds": (_seconds, True)},
}

_KIND_OF: dict[type[Fault], str] = {
    Fail: "fail",
    Delay: "delay",
    Stall: "stall",
    Drop: "drop_connection",
    Throttle: "throttle",
    Refuse: "refuse_connections",
}


class BadFault(ValueError):
    """A request body that names no fault the registry can set."""


def _error_code(value: str | int) -> ErrorCode:
    if isinstance(value, int):
        try:
            return ErrorCode(value)
        except ValueError:
            raise BadFault(f"unknown error code {value}") from None
    try:
        return ErrorCode[value.strip().upper()]
    except KeyError:
        raise BadFault(f"unknown error {value!r}") from None


def parse_fault(body: object) -> tuple[str, dict[str, Any]]:
    """The kind and the keyword arguments of the registry method a request body asks for."""
    if not isinstance(body, dict):
        raise BadFault("the body must be a JSON object with a kind and its arguments")
    given = dict(body)
    kind = given.pop("kind", None)
    if not isinstance(kind, str) or kind not in KINDS:
        raise BadFault(f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
    spec = KINDS[kind]
    arguments: dict[str, Any] = {}
    for name, value in given.items():
        full = ALIASES.get(name, name)
        if full not in spec:
            raise BadFault(f"{kind} takes no argument {name!r}; it takes {', '.join(spec)}")
        if full in arguments:
            raise BadFault(f"{name!r} repeats {full!r}")
        check, _required = spec[full]
        if not check(value):
            raise BadFault(f"{name} must be {_WANTS[check]}, got {json.dumps(value)}")
        arguments[full] = value
    missing = [
        name for name, (_check, required) in spec.items() if required and name not in arguments
    ]
    if missing:
        raise BadFault(f"{kind} needs {', '.join(missing)}")
    if "error_code" in arguments:
        arguments["error_code"] = _error_code(arguments["error_code"])
    return kind, arguments


def fault_json(fault: Fault) -> dict[str, Any]:
    """A fault as the API shows it: what it does, to what, how often, its hits."""
    found: dict[str, Any] = {
        "id": fault.id,
        "kind": _KIND_OF.get(type(fault), type(fault).__name__.lower()),
        "api": fault.api if fault.api_key is not None else None,
        "description": fault.describe(),
        "times": fault.times,
        "topic": fault.scope.topic,
        "partition": fault.scope.partition,
        "client_id": fault.client_id,
        "hits": fault.hits,
        "active": fault.active,
    }
    if isinstance(fault, Fail):
        found["error_code"] = fault.code.name
    elif isinstance(fault, Delay | Refuse):
        found["seconds"] = fault.seconds
    elif isinstance(fault, Drop):
        found["before_answer"] = fault.before_answer
    elif isinstance(fault, Throttle):
        found["throttle_time_ms"] = fault.throttle_ms
    elif isinstance(fault, Stall):
        found["released"] = fault.released
    return found


class Request(Protocol):
    """What the routes read of an HTTP request (`kafkacompat.ops.http.Request`)."""

    @property
    def method(self) -> str: ...

    @property
    def path(self) -> str: ...

    @property
    def headers(self) -> dict[str, str]: ...

    @property
    def body(self) -> bytes: ...

    @property
    def segments(self) -> tuple[str, ...]: ...


@dataclass(frozen=True, slots=True)
class JsonAnswer:
    """An answer: its status, its JSON payload and its extra headers."""

    payload: Mapping[str, Any]
    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)

    def body(self) -> bytes:
        return (json.dumps(self.payload, indent=1) + "\n").encode()


def _json(payload: Mapping[str, Any], status: int = 200, **headers: str) -> JsonAnswer:
    return JsonAnswer(payload, status, list(headers.items()))


def _error(message: str, status: int = 400, **headers: str) -> JsonAnswer:
    return _json({"error": message}, status, **headers)


class FaultsApi:
    """The ``/faults`` routes of one broker (see the module docstring)."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.enabled = broker.config.get_bool("http.faults.enable")
        #: The faults set over HTTP, oldest first, readable by id after they are spent.
        self._remembered: OrderedDict[int, Fault] = OrderedDict()

    async def handle(self, request: Request) -> JsonAnswer:
        """Answer a request under ``/faults``."""
        if not self.enabled:
            return _error("fault injection over HTTP is off (http.faults.enable=false)", 404)
        refused = await self._refused(request)
        if refused is not None:
            return refused
        parts = request.segments[1:]
        if not parts:
            return self._collection(request)
        fault = self._find(parts[0])
        if fault is None:
            return _error(f"no fault {parts[0]!r}", 404)
        if len(parts) == 1:
            if request.method == "GET":
                return _json(fault_json(fault))
            if request.method == "DELETE":
                fault.clear()
                log.info("fault injection: cleared #%d over HTTP (%d hits)", fault.id, fault.hits)
                return _json(fault_json(fault))
            return _error(f"{request.method} is not allowed here", 405, allow="GET, DELETE")
        if parts[1:] == ("release",):
            if request.method != "POST":
                return _error(f"{request.method} is not allowed here", 405, allow="POST")
            if not isinstance(fault, Stall):
                return _error(f"fault {fault.id} is not a stall: only a stall is released")
            fault.release()
            log.info("fault injection: released #%d over HTTP", fault.id)
            return _json(fault_json(fault))
        return _error(f"no such resource {request.path!r}", 404)

    def _collection(self, request: Request) -> JsonAnswer:
        faults = self.broker.faults
        if request.method == "GET":
            return _json({"faults": [fault_json(f) for f in faults.active]})
        if request.method == "DELETE":
            cleared = faults.active
            faults.clear()
            self._remembered.clear()
            log.info("fault injection: cleared all (%d) over HTTP", len(cleared))
            return _json({"cleared": [fault_json(f) for f in cleared]})
        if request.method == "POST":
            return self._add(request)
        return _error(f"{request.method} is not allowed here", 405, allow="GET, POST, DELETE")

    def _add(self, request: Request) -> JsonAnswer:
        try:
            body = json.loads(request.body)
        except (ValueError, UnicodeDecodeError) as exc:
            return _error(f"the body is not JSON: {exc}")
        try:
            kind, arguments = parse_fault(body)
            fault: Fault = getattr(self.broker.faults, kind)(**arguments)
        except ValueError as exc:  # BadFault, and what the registry refuses
            return _error(str(exc))
        self._remember(fault)
        return _json(fault_json(fault), 201, location=f"/faults/{fault.id}")

    def _remember(self, fault: Fault) -> None:
        self._remembered[fault.id] = fault
        while len(self._remembered) > MAX_REMEMBERED:
            self._remembered.popitem(last=False)

    def _find(self, text: str) -> Fault | None:
        """A fault set over HTTP (spent or not), or an active one set otherwise."""
        if not text.isdigit():
            return None
        number = int(text)
        return self._remembered.get(number) or self.broker.faults.find(number)

    async def _refused(self, request: Request) -> JsonAnswer | None:
        """The answer to a request that may not change faults; None: it may."""
        origin = request.headers.get("origin")
        if origin and urlsplit(origin).netloc != request.headers.get("host"):
            # Browsers send a page's requests to any address: only this listener's own pages.
            return _error("requests from other sites' pages are refused", 403)
        if not self._has_users():
            return None
        given = basic_credentials(request.headers.get("authorization", ""))
        if given is None or not await check_user(self.broker, *given):
            realm = 'Basic realm="kafkacompat faults"'
            return _error("authentication required", 401, **{"www-authenticate": realm})
        return None

    def _has_users(self) -> bool:
        """Whether the broker has SASL users (PLAIN on a listener, or SCRAM credentials)."""
        sasl = self.broker.services.security.sasl
        if any(sasl.plain_users(listener.name) for listener in self.broker.listeners):
            return True
        return next(self.broker.services.security.scram_credentials.entries(), None) is not None
