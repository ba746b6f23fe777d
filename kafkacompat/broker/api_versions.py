"""ApiVersions: the versions of every API this broker serves, read off the registered handlers."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from kafkacompat.broker.context import RequestContext
from kafkacompat.broker.router import handles
from kafkacompat.errors import ErrorCode
from kafkacompat.protocol.messages.api_versions_request import ApiVersionsRequest
from kafkacompat.protocol.messages.api_versions_response import ApiVersion, ApiVersionsResponse

if TYPE_CHECKING:
    from kafkacompat.broker.broker import Broker

API_VERSIONS = 18

# Kafka accepts client software names and versions of this shape only.
_SOFTWARE_FIELD = re.compile(r"[a-zA-Z0-9](?:[a-zA-Z0-9\-.]*[a-zA-Z0-9])?\Z")


def api_versions_response(broker: Broker, error: ErrorCode = ErrorCode.NONE) -> ApiVersionsResponse:
    keys = [
        ApiVersion(h.api_key, h.min_version, h.max_version)
        for h in sorted(broker.handlers.values(), key=lambda h: h.api_key)
    ]
    return ApiVersionsResponse(error_code=error, api_keys=keys)


@handles(API_VERSIONS)
async def handle_api_versions(
    context: RequestContext, request: ApiVersionsRequest
) -> ApiVersionsResponse:
    if context.api_version >= 3 and not (
        _SOFTWARE_FIELD.match(request.client_software_name)
        and _SOFTWARE_FIELD.match(request.client_software_version)
    ):
        return ApiVersionsResponse(error_code=ErrorCode.INVALID_REQUEST)
    return api_versions_response(context.broker)
