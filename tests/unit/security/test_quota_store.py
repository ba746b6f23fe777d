"""Quota definitions: Kafka's validation of alterations, describe filters, durability."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from kafkacompat.errors import ErrorCode, KafkaError
from kafkacompat.security.quota_store import (
    Alteration,
    FilterComponent,
    QuotaStore,
    entity_of,
)
from kafkacompat.storage.state_store import StateStore

EXACT, DEFAULT, SPECIFIED = 0, 1, 2
ALICE = entity_of([("user", "alice")])
ALICE_APP = entity_of([("user", "alice"), ("client-id", "app")])
DEFAULT_USER = entity_of([("user", None)])
APP = entity_of([("client-id", "app")])


def open_store(tmp_path: Path) -> QuotaStore:
    return QuotaStore(StateStore(tmp_path / "state", fsync=False).namespace("client-quotas"))


def alter(store: QuotaStore, entity: tuple[tuple[str, str | None], ...], **ops: float | None):
    (result,) = store.alter([Alteration(entity, list(ops.items()))])
    return result


def test_set_change_and_remove_quotas(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    assert alter(store, ALICE, producer_byte_rate=1024.0, consumer_byte_rate=2048.0).error == 0
    assert store.get(ALICE) == {"producer_byte_rate": 1024.0, "consumer_byte_rate": 2048.0}
    alter(store, ALICE, producer_byte_rate=None, request_percentage=12.5)
    assert store.get(ALICE) == {"consumer_byte_rate": 2048.0, "request_percentage": 12.5}
    alter(store, ALICE, consumer_byte_rate=None, request_percentage=None)
    assert ALICE not in store.quotas()


def test_quotas_survive_a_restart(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    alter(store, ALICE_APP, producer_byte_rate=1048576.0)
    alter(store, DEFAULT_USER, controller_mutation_rate=0.5)
    alter(store, entity_of([("ip", None)]), connection_creation_rate=10.0)
    alter(store, APP, consumer_byte_rate=1.0)
    alter(store, APP, consumer_byte_rate=None)
    store.namespace.close()
    again = open_store(tmp_path)
    assert again.quotas() == {
        ALICE_APP: {"producer_byte_rate": 1048576.0},
        DEFAULT_USER: {"controller_mutation_rate": 0.5},
        entity_of([("ip", None)]): {"connection_creation_rate": 10.0},
    }


def test_validate_only_changes_nothing(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    results = store.alter([Alteration(ALICE, [("producer_byte_rate", 5.0)])], validate_only=True)
    assert results[0].error == 0
    assert store.quotas() == {}
    assert store.version == 0


@pytest.mark.parametrize(
    ("entity", "ops", "message"),
    [
        ((), [("producer_byte_rate", 1.0)], "Invalid empty client quota entity"),
        ((("group", "g"),), [("producer_byte_rate", 1.0)], "Unhandled client quota entity type"),
        ((("user", ""),), [("producer_byte_rate", 1.0)], "Empty user not supported"),
        (entity_of([("ip", "1.2.3.4"), ("user", "a")]), [], "IP entity should not be combined"),
        ((("ip", "not a host!"),), [], "is not a valid IP or resolvable host"),
        (ALICE, [("connection_creation_rate", 1.0)], "Invalid configuration key"),
        ((("ip", "10.0.0.1"),), [("producer_byte_rate", 1.0)], "Invalid configuration key"),
        (ALICE, [("producer_byte_rate", 0.0)], "must be greater than 0"),
        (ALICE, [("request_percentage", -1.0)], "must be greater than 0"),
        (ALICE, [("request_percentage", math.nan)], "must be greater than 0"),
        (ALICE, [("producer_byte_rate", 1.5)], "cannot be a fractional value"),
        (ALICE, [("producer_byte_rate", 1e19)], "too large for a LONG"),
        ((("ip", None),), [("connection_creation_rate", 3e9)], "too large for an INT"),
        (ALICE, [("producer_byte_rate", 1.0), ("producer_byte_rate", None)], "Duplicate quota key"),
    ],
)
def test_invalid_alterations(
    tmp_path: Path,
    entity: tuple[tuple[str, str | None], ...],
    ops: list[tuple[str, float | None]],
    message: str,
) -> None:
    store = open_store(tmp_path)
    (result,) = store.alter([Alteration(entity, ops)])
    assert result.error == ErrorCode.INVALID_REQUEST
    assert result.message is not None and message in result.message
    assert store.quotas() == {}


def test_a_duplicate_entity_is_refused_and_others_apply(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    results = store.alter(
        [
            Alteration(ALICE, [("producer_byte_rate", 1.0)]),
            Alteration(APP, [("producer_byte_rate", 0.0)]),
            Alteration(DEFAULT_USER, [("consumer_byte_rate", 7.0)]),
            Alteration(ALICE, [("producer_byte_rate", 2.0)]),
        ]
    )
    codes = {r.entity: r.error for r in results}
    assert codes == {
        ALICE: ErrorCode.INVALID_REQUEST,
        APP: ErrorCode.INVALID_REQUEST,
        DEFAULT_USER: ErrorCode.NONE,
    }
    # As Kafka's controller: the first alteration of the duplicated entity is applied.
    assert store.quotas() == {
        ALICE: {"producer_byte_rate": 1.0},
        DEFAULT_USER: {"consumer_byte_rate": 7.0},
    }


def test_a_repeated_entity_type_keeps_the_last_name() -> None:
    assert entity_of([("user", "a"), ("user", "b")]) == (("user", "b"),)


def describe(store: QuotaStore, *components: tuple[str, int, str | None], strict: bool = False):
    found = store.describe([FilterComponent(*c) for c in components], strict)
    return {entity for entity, _quotas in found}


def test_describe_filters(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    for entity in (
        ALICE,
        ALICE_APP,
        DEFAULT_USER,
        APP,
        entity_of([("user", None), ("client-id", None)]),
    ):
        alter(store, entity, producer_byte_rate=1.0)
    both_default = entity_of([("user", None), ("client-id", None)])
    assert describe(store) == {ALICE, ALICE_APP, DEFAULT_USER, APP, both_default}
    assert describe(store, strict=True) == set()
    assert describe(store, ("user", EXACT, "alice")) == {ALICE, ALICE_APP}
    assert describe(store, ("user", EXACT, "alice"), strict=True) == {ALICE}
    assert describe(store, ("user", DEFAULT, None)) == {DEFAULT_USER, both_default}
    assert describe(store, ("user", SPECIFIED, None)) == {
        ALICE,
        ALICE_APP,
        DEFAULT_USER,
        both_default,
    }
    assert describe(store, ("client-id", SPECIFIED, None), strict=True) == {APP}
    assert describe(store, ("user", SPECIFIED, None), ("client-id", EXACT, "app")) == {ALICE_APP}
    assert store.describe([FilterComponent("user", EXACT, "alice")], True) == [
        (ALICE, {"producer_byte_rate": 1.0})
    ]


@pytest.mark.parametrize(
    ("components", "code"),
    [
        ([("", EXACT, "x")], ErrorCode.INVALID_REQUEST),
        ([("user", EXACT, "a"), ("user", SPECIFIED, None)], ErrorCode.INVALID_REQUEST),
        ([("group", EXACT, "g")], ErrorCode.UNSUPPORTED_VERSION),
        ([("user", EXACT, None)], ErrorCode.INVALID_REQUEST),
        ([("user", DEFAULT, "a")], ErrorCode.INVALID_REQUEST),
        ([("user", SPECIFIED, "a")], ErrorCode.INVALID_REQUEST),
        ([("user", 7, None)], ErrorCode.INVALID_REQUEST),
        ([("ip", SPECIFIED, None), ("client-id", SPECIFIED, None)], ErrorCode.INVALID_REQUEST),
    ],
)
def test_bad_describe_filters(
    tmp_path: Path, components: list[tuple[str, int, str | None]], code: ErrorCode
) -> None:
    store = open_store(tmp_path)
    with pytest.raises(KafkaError) as raised:
        store.describe([FilterComponent(*c) for c in components], False)
    assert raised.value.code == code
