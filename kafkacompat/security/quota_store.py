"""Durable client quota definitions: which entity has which quota, and their validation.

An entity is a set of ``(type, name)`` pairs over the types ``user``, ``client-id`` and ``ip``;
a None name is the type's default entity. Alterations are validated as Kafka's controller does
(INVALID_REQUEST for unknown types, keys, bad values, duplicates) and each entity's quotas are
one record of the namespace, so a batch of alterations is applied atomically.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from kafkacompat.errors import ErrorCode, KafkaError
from kafkacompat.storage.state_store import Namespace

__all__ = [
    "BYTE_RATE_KEYS",
    "CLIENT_ID",
    "IP",
    "USER",
    "AlterResult",
    "Alteration",
    "Entity",
    "FilterComponent",
    "HostCheck",
    "QuotaStore",
    "entity_of",
    "is_ip_literal",
]

USER = "user"
CLIENT_ID = "client-id"
IP = "ip"

PRODUCER_BYTE_RATE = "producer_byte_rate"
CONSUMER_BYTE_RATE = "consumer_byte_rate"
REQUEST_PERCENTAGE = "request_percentage"
CONTROLLER_MUTATION_RATE = "controller_mutation_rate"
CONNECTION_CREATION_RATE = "connection_creation_rate"
BYTE_RATE_KEYS = (PRODUCER_BYTE_RATE, CONSUMER_BYTE_RATE)

#: The quota keys each kind of entity takes, with the type Kafka defines them as.
_USER_CLIENT_KEYS = {
    PRODUCER_BYTE_RATE: "long",
    CONSUMER_BYTE_RATE: "long",
    REQUEST_PERCENTAGE: "double",
    CONTROLLER_MUTATION_RATE: "double",
}
_IP_KEYS = {CONNECTION_CREATION_RATE: "int"}
_INTEGRAL_MAX = {"short": 32767.0, "int": 2147483647.0, "long": 9.223372036854775807e18}

MATCH_EXACT = 0
MATCH_DEFAULT = 1
MATCH_SPECIFIED = 2

#: ``(type, name)`` pairs sorted by type; a None name is the default entity of that type.
Entity = tuple[tuple[str, str | None], ...]
#: Is a name of an ``ip`` entity a valid address or a resolvable host?
HostCheck = Callable[[str], bool]


def entity_of(pairs: Iterable[tuple[str, str | None]]) -> Entity:
    """An entity from request pairs: a repeated type keeps its last name, as Kafka's map does."""
    return tuple(sorted(dict(pairs).items()))


@dataclass(frozen=True, slots=True)
class Alteration:
    """Set (value) or remove (None) quota keys of one entity."""

    entity: Entity
    ops: Sequence[tuple[str, float | None]]


@dataclass(frozen=True, slots=True)
class AlterResult:
    entity: Entity
    error: ErrorCode = ErrorCode.NONE
    message: str | None = None


@dataclass(frozen=True, slots=True)
class FilterComponent:
    entity_type: str
    match_type: int
    match: str | None


def _describe_entity(entity: Entity) -> str:
    parts = [f"{t}={'<default>' if n is None else n}" for t, n in entity]
    return "{" + ", ".join(parts) + "}"


