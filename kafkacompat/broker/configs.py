"""DescribeConfigs, AlterConfigs and IncrementalAlterConfigs for topics, the broker and its loggers.

Topic changes are validated, persisted with the topic's metadata and applied to the live logs.
Broker settings are fixed at start-up here: altering one is refused as Kafka refuses read-only
settings, and the values to change at start-up are given with ``-o NAME=VALUE``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from enum import IntEnum
from typing import Protocol

from kafkacompat.broker.config_catalog import (
    BROKER_CONFIGS,
    ConfigEntry,
    ConfigSource,
    ResourceType,
    broker_config_entries,
    logger_entries,
    topic_config_entries,
)
from kafkacompat.broker.context import RequestContext
from kafkacompat.broker.router import handles
from kafkacompat.cluster.topic_configs import TOPIC_CONFIGS, ConfigType
from kafkacompat.errors import ErrorCode, KafkaError
from kafkacompat.protocol.messages.alter_configs_request import API_KEY as ALTER_CONFIGS
from kafkacompat.protocol.messages.alter_configs_request import AlterConfigsRequest
from kafkacompat.protocol.messages.alter_configs_response import (
    AlterConfigsResourceResponse,
    AlterConfigsResponse,
)
from kafkacompat.protocol.messages.describe_configs_request import API_KEY as DESCRIBE_CONFIGS
from kafkacompat.protocol.messages.describe_configs_request import (
    DescribeConfigsRequest,
    DescribeConfigsResource,
)
from kafkacompat.protocol.messages.describe_configs_response import (
    DescribeConfigsResourceResult,
    DescribeConfigsResponse,
    DescribeConfigsResult,
    DescribeConfigsSynonym,
)
from kafkacompat.protocol.messages.incremental_alter_configs_request import (
    API_KEY as INCREMENTAL_ALTER_CONFIGS,
)
from kafkacompat.protocol.messages.incremental_alter_configs_request import (
    AlterableConfig as IncrementalConfig,
)
from kafkacompat.protocol.messages.incremental_alter_configs_request import (
    IncrementalAlterConfigsRequest,
)
from kafkacompat.protocol.messages.incremental_alter_configs_response import (
    AlterConfigsResourceResponse as IncrementalResourceResponse,
)
from kafkacompat.protocol.messages.incremental_alter_configs_response import (
    IncrementalAlterConfigsResponse,
)
from kafkacompat.security.acls import CLUSTER_NAME, AclOperation
from kafkacompat.security.acls import ResourceType as AclResource
from kafkacompat.storage.log_config import LogConfig, validate_topic_configs
from kafkacompat.storage.topic_names import validate_topic_name


class OpType(IntEnum):
    SET = 0
    DELETE = 1
    APPEND = 2
    SUBTRACT = 3


class _Resource(Protocol):
    resource_type: int
    resource_name: str


# -- resources ----------------------------------------------------------------------------------


def check_broker_id(context: RequestContext, name: str, *, allow_empty: bool) -> None:
    """A broker resource names this broker's id (or, where allowed, the cluster default: '')."""
    if name == "" and allow_empty:
        return
    try:
        node = int(name)
    except ValueError:
        raise KafkaError(
            ErrorCode.INVALID_REQUEST, f"Broker id must be an integer, but it is: {name}"
        ) from None
    if node != context.node_id:
        raise KafkaError(
            ErrorCode.INVALID_REQUEST,
            f"Unexpected broker id, expected {context.node_id} or empty string, "
            f"but received {name}",
        )


def _require_topic_overrides(context: RequestContext, name: str) -> dict[str, str]:
    validate_topic_name(name)
    meta = context.image.topic(name)
    if meta is None:
        raise KafkaError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"Topic {name} does not exist.")
    return dict(meta.configs)


def duplicates(resources: Iterable[_Resource]) -> set[tuple[int, str]]:
    counts = Counter((r.resource_type, r.resource_name) for r in resources)
    return {key for key, count in counts.items() if count > 1}


# -- DescribeConfigs ----------------------------------------------------------------------------


def _entries(context: RequestContext, resource: DescribeConfigsResource) -> list[ConfigEntry]:
    kind, name = resource.resource_type, resource.resource_name
    services = context.services
    if kind == ResourceType.TOPIC:
        overrides = _require_topic_overrides(context, name)
        effective = LogConfig.from_overrides(overrides, services.partitions.defaults)
        return topic_config_entries(services.config, overrides, effective)
    if kind == ResourceType.BROKER:
        check_broker_id(context, name, allow_empty=True)
        # The cluster-wide dynamic defaults ('') are empty: nothing is set dynamically.
        if name == "":
            return []
        endpoint = context.this_broker
        return broker_config_entries(
            services.config, services.node_id, f"{endpoint.host}:{endpoint.port}"
        )
    if kind == ResourceType.BROKER_LOGGER:
        check_broker_id(context, name, allow_empty=False)
        return logger_entries()
    raise KafkaError(ErrorCode.INVALID_REQUEST, f"Unsupported resource type {kind}")


