"""Maps API keys to handlers; the ApiVersions answer is derived from what is registered here."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

from kafkacompat.protocol.messages import APIS

if TYPE_CHECKING:
    from kafkacompat.broker.context import RequestContext

#: A handler takes the request context and the decoded request; it returns the response object,
#: or None when no response is sent (acks=0 produce).
HandlerFunc = Callable[["RequestContext", Any], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Handler:
    api_key: int
    min_version: int
    max_version: int
    func: HandlerFunc
    request_module: ModuleType
    response_module: ModuleType

    @property
    def name(self) -> str:
        return str(self.request_module.__name__.rsplit(".", 1)[-1].removesuffix("_request"))


_REGISTERED: dict[int, Handler] = {}


def handles(
    api_key: int, min_version: int | None = None, max_version: int | None = None
) -> Callable[[HandlerFunc], HandlerFunc]:
    """Register a handler for an API over a version range (by default every stable version)."""
    request_module, response_module = APIS[api_key]
    low = request_module.MIN_VERSION if min_version is None else min_version
    high = max_version
    if high is None:
        high = request_module.MAX_VERSION - (1 if request_module.LATEST_VERSION_UNSTABLE else 0)
    if not request_module.MIN_VERSION <= low <= high <= request_module.MAX_VERSION:
        raise ValueError(f"versions {low}-{high} outside the schema of API {api_key}")

    def register(func: HandlerFunc) -> HandlerFunc:
        if api_key in _REGISTERED:
            raise ValueError(f"API {api_key} registered twice")
        _REGISTERED[api_key] = Handler(api_key, low, high, func, request_module, response_module)
        return func

    return register


def registered_handlers() -> dict[int, Handler]:
    """Every handler registered by the modules imported so far, by API key."""
    return dict(_REGISTERED)