def is_ip_literal(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class QuotaStore:
    """The quota definitions of the cluster, kept in a durable namespace."""

    def __init__(self, namespace: Namespace) -> None:
        self.namespace = namespace
        self._quotas: dict[Entity, dict[str, float]] = {}
        #: Bumped on every change, so users of the definitions can cache what they derive.
        self.version = 0
        for key, value in namespace.items():
            entity = tuple((str(t), None if n is None else str(n)) for t, n in json.loads(key))
            self._quotas[entity] = {str(k): float(v) for k, v in json.loads(value).items()}

    def quotas(self) -> dict[Entity, dict[str, float]]:
        """Every entity with at least one quota (do not modify)."""
        return self._quotas

    def get(self, entity: Entity) -> dict[str, float]:
        return self._quotas.get(entity, {})

    # -- AlterClientQuotas -------------------------------------------------------------------

    def alter(
        self,
        alterations: Sequence[Alteration],
        validate_only: bool = False,
        host_ok: HostCheck = is_ip_literal,
    ) -> list[AlterResult]:
        """Validate and (unless ``validate_only``) apply the alterations; one result per distinct
        entity. A valid entity's changes apply even when another entity of the batch fails."""
        results: dict[Entity, AlterResult] = {}
        changes: dict[Entity, dict[str, float]] = {}
        for alteration in alterations:
            entity = alteration.entity
            if entity in results:
                message = f"Ignoring duplicate entity {_describe_entity(entity)}"
                results[entity] = AlterResult(entity, ErrorCode.INVALID_REQUEST, message)
                continue
            try:
                changes[entity] = self._altered(entity, alteration.ops, host_ok)
            except KafkaError as error:
                results[entity] = AlterResult(entity, error.code, str(error))
            else:
                results[entity] = AlterResult(entity)
        changed = {e: q for e, q in changes.items() if q != self._quotas.get(e, {})}
        if changed and not validate_only:
            self._write(changed)
        return list(results.values())

    def _altered(
        self, entity: Entity, ops: Sequence[tuple[str, float | None]], host_ok: HostCheck
    ) -> dict[str, float]:
        """The entity's quotas after ``ops``; raises KafkaError(INVALID_REQUEST) when invalid."""
        keys = _valid_keys(entity, host_ok)
        seen: set[str] = set()
        quotas = dict(self._quotas.get(entity, {}))
        for key, value in ops:
            if key in seen:
                raise _invalid(
                    f"Duplicate quota key {key} not updating quota for this entity "
                    f"{_describe_entity(entity)}"
                )
            seen.add(key)
            if value is None:
                quotas.pop(key, None)
                continue
            _check_value(keys, key, value)
            quotas[key] = value
        return quotas

    def _write(self, changed: dict[Entity, dict[str, float]]) -> None:
        entries: list[tuple[bytes, bytes | None]] = []
        for entity, quotas in changed.items():
            key = json.dumps([list(pair) for pair in entity]).encode()
            entries.append((key, json.dumps(quotas).encode() if quotas else None))
        self.namespace.put_many(entries)
        for entity, quotas in changed.items():
            if quotas:
                self._quotas[entity] = quotas
            else:
                self._quotas.pop(entity, None)
        self.version += 1

    # -- DescribeClientQuotas ----------------------------------------------------------------

    def describe(
        self, components: Sequence[FilterComponent], strict: bool
    ) -> list[tuple[Entity, dict[str, float]]]:
        """The entities matching the filter, with their quotas; raises KafkaError on a bad
        filter (INVALID_REQUEST, or UNSUPPORTED_VERSION for an unknown entity type)."""
        exact: dict[str, str | None] = {}
        specified: set[str] = set()
        for component in components:
            kind = component.entity_type
            if not kind:
                raise _invalid("Invalid empty entity type.")
            if kind in exact or kind in specified:
                raise _invalid(f"Entity type {kind} cannot appear more than once in the filter.")
            if kind not in (USER, CLIENT_ID, IP):
                raise KafkaError(ErrorCode.UNSUPPORTED_VERSION, f"Unsupported entity type {kind}")
            if component.match_type == MATCH_EXACT:
                if component.match is None:
                    raise _invalid(
                        "Request specified MATCH_TYPE_EXACT, but set match string to null."
                    )
                exact[kind] = component.match
            elif component.match_type == MATCH_DEFAULT:
                if component.match is not None:
                    raise _invalid(
                        "Request specified MATCH_TYPE_DEFAULT, but also specified a match string."
                    )
                exact[kind] = None
            elif component.match_type == MATCH_SPECIFIED:
                if component.match is not None:
                    raise _invalid(
                        "Request specified MATCH_TYPE_SPECIFIED, but also specified a match string."
                    )
                specified.add(kind)
            else:
                raise _invalid(f"Unknown match type {component.match_type}")
        kinds = exact.keys() | specified
        if IP in kinds and (USER in kinds or CLIENT_ID in kinds):
            raise _invalid(
                "Invalid entity filter component combination. IP filter component should not "
                "be used with user or clientId filter component."
            )
        found = []
        for entity, quotas in self._quotas.items():
            names = dict(entity)
            if strict and len(names) != len(exact) + len(specified):
                continue
            if any(k not in names or names[k] != v for k, v in exact.items()):
                continue
            if any(k not in names for k in specified):
                continue
            found.append((entity, dict(quotas)))
        return found


def _invalid(message: str) -> KafkaError:
    return KafkaError(ErrorCode.INVALID_REQUEST, message)


def _valid_keys(entity: Entity, host_ok: HostCheck) -> dict[str, str]:
    """The quota keys this entity may have, after checking its types and names."""
    if not entity:
        raise _invalid("Invalid empty client quota entity")
    for kind, name in entity:
        if kind not in (USER, CLIENT_ID, IP):
            raise _invalid(f"Unhandled client quota entity type: {kind}")
        if name is not None and not name:
            raise _invalid(f"Empty {kind} not supported")
    names = dict(entity)
    if IP in names:
        if len(names) > 1:
            raise _invalid(
                "Invalid quota entity combination, IP entity should not be combined with User "
                "or ClientId"
            )
        ip = names[IP]
        if ip is not None and not host_ok(ip):
            raise _invalid(f"{ip} is not a valid IP or resolvable host.")
        return _IP_KEYS
    return _USER_CLIENT_KEYS


def _check_value(keys: dict[str, str], key: str, value: float) -> None:
    kind = keys.get(key)
    if kind is None:
        raise _invalid(f"Invalid configuration key {key}")
    if not value > 0.0:  # also refuses NaN
        raise _invalid(f"Quota {key} must be greater than 0")
    if kind == "double":
        return
    if value > _INTEGRAL_MAX[kind]:
        article = "an" if kind == "int" else "a"
        raise _invalid(f"Proposed value for {key} is too large for {article} {kind.upper()}.")
    if abs(value % 1.0) > 1e-6:
        raise _invalid(f"{key} cannot be a fractional value.")
