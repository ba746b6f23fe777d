"""DescribeClientQuotas and AlterClientQuotas: read and change the client quota definitions."""

from __future__ import annotations

import trio

from kafkacompat.broker.context import RequestContext
from kafkacompat.broker.router import handles
from kafkacompat.errors import ErrorCode, KafkaError
from kafkacompat.protocol.messages import alter_client_quotas_response as alter_out
from kafkacompat.protocol.messages import describe_client_quotas_response as describe_out
from kafkacompat.protocol.messages.alter_client_quotas_request import (
    API_KEY as ALTER_CLIENT_QUOTAS,
)
from kafkacompat.protocol.messages.alter_client_quotas_request import AlterClientQuotasRequest
from kafkacompat.protocol.messages.describe_client_quotas_request import (
    API_KEY as DESCRIBE_CLIENT_QUOTAS,
)
from kafkacompat.protocol.messages.describe_client_quotas_request import (
    DescribeClientQuotasRequest,
)
from kafkacompat.security.acls import AclOperation
from kafkacompat.security.quota_store import (
    IP,
    Alteration,
    FilterComponent,
    entity_of,
    is_ip_literal,
)

_CLUSTER_DENIED = "Cluster authorization failed."


@handles(DESCRIBE_CLIENT_QUOTAS)
async def handle_describe_client_quotas(
    context: RequestContext, request: DescribeClientQuotasRequest
) -> describe_out.DescribeClientQuotasResponse:
    if not context.authorize_cluster(AclOperation.DESCRIBE_CONFIGS):
        return describe_out.DescribeClientQuotasResponse(
            error_code=ErrorCode.CLUSTER_AUTHORIZATION_FAILED,
            error_message=_CLUSTER_DENIED,
            entries=None,
        )
    components = [FilterComponent(c.entity_type, c.match_type, c.match) for c in request.components]
    try:
        found = context.services.security.quotas.store.describe(components, request.strict)
    except KafkaError as error:
        return describe_out.DescribeClientQuotasResponse(
            error_code=error.code, error_message=str(error), entries=None
        )
    entries = [
        describe_out.EntryData(
            entity=[describe_out.EntityData(kind, name) for kind, name in entity],
            values=[describe_out.ValueData(key, value) for key, value in quotas.items()],
        )
        for entity, quotas in found
    ]
    return describe_out.DescribeClientQuotasResponse(error_message=None, entries=entries)


@handles(ALTER_CLIENT_QUOTAS)
async def handle_alter_client_quotas(
    context: RequestContext, request: AlterClientQuotasRequest
) -> alter_out.AlterClientQuotasResponse:
    if not context.authorize_cluster(AclOperation.ALTER_CONFIGS):
        return alter_out.AlterClientQuotasResponse(
            entries=[
                alter_out.EntryData(
                    error_code=ErrorCode.CLUSTER_AUTHORIZATION_FAILED,
                    error_message=_CLUSTER_DENIED,
                    entity=[
                        alter_out.EntityData(e.entity_type, e.entity_name) for e in entry.entity
                    ],
                )
                for entry in request.entries
            ]
        )
    alterations = [
        Alteration(
            entity_of((e.entity_type, e.entity_name) for e in entry.entity),
            [(op.key, None if op.remove else op.value) for op in entry.ops],
        )
        for entry in request.entries
    ]
    resolvable = await _resolvable_hosts(alterations)
    results = context.services.security.quotas.alter(
        alterations,
        request.validate_only,
        lambda name: is_ip_literal(name) or name in resolvable,
    )
    entries = [
        alter_out.EntryData(
            error_code=result.error,
            error_message=result.message,
            entity=[alter_out.EntityData(kind, name) for kind, name in result.entity],
        )
        for result in results
    ]
    return alter_out.AlterClientQuotasResponse(entries=entries)


async def _resolvable_hosts(alterations: list[Alteration]) -> set[str]:
    """The host names (not IP literals) of ``ip`` entities that resolve: Kafka accepts an IP
    quota for any address or resolvable host."""
    names = {
        name
        for alteration in alterations
        for kind, name in alteration.entity
        if kind == IP and name and not is_ip_literal(name)
    }
    resolvable = set()
    for name in names:
        try:
            await trio.socket.getaddrinfo(name, None)
        except (OSError, UnicodeError):
            continue
        resolvable.add(name)
    return resolvable
