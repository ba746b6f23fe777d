"""A broker with the standard authorizer, driven request by request as any principal (no
sockets): what the ACL handler tests share."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from kafkacompat.broker.broker import Broker
from kafkacompat.broker.session import Session
from kafkacompat.protocol.headers import request_header_version, response_header_version
from kafkacompat.protocol.messages import APIS, request_header
from kafkacompat.protocol.messages.request_header import RequestHeader
from kafkacompat.security.acl_binding import AclBinding
from kafkacompat.security.acls import AclOperation, PatternType, PermissionType, ResourceType
from kafkacompat.security.authorizer import Authorizer
from kafkacompat.testing import local_config

STANDARD = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
ADMIN = "User:admin"
ALICE = "User:alice"
SECURED = {"authorizer.class.name": STANDARD, "super.users": ADMIN}
#: What a response carries for authorized operations that were not asked for.
OMITTED = -2147483648


def secured_broker(data_dir: Path, **settings: int | bool | str) -> Broker:
    config = local_config(data_dir)
    return Broker(replace(config, settings={**config.settings, **SECURED, **settings}))


def authorizer(broker: Broker) -> Authorizer:
    found = broker.services.security.authorizer
    assert found is not None
    return found


def grant(
    broker: Broker,
    resource_type: ResourceType,
    name: str,
    *operations: AclOperation,
    principal: str = ALICE,
    permission: PermissionType = PermissionType.ALLOW,
    pattern: PatternType = PatternType.LITERAL,
) -> None:
    """Add one binding per operation for ``principal`` from any host."""
    errors = authorizer(broker).create_acls(
        [
            AclBinding(resource_type, name, pattern, principal, "*", op, permission)
            for op in operations
        ]
    )
    assert errors == [None] * len(operations)


def bits(*operations: AclOperation) -> int:
    return sum(1 << op for op in operations)


async def call(
    broker: Broker, principal: str, api_key: int, version: int, request: Any, peer: str = ""
) -> Any:
    """Send ``request`` through the broker's pipeline as ``principal``; the decoded response."""
    request_module, response_module = APIS[api_key]
    frame = bytearray()
    request_header.ENCODERS[request_header_version(api_key, version)](
        RequestHeader(api_key, version, 9, "acl-test"), frame
    )
    request_module.ENCODERS[version](request, frame)
    session = Session(peer or "127.0.0.1:40000", principal=principal)
    answer = await broker.pipeline.handle_frame(bytes(frame), session)
    assert answer is not None
    body = memoryview(bytes(answer))[4:]
    pos = 4 + (1 if response_header_version(api_key, version) >= 1 else 0)
    response, end = response_module.DECODERS[version](body, pos)
    assert end == len(body)
    return response
