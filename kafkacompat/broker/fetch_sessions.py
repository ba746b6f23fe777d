"""Incremental fetch sessions (KIP-227): the session cache and the context of one fetch.

A client's first fetch is *full*: it names every partition and gets every partition back; the
broker then caches the partitions in a session and answers with its id. Later *incremental*
fetches (same session id, the next epoch) name only changed partitions and the ones to forget,
and are answered with only the partitions whose data, high watermark, log start offset or error
changed. The cache holds at most ``max.incremental.fetch.session.cache.slots`` sessions and
evicts as Kafka does: a session unused for two minutes first; otherwise the smallest session
created over two minutes ago, if it is no larger than the newcomer.

This module is synchronous and trio-free; ``now_ms`` is passed in.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from kafkacompat.errors import ErrorCode
from kafkacompat.protocol.messages.fetch_response import PartitionData

__all__ = [
    "DEFAULT_CACHE_SLOTS",
    "EVICTION_MS",
    "FINAL_EPOCH",
    "INITIAL_EPOCH",
    "INVALID_SESSION_ID",
    "FetchContext",
    "FetchSession",
    "FetchSessionCache",
    "PartitionKey",
    "PartitionParams",
    "next_epoch",
]

INVALID_SESSION_ID = 0
INITIAL_EPOCH = 0
FINAL_EPOCH = -1
#: Kafka's ``max.incremental.fetch.session.cache.slots`` default.
DEFAULT_CACHE_SLOTS = 1000
#: Kafka's minimum age before a session may be evicted for another (not configurable there).
EVICTION_MS = 120_000
_MAX_INT32 = 2**31 - 1

#: A partition as a request names it: by topic name (fetch v0-12) or topic id (v13+).
PartitionKey = tuple[str | uuid.UUID, int]


def next_epoch(epoch: int) -> int:
    """The epoch after ``epoch``: FINAL_EPOCH stays final, the maximum wraps to 1."""
    if epoch < 0:
        return FINAL_EPOCH
    return 1 if epoch == _MAX_INT32 else epoch + 1


@dataclass(slots=True)
class PartitionParams:
    """What a fetch asks of one partition."""

    fetch_offset: int
    partition_max_bytes: int
    current_leader_epoch: int = -1
    last_fetched_epoch: int = -1
    log_start_offset: int = -1


@dataclass(slots=True)
class CachedPartition:
    """A session's partition: the last request parameters and the last answer sent."""

    params: PartitionParams
    high_watermark: int = -1
    log_start_offset: int = -1

    def must_respond(self, data: PartitionData, update: bool) -> bool:
        """Whether an incremental response must carry ``data``; ``update`` records it as sent."""
        respond = bool(data.records)
        if self.high_watermark != data.high_watermark:
            respond = True
            if update:
                self.high_watermark = data.high_watermark
        if self.log_start_offset != data.log_start_offset:
            respond = True
            if update:
                self.log_start_offset = data.log_start_offset
        if data.preferred_read_replica != -1:
            respond = True
        if data.error_code != ErrorCode.NONE:
            # Resent until the error clears, and once more when it has.
            if update:
                self.high_watermark = -1
            respond = True
        diverging = data.diverging_epoch
        return respond or diverging.epoch != -1 or diverging.end_offset != -1


@dataclass(slots=True)
class FetchSession:
    id: int
    privileged: bool
    partitions: dict[PartitionKey, CachedPartition]
    uses_topic_ids: bool
    creation_ms: int
    last_used_ms: int
    epoch: int
    #: Eviction key as of the last touch: (privileged, size, id), compared in that order.
    evictable_key: tuple[bool, int, int] = (False, 0, 0)
    evictable_by_all: bool = False
    evictable_by_privileged: bool = False

    def update(
        self, fetch: dict[PartitionKey, PartitionParams], forget: Iterable[PartitionKey]
    ) -> tuple[list[PartitionKey], list[PartitionKey], list[PartitionKey]]:
        """Apply an incremental request: (added, updated, removed) partitions."""
        added: list[PartitionKey] = []
        updated: list[PartitionKey] = []
        removed: list[PartitionKey] = []
        for key, params in fetch.items():
            cached = self.partitions.get(key)
            if cached is None:
                self.partitions[key] = CachedPartition(params)
                added.append(key)
            else:
                cached.params = params
                updated.append(key)
        for key in forget:
            if self.partitions.pop(key, None) is not None:
                removed.append(key)
        return added, updated, removed