#: Who may describe or alter the configs of each kind of resource, and the error otherwise.
_CONFIG_ACL: dict[int, tuple[AclResource, ErrorCode]] = {
    ResourceType.TOPIC: (AclResource.TOPIC, ErrorCode.TOPIC_AUTHORIZATION_FAILED),
    ResourceType.GROUP: (AclResource.GROUP, ErrorCode.GROUP_AUTHORIZATION_FAILED),
    ResourceType.BROKER: (AclResource.CLUSTER, ErrorCode.CLUSTER_AUTHORIZATION_FAILED),
    ResourceType.BROKER_LOGGER: (AclResource.CLUSTER, ErrorCode.CLUSTER_AUTHORIZATION_FAILED),
    ResourceType.CLIENT_METRICS: (AclResource.CLUSTER, ErrorCode.CLUSTER_AUTHORIZATION_FAILED),
}


def check_config_access(
    context: RequestContext, operation: AclOperation, kind: int, name: str
) -> None:
    """DESCRIBE_CONFIGS / ALTER_CONFIGS on the topic, group or (for broker-wide kinds) cluster;
    the kind's authorization error otherwise."""
    acl = _CONFIG_ACL.get(kind)
    if acl is None:
        return
    resource, error = acl
    target = CLUSTER_NAME if resource is AclResource.CLUSTER else name
    if not context.authorize(operation, resource, target):
        raise KafkaError(error, error.name)


def _describe_result(
    entry: ConfigEntry, *, synonyms: bool, documentation: bool
) -> DescribeConfigsResourceResult:
    return DescribeConfigsResourceResult(
        name=entry.name,
        value=None if entry.sensitive else entry.value,
        read_only=entry.read_only,
        is_default=entry.source == ConfigSource.DEFAULT_CONFIG,
        config_source=entry.source,
        is_sensitive=entry.sensitive,
        synonyms=[DescribeConfigsSynonym(s.name, s.value, s.source) for s in entry.synonyms]
        if synonyms
        else [],
        config_type=entry.type,
        documentation=entry.documentation if documentation else None,
    )


@handles(DESCRIBE_CONFIGS)
async def handle_describe_configs(
    context: RequestContext, request: DescribeConfigsRequest
) -> DescribeConfigsResponse:
    results = []
    for resource in request.resources:
        try:
            check_config_access(
                context,
                AclOperation.DESCRIBE_CONFIGS,
                resource.resource_type,
                resource.resource_name,
            )
            entries = _entries(context, resource)
        except KafkaError as error:
            results.append(
                DescribeConfigsResult(
                    error.code, error.message, resource.resource_type, resource.resource_name, []
                )
            )
            continue
        keys = resource.configuration_keys
        if keys:
            entries = [e for e in entries if e.name in keys]
        configs = [
            _describe_result(
                e, synonyms=request.include_synonyms, documentation=request.include_documentation
            )
            for e in entries
        ]
        results.append(
            DescribeConfigsResult(
                ErrorCode.NONE, None, resource.resource_type, resource.resource_name, configs
            )
        )
    return DescribeConfigsResponse(results=results)


# -- altering -----------------------------------------------------------------------------------


def refuse_broker_changes(names: Sequence[str]) -> None:
    """Broker settings cannot change while running: INVALID_REQUEST as Kafka's for read-only ones."""
    unknown = sorted(n for n in names if n not in BROKER_CONFIGS)
    if unknown:
        raise KafkaError(ErrorCode.INVALID_CONFIG, f"Unknown broker configs: {', '.join(unknown)}")
    raise KafkaError(
        ErrorCode.INVALID_REQUEST,
        f"Cannot update these configs dynamically: {', '.join(sorted(names))}; "
        "set them at start-up with -o NAME=VALUE",
    )


def _check_config_names(names: Sequence[str]) -> None:
    if len(set(names)) != len(names):
        raise KafkaError(ErrorCode.INVALID_REQUEST, "Error due to duplicate config keys")


async def _apply_topic_overrides(
    context: RequestContext, name: str, overrides: dict[str, str], validate_only: bool
) -> None:
    validate_topic_configs(overrides)
    if not validate_only:
        await context.services.controller.alter_topic_configs(name, overrides)


async def _alter(
    context: RequestContext,
    kind: int,
    name: str,
    configs: dict[str, str | None],
    validate_only: bool,
) -> None:
    nulls = [k for k, v in configs.items() if v is None]
    if nulls:
        raise KafkaError(
            ErrorCode.INVALID_REQUEST, f"Null value not supported for : {', '.join(nulls)}"
        )
    if kind == ResourceType.TOPIC:
        _require_topic_overrides(context, name)
        overrides = {k: v for k, v in configs.items() if v is not None}
        await _apply_topic_overrides(context, name, overrides, validate_only)
    elif kind == ResourceType.BROKER:
        check_broker_id(context, name, allow_empty=True)
        if configs:
            refuse_broker_changes(list(configs))
    else:
        raise KafkaError(ErrorCode.INVALID_REQUEST, f"Unsupported resource type {kind}")


