"""Fetch sessions (KIP-227): contexts, epochs, incremental answers and the session cache."""

from __future__ import annotations

import random
import uuid

from kafkacompat.broker.fetch_sessions import (
    EVICTION_MS,
    FINAL_EPOCH,
    INITIAL_EPOCH,
    INVALID_SESSION_ID,
    CachedPartition,
    FetchContext,
    FetchSessionCache,
    PartitionKey,
    PartitionParams,
    new_context,
    next_epoch,
)
from kafkacompat.errors import ErrorCode
from kafkacompat.protocol.messages.fetch_response import PartitionData

A0: PartitionKey = ("a", 0)
A1: PartitionKey = ("a", 1)
B0: PartitionKey = ("b", 0)


def params(offset: int = 0) -> PartitionParams:
    return PartitionParams(fetch_offset=offset, partition_max_bytes=1 << 20)


def data(
    hw: int = 10, log_start: int = 0, records: bytes = b"", error: ErrorCode = ErrorCode.NONE
) -> PartitionData:
    return PartitionData(
        error_code=error, high_watermark=hw, log_start_offset=log_start, records=records
    )


def context(
    cache: FetchSessionCache,
    session_id: int,
    epoch: int,
    fetch: dict[PartitionKey, PartitionParams] | None = None,
    forget: list[PartitionKey] | None = None,
    version: int = 12,
    now: int = 0,
) -> FetchContext:
    return new_context(
        cache,
        version=version,
        session_id=session_id,
        epoch=epoch,
        fetch=fetch or {},
        forget=forget or [],
        privileged=False,
        now_ms=now,
    )


def open_session(
    cache: FetchSessionCache, keys: list[PartitionKey], now: int = 0
) -> tuple[int, FetchContext]:
    full = context(cache, INVALID_SESSION_ID, INITIAL_EPOCH, {k: params() for k in keys}, now=now)
    error, session_id, sent = full.finish(cache, [(k, data()) for k in keys], now)
    assert (error, [k for k, _ in sent]) == (ErrorCode.NONE, keys)
    return session_id, full


def test_next_epoch() -> None:
    assert next_epoch(0) == 1
    assert next_epoch(41) == 42
    assert next_epoch(2**31 - 1) == 1
    assert next_epoch(FINAL_EPOCH) == FINAL_EPOCH


def test_full_fetch_creates_a_session_at_epoch_one() -> None:
    cache = FetchSessionCache(rng=random.Random(1))
    session_id, full = open_session(cache, [A0, A1, B0])
    assert full.kind == "full"
    assert session_id != INVALID_SESSION_ID
    session = cache.get(session_id)
    assert session is not None
    assert session.epoch == 1
    assert list(session.partitions) == [A0, A1, B0]
    assert session.partitions[A0] == CachedPartition(params(), 10, 0)


def test_sessionless_before_v7_and_with_the_final_epoch() -> None:
    cache = FetchSessionCache()
    for ctx in (
        context(cache, 0, INITIAL_EPOCH, {A0: params()}, version=6),
        context(cache, 0, FINAL_EPOCH, {A0: params()}, version=12),
    ):
        assert ctx.kind == "sessionless"
        assert ctx.finish(cache, [(A0, data())], 0) == (ErrorCode.NONE, 0, [(A0, data())])
    assert len(cache) == 0


def test_a_full_fetch_or_final_epoch_naming_a_session_closes_it() -> None:
    cache = FetchSessionCache()
    first, _ = open_session(cache, [A0])
    second, _ = open_session(cache, [A0])
    assert context(cache, first, INITIAL_EPOCH, {A0: params()}).kind == "full"
    assert cache.get(first) is None
    assert context(cache, second, FINAL_EPOCH, {A0: params()}).kind == "sessionless"
    assert cache.get(second) is None