class FetchSessionCache:
    """At most ``max_entries`` sessions, by id."""

    def __init__(
        self,
        max_entries: int = DEFAULT_CACHE_SLOTS,
        eviction_ms: int = EVICTION_MS,
        rng: random.Random | None = None,
    ) -> None:
        self.max_entries = max_entries
        self.eviction_ms = eviction_ms
        self.sessions: dict[int, FetchSession] = {}
        self.evictions = 0
        self._rng = rng or random.Random()

    def __len__(self) -> int:
        return len(self.sessions)

    def get(self, session_id: int) -> FetchSession | None:
        return self.sessions.get(session_id)

    def remove(self, session_id: int) -> FetchSession | None:
        return self.sessions.pop(session_id, None)

    def touch(self, session: FetchSession, now_ms: int) -> None:
        """Mark ``session`` used now and refresh its eviction standing."""
        session.last_used_ms = now_ms
        session.evictable_key = (session.privileged, len(session.partitions), session.id)
        old = now_ms - session.creation_ms > self.eviction_ms
        session.evictable_by_privileged = old or not session.privileged
        session.evictable_by_all = old

    def maybe_create(
        self,
        now_ms: int,
        privileged: bool,
        partitions: dict[PartitionKey, CachedPartition],
        uses_topic_ids: bool,
    ) -> int:
        """Cache a new session if there is room (evicting if allowed); its id, or 0."""
        if len(self.sessions) >= self.max_entries and not self._try_evict(
            privileged, (privileged, len(partitions), 0), now_ms
        ):
            return INVALID_SESSION_ID
        session = FetchSession(
            self._new_session_id(),
            privileged,
            partitions,
            uses_topic_ids,
            now_ms,
            now_ms,
            next_epoch(INITIAL_EPOCH),
        )
        self.sessions[session.id] = session
        self.touch(session, now_ms)
        return session.id

    def _new_session_id(self) -> int:
        while True:
            session_id = self._rng.randint(1, _MAX_INT32 - 1)
            if session_id not in self.sessions:
                return session_id

    def _try_evict(self, privileged: bool, key: tuple[bool, int, int], now_ms: int) -> bool:
        if not self.sessions:
            return False
        least_recent = min(self.sessions.values(), key=lambda s: (s.last_used_ms, s.id))
        if now_ms - least_recent.last_used_ms > self.eviction_ms:
            self._evict(least_recent)
            return True
        candidates = [
            s
            for s in self.sessions.values()
            if (s.evictable_by_privileged if privileged else s.evictable_by_all)
        ]
        if not candidates:
            return False
        smallest = min(candidates, key=lambda s: s.evictable_key)
        if key < smallest.evictable_key:
            return False
        self._evict(smallest)
        return True

    def _evict(self, session: FetchSession) -> None:
        del self.sessions[session.id]
        self.evictions += 1


@dataclass(slots=True)
class FetchContext:
    """How one fetch request is served: which partitions to read and how to answer.

    ``kind`` is "error" (a session error answers alone), "sessionless" (every partition, no
    session), "full" (every partition, then a new session) or "incremental" (the session's
    partitions are read; only changed ones are answered).
    """

    kind: str
    partitions: list[tuple[PartitionKey, PartitionParams]]
    error: ErrorCode = ErrorCode.NONE
    session: FetchSession | None = None
    request_epoch: int = INITIAL_EPOCH
    privileged: bool = False
    uses_topic_ids: bool = False
    removed: list[PartitionKey] = field(default_factory=list)

    def finish(
        self,
        cache: FetchSessionCache,
        results: Sequence[tuple[PartitionKey, PartitionData]],
        now_ms: int,
    ) -> tuple[ErrorCode, int, list[tuple[PartitionKey, PartitionData]]]:
        """``(error, session id, partitions to send)`` for the results of the reads."""
        if self.kind == "error":
            return self.error, INVALID_SESSION_ID, []
        if self.kind == "sessionless":
            return ErrorCode.NONE, INVALID_SESSION_ID, list(results)
        if self.kind == "full":
            params = dict(self.partitions)
            cached = {
                key: CachedPartition(params[key], data.high_watermark, data.log_start_offset)
                for key, data in results
            }
            session_id = cache.maybe_create(now_ms, self.privileged, cached, self.uses_topic_ids)
            return ErrorCode.NONE, session_id, list(results)
        session = self.session
        assert session is not None
        if session.epoch != next_epoch(self.request_epoch):
            return ErrorCode.INVALID_FETCH_SESSION_EPOCH, session.id, []
        selected: list[tuple[PartitionKey, PartitionData]] = []
        for key, data in results:
            cached_partition = session.partitions.get(key)
            if cached_partition is None or not cached_partition.must_respond(data, True):
                continue
            selected.append((key, data))
            if data.records:
                # Partitions that returned data go to the back: the next fetch reads others first.
                session.partitions[key] = session.partitions.pop(key)
        return ErrorCode.NONE, session.id, selected


def new_context(
    cache: FetchSessionCache,
    *,
    version: int,
    session_id: int,
    epoch: int,
    fetch: dict[PartitionKey, PartitionParams],
    forget: Sequence[PartitionKey],
    privileged: bool,
    now_ms: int,
) -> FetchContext:
    """Resolve a fetch request's session fields into a context (KIP-227 rules)."""
    uses_topic_ids = version >= 13
    if version < 7:
        epoch, session_id = FINAL_EPOCH, INVALID_SESSION_ID
    if epoch in (INITIAL_EPOCH, FINAL_EPOCH):
        if session_id != INVALID_SESSION_ID:
            cache.remove(session_id)
        kind = "sessionless" if epoch == FINAL_EPOCH else "full"
        return FetchContext(
            kind,
            list(fetch.items()),
            privileged=privileged,
            uses_topic_ids=uses_topic_ids,
        )
    session = cache.get(session_id)
    if session is None:
        return FetchContext("error", [], ErrorCode.FETCH_SESSION_ID_NOT_FOUND)
    if session.epoch != epoch:
        return FetchContext("error", [], ErrorCode.INVALID_FETCH_SESSION_EPOCH)
    if session.uses_topic_ids != uses_topic_ids:
        return FetchContext("error", [], ErrorCode.FETCH_SESSION_TOPIC_ID_ERROR)
    _, _, removed = session.update(fetch, forget)
    if not session.partitions:
        cache.remove(session.id)
        return FetchContext("sessionless", list(fetch.items()), removed=removed)
    cache.touch(session, now_ms)
    session.epoch = next_epoch(session.epoch)
    return FetchContext(
        "incremental",
        [(key, cached.params) for key, cached in session.partitions.items()],
        session=session,
        request_epoch=epoch,
        privileged=privileged,
        uses_topic_ids=uses_topic_ids,
        removed=removed,
    )