@handles(ALTER_CONFIGS)
async def handle_alter_configs(
    context: RequestContext, request: AlterConfigsRequest
) -> AlterConfigsResponse:
    repeated = duplicates(request.resources)
    responses = []
    for resource in request.resources:
        kind, name = resource.resource_type, resource.resource_name
        try:
            if (kind, name) in repeated:
                raise KafkaError(
                    ErrorCode.INVALID_REQUEST, "Each resource must appear at most once."
                )
            check_config_access(context, AclOperation.ALTER_CONFIGS, kind, name)
            _check_config_names([c.name for c in resource.configs])
            configs = {c.name: c.value for c in resource.configs}
            await _alter(context, kind, name, configs, request.validate_only)
        except KafkaError as error:
            responses.append(AlterConfigsResourceResponse(error.code, error.message, kind, name))
        else:
            responses.append(AlterConfigsResourceResponse(ErrorCode.NONE, None, kind, name))
    return AlterConfigsResponse(responses=responses)


def _list_items(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def incremental_overrides(
    current: dict[str, str], defaults: dict[str, str], ops: Sequence[IncrementalConfig]
) -> dict[str, str]:
    """The overrides after SET, DELETE, APPEND and SUBTRACT (the last two on list configs)."""
    result = dict(current)
    for op in ops:
        try:
            kind = OpType(op.config_operation)
        except ValueError:
            raise KafkaError(
                ErrorCode.INVALID_REQUEST, f"Unknown operation type {op.config_operation}"
            ) from None
        if op.value is None and kind != OpType.DELETE:
            raise KafkaError(ErrorCode.INVALID_REQUEST, f"Null value not supported for : {op.name}")
        if kind == OpType.DELETE:
            result.pop(op.name, None)
            continue
        assert op.value is not None
        if kind == OpType.SET:
            result[op.name] = op.value
            continue
        definition = TOPIC_CONFIGS.get(op.name)
        if definition is None:
            raise KafkaError(ErrorCode.INVALID_CONFIG, f"Unknown topic config name: {op.name}")
        if definition.type != ConfigType.LIST:
            raise KafkaError(
                ErrorCode.INVALID_CONFIG,
                f"Config value {kind.name.lower()} is not allowed for config key: {op.name}",
            )
        old = _list_items(result.get(op.name, defaults.get(op.name, "")))
        changes = _list_items(op.value)
        if kind == OpType.APPEND:
            new = old + [item for item in changes if item not in old]
        else:
            new = [item for item in old if item not in changes]
        result[op.name] = ",".join(dict.fromkeys(new))
    return result


async def _incremental(
    context: RequestContext,
    kind: int,
    name: str,
    ops: Sequence[IncrementalConfig],
    validate_only: bool,
) -> None:
    _check_config_names([op.name for op in ops])
    if kind == ResourceType.TOPIC:
        current = _require_topic_overrides(context, name)
        defaults = context.services.partitions.defaults.to_kafka()
        overrides = incremental_overrides(current, defaults, ops)
        await _apply_topic_overrides(context, name, overrides, validate_only)
    elif kind == ResourceType.BROKER:
        check_broker_id(context, name, allow_empty=True)
        if ops:
            refuse_broker_changes([op.name for op in ops])
    elif kind == ResourceType.BROKER_LOGGER:
        check_broker_id(context, name, allow_empty=False)
        raise KafkaError(ErrorCode.INVALID_REQUEST, "Logger levels cannot be changed here")
    else:
        raise KafkaError(ErrorCode.INVALID_REQUEST, f"Unsupported resource type {kind}")


@handles(INCREMENTAL_ALTER_CONFIGS)
async def handle_incremental_alter_configs(
    context: RequestContext, request: IncrementalAlterConfigsRequest
) -> IncrementalAlterConfigsResponse:
    repeated = duplicates(request.resources)
    responses = []
    for resource in request.resources:
        kind, name = resource.resource_type, resource.resource_name
        try:
            if (kind, name) in repeated:
                raise KafkaError(
                    ErrorCode.INVALID_REQUEST, "Each resource must appear at most once."
                )
            check_config_access(context, AclOperation.ALTER_CONFIGS, kind, name)
            await _incremental(context, kind, name, resource.configs, request.validate_only)
        except KafkaError as error:
            responses.append(IncrementalResourceResponse(error.code, error.message, kind, name))
        else:
            responses.append(IncrementalResourceResponse(ErrorCode.NONE, None, kind, name))
    return IncrementalAlterConfigsResponse(responses=responses)