def test_session_errors() -> None:
    cache = FetchSessionCache()
    session_id, _ = open_session(cache, [A0])
    unknown = context(cache, session_id + 1, 1)
    assert (unknown.kind, unknown.error) == ("error", ErrorCode.FETCH_SESSION_ID_NOT_FOUND)
    assert unknown.finish(cache, [], 0) == (ErrorCode.FETCH_SESSION_ID_NOT_FOUND, 0, [])
    stale = context(cache, session_id, 2)
    assert (stale.kind, stale.error) == ("error", ErrorCode.INVALID_FETCH_SESSION_EPOCH)
    by_id = context(cache, session_id, 1, version=13)
    assert by_id.error == ErrorCode.FETCH_SESSION_TOPIC_ID_ERROR
    # Errors leave the session as it was.
    assert cache.get(session_id) is not None and cache.get(session_id).epoch == 1  # type: ignore[union-attr]


def test_incremental_fetches_advance_the_epoch_and_answer_only_changes() -> None:
    cache = FetchSessionCache()
    session_id, _ = open_session(cache, [A0, A1, B0])
    inc = context(cache, session_id, 1)
    assert inc.kind == "incremental"
    assert [k for k, _ in inc.partitions] == [A0, A1, B0]
    # A1 got records, B0's high watermark moved, A0 did not change.
    results = [(A0, data()), (A1, data(records=b"batch")), (B0, data(hw=11))]
    error, sid, sent = inc.finish(cache, results, 0)
    assert (error, sid, [k for k, _ in sent]) == (ErrorCode.NONE, session_id, [A1, B0])
    # Partitions that returned data move to the back of the session's order.
    assert [k for k, _ in context(cache, session_id, 2).partitions] == [A0, B0, A1]
    # Nothing changed: an empty answer, and the epoch keeps counting.
    nothing = context(cache, session_id, 3)
    assert nothing.finish(cache, [(A0, data()), (B0, data(hw=11)), (A1, data())], 0) == (
        ErrorCode.NONE,
        session_id,
        [],
    )
    assert cache.get(session_id).epoch == 4  # type: ignore[union-attr]


def test_log_start_changes_and_errors_are_answered_and_an_error_is_resent_once_cleared() -> None:
    cache = FetchSessionCache()
    session_id, _ = open_session(cache, [A0, A1])
    sent = context(cache, session_id, 1).finish(
        cache, [(A0, data(log_start=5)), (A1, data(hw=-1, error=ErrorCode.OFFSET_OUT_OF_RANGE))], 0
    )[2]
    assert [k for k, _ in sent] == [A0, A1]
    again = context(cache, session_id, 2).finish(
        cache, [(A0, data(log_start=5)), (A1, data(hw=-1, error=ErrorCode.OFFSET_OUT_OF_RANGE))], 0
    )[2]
    assert [k for k, _ in again] == [A1]
    cleared = context(cache, session_id, 3).finish(
        cache, [(A0, data(log_start=5)), (A1, data())], 0
    )
    assert [k for k, _ in cleared[2]] == [A1]


def test_incremental_adds_updates_and_forgets_partitions() -> None:
    cache = FetchSessionCache()
    session_id, _ = open_session(cache, [A0, A1])
    inc = context(cache, session_id, 1, {A1: params(7), B0: params(3)}, forget=[A0, ("zz", 9)])
    assert inc.removed == [A0]
    assert [(k, p.fetch_offset) for k, p in inc.partitions] == [(A1, 7), (B0, 3)]
    # A newly added partition has no answer cached yet: it is always sent the first time.
    sent = inc.finish(cache, [(A1, data()), (B0, data())], 0)[2]
    assert [k for k, _ in sent] == [B0]


def test_forgetting_every_partition_ends_the_session() -> None:
    cache = FetchSessionCache()
    session_id, _ = open_session(cache, [A0])
    inc = context(cache, session_id, 1, forget=[A0])
    assert inc.kind == "sessionless"
    assert inc.partitions == []
    assert cache.get(session_id) is None


