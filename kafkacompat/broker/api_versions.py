"""ApiVersions: the versions of every API this broker serves, read off the registered handlers."""

from __future__ import annotations

import re

from kafkacompat.broker.context import RequestContext
from kafkacompat.broker.router import handles
from kafkacompat.broker.services import BrokerServices
from kafkacompat.errors import ErrorCode
from kafkacompat.protocol.messages.api_versions_request import API_KEY as API_VERSIONS
from kafkacompat.protocol.messages.api_versions_request import ApiVersionsRequest
from kafkacompat.protocol.messages.api_versions_response import ApiVersion, ApiVersionsResponse

# Kafka accepts client software names and versions of this shape only.
_SOFTWARE_FIELD = re.compile(r"[a-zA-Z0-9](?:[a-zA-Z0-9\-.]*[a-zA-Z0-9])?\Z")


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
