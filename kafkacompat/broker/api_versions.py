"""ApiVersions: the versions of every API this broker serves, read off the registered handlers.

The served versions can be narrowed to those of an older Kafka release
(`kafkacompat.emulate.kafka.version`) and capped per API (`kafkacompat.api.max.versions`); the
narrowed handlers are what the pipeline dispatches to, so what is advertised is what is accepted.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import replace

from kafkacompat.broker.context import RequestContext
from kafkacompat.broker.kafka_releases import ADVERTISED_MIN, RELEASES
from kafkacompat.broker.router import Handler, handles
from kafkacompat.broker.services import ApiRange, BrokerServices
from kafkacompat.config import Config, ConfigError
from kafkacompat.errors import ErrorCode
from kafkacompat.protocol.messages import API_MODULES
from kafkacompat.protocol.messages.api_versions_request import API_KEY as API_VERSIONS
from kafkacompat.protocol.messages.api_versions_request import ApiVersionsRequest
from kafkacompat.protocol.messages.api_versions_response import ApiVersion, ApiVersionsResponse

# Kafka accepts client software names and versions of this shape only.
_SOFTWARE_FIELD = re.compile(r"[a-zA-Z0-9](?:[a-zA-Z0-9\-.]*[a-zA-Z0-9])?\Z")

EMULATE_SETTING = "kafkacompat.emulate.kafka.version"
MAX_VERSIONS_SETTING = "kafkacompat.api.max.versions"

log = logging.getLogger("kafkacompat.broker")


def _squash(name: str) -> str:
    return name.lower().replace("_", "").replace("-", "")


#: API names compared without case, underscores or dashes: "OffsetForLeaderEpoch" matches
#: the module offset_for_leader_epoch_request.
_KEYS_BY_NAME = {
    _squash(request.removesuffix("_request")): key
    for key, (request, _response) in API_MODULES.items()
}


def parse_release(text: str) -> str | None:
    """The Kafka release named by ``text`` (``"2.8"``), or None for an empty text (no emulation)."""
    name = text.strip()
    if not name:
        return None
    if name not in RELEASES:
        raise ConfigError(
            f"{EMULATE_SETTING}: unknown Kafka release {name!r} (one of {', '.join(RELEASES)})"
        )
    return name


def parse_max_versions(text: str) -> dict[int, int]:
    """``"Fetch=11,Produce=7"`` (Kafka's API names, any case) as API key -> highest version."""
    caps: dict[int, int] = {}
    for item in text.split(","):
        if not item.strip():
            continue
        name, sep, number = item.partition("=")
        key = _KEYS_BY_NAME.get(_squash(name.strip()))
        if not sep or key is None:
            raise ConfigError(f"{MAX_VERSIONS_SETTING}: expected API=VERSION, got {item.strip()!r}")
        try:
            version = int(number)
        except ValueError:
            version = -1
        if version < 0:
            raise ConfigError(f"{MAX_VERSIONS_SETTING}: bad version in {item.strip()!r}")
        caps[key] = min(version, caps.get(key, version))
    return caps


def check_version_settings(config: Config) -> None:
    """Raise ConfigError when the emulated release or the per-API caps cannot be parsed."""
    parse_release(config.get_str(EMULATE_SETTING))
    parse_max_versions(config.get_str(MAX_VERSIONS_SETTING))


def limit_versions(
    handlers: Mapping[int, Handler], config: Config
) -> tuple[dict[int, Handler], tuple[ApiRange, ...]]:
    """The handlers to dispatch to and the ranges to advertise, once the emulated release and
    the caps are applied: each range is what we serve, intersected with what the release
    serves, capped; an API left with no version is not served at all."""
    release = parse_release(config.get_str(EMULATE_SETTING))
    caps = parse_max_versions(config.get_str(MAX_VERSIONS_SETTING))
    table = RELEASES[release] if release else None
    advertised_min = ADVERTISED_MIN.get(release, {}) if release else {}
    served: dict[int, Handler] = {}
    ranges: list[ApiRange] = []
    for key, handler in sorted(handlers.items()):
        low, high = handler.min_version, handler.max_version
        if table is not None:
            if key not in table:
                continue
            low, high = max(low, table[key][0]), min(high, table[key][1])
        high = min(high, caps.get(key, high))
        if low > high:
            log.warning("%s is not served: the caps leave no version of it", handler.name)
            continue
        served[key] = replace(handler, min_version=low, max_version=high)
        shown = max(handler.min_version, advertised_min[key]) if key in advertised_min else low
        ranges.append((key, min(low, shown), high))
    if release or caps:
        capped = ", ".join(f"{handlers[k].name}={v}" for k, v in caps.items() if k in handlers)
        log.info(
            "serving the API versions of Kafka %s; caps: %s", release or "(all)", capped or "none"
        )
    return served, tuple(ranges)


def api_versions_response(
    services: BrokerServices, error: ErrorCode = ErrorCode.NONE
) -> ApiVersionsResponse:
    keys = [ApiVersion(key, low, high) for key, low, high in services.api_ranges]
    return ApiVersionsResponse(error_code=error, api_keys=keys)


@handles(API_VERSIONS)
async def handle_api_versions(
    context: RequestContext, request: ApiVersionsRequest
) -> ApiVersionsResponse:
    if context.api_version >= 3:
        name, version = request.client_software_name, request.client_software_version
        if not (_SOFTWARE_FIELD.match(name) and _SOFTWARE_FIELD.match(version)):
            return ApiVersionsResponse(error_code=ErrorCode.INVALID_REQUEST)
        context.session.client_software_name = name
        context.session.client_software_version = version
    return api_versions_response(context.services)