def test_topic_id_sessions() -> None:
    cache = FetchSessionCache()
    topic_id = uuid.uuid4()
    key: PartitionKey = (topic_id, 0)
    full = context(cache, 0, INITIAL_EPOCH, {key: params()}, version=13)
    _, session_id, _ = full.finish(cache, [(key, data())], 0)
    assert cache.get(session_id).uses_topic_ids  # type: ignore[union-attr]
    assert context(cache, session_id, 1, version=12).error == ErrorCode.FETCH_SESSION_TOPIC_ID_ERROR
    inc = context(cache, session_id, 1, forget=[key], version=13)
    assert inc.kind == "sessionless"


def test_epoch_changed_while_the_fetch_waited() -> None:
    cache = FetchSessionCache()
    session_id, _ = open_session(cache, [A0])
    waiting = context(cache, session_id, 1)
    context(cache, session_id, 2)  # another fetch on the same session overtook it
    assert waiting.finish(cache, [(A0, data(records=b"x"))], 0) == (
        ErrorCode.INVALID_FETCH_SESSION_EPOCH,
        session_id,
        [],
    )


def test_a_full_cache_creates_no_session_while_every_session_is_young_and_used() -> None:
    cache = FetchSessionCache(max_entries=2)
    open_session(cache, [A0], now=0)
    open_session(cache, [A0], now=0)
    full = context(cache, 0, INITIAL_EPOCH, {A0: params(), A1: params()}, now=1_000)
    assert full.finish(cache, [(A0, data()), (A1, data())], 1_000)[1] == INVALID_SESSION_ID
    assert len(cache) == 2 and cache.evictions == 0


def test_the_least_recently_used_session_goes_once_stale() -> None:
    cache = FetchSessionCache(max_entries=2)
    open_session(cache, [A0, A1, B0], now=0)
    kept, _ = open_session(cache, [A0], now=0)
    context(cache, kept, 1, now=EVICTION_MS)  # touched: used recently
    newcomer, _ = open_session(cache, [A0], now=EVICTION_MS + 1)
    assert newcomer != INVALID_SESSION_ID
    assert set(cache.sessions) == {kept, newcomer}
    assert cache.evictions == 1


def test_an_old_smaller_session_gives_way_to_a_larger_one() -> None:
    cache = FetchSessionCache(max_entries=2)
    small, _ = open_session(cache, [A0], now=0)
    large, _ = open_session(cache, [A0, A1], now=0)
    # Both used recently, but created over EVICTION_MS ago (standing refreshed when touched).
    now = EVICTION_MS + 10
    context(cache, small, 1, now=now)
    context(cache, large, 1, now=now)
    # A newcomer no larger than the smallest session evicts nothing ...
    same = context(cache, 0, INITIAL_EPOCH, {B0: params()}, now=now)
    assert same.finish(cache, [(B0, data())], now)[1] == INVALID_SESSION_ID
    # ... a larger one evicts the smallest old session.
    bigger = context(cache, 0, INITIAL_EPOCH, {A0: params(), A1: params(), B0: params()}, now=now)
    new_id = bigger.finish(cache, [(A0, data()), (A1, data()), (B0, data())], now)[1]
    assert new_id != INVALID_SESSION_ID
    assert set(cache.sessions) == {large, new_id}


def test_young_sessions_are_not_evicted_by_size() -> None:
    cache = FetchSessionCache(max_entries=1)
    open_session(cache, [A0], now=0)
    big = context(cache, 0, INITIAL_EPOCH, {A0: params(), A1: params(), B0: params()}, now=10)
    assert big.finish(cache, [(A0, data()), (A1, data()), (B0, data())], 10)[1] == 0


def test_session_ids_are_positive_and_unique() -> None:
    cache = FetchSessionCache(max_entries=50, rng=random.Random(7))
    ids = {open_session(cache, [A0])[0] for _ in range(50)}
    assert len(ids) == 50 and all(0 < i < 2**31 for i in ids)
