"""Client quotas: resolve each client's quotas from the durable definitions and throttle it.

As Kafka's ClientQuotaManager (with its default quota callback): a client (user, client-id) is
measured by a sensor shared by every connection that resolves to the same quota entity, and its
limit is the most specific quota defined, in the order

    /users/<u>/clients/<c>, /users/<u>/clients/<default>, /users/<u>,
    /users/<default>/clients/<c>, /users/<default>/clients/<default>, /users/<default>,
    /clients/<c>, /clients/<default>.

The user is the principal's name (``User:alice`` -> ``alice``; unauthenticated clients are
``ANONYMOUS``). A change of the definitions applies to the next request of every connection.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from enum import Enum
from typing import Any

from kafkacompat.config import Config
from kafkacompat.security.quota_rate import RateWindows, SampledRate, throttle_time_ms
from kafkacompat.security.quota_store import (
    CLIENT_ID,
    IP,
    USER,
    Alteration,
    AlterResult,
    Entity,
    HostCheck,
    QuotaStore,
)
from kafkacompat.security.quota_usage import (
    FETCH,
    PRODUCE,
    REQUEST_QUOTA_EXEMPT,
    empty_throttled_fetch,
    fetch_response_bytes,
    is_follower_fetch,
)
from kafkacompat.storage.state_store import Namespace

__all__ = ["QuotaKind", "QuotaManager", "user_of"]

#: A sensor nobody recorded into for this long is dropped (Kafka's inactive sensor expiry).
_SENSOR_EXPIRY_MS = 3_600_000
_SWEEP_EVERY_MS = 60_000


class QuotaKind(Enum):
    """The enforced quota types and the key each is defined by."""

    PRODUCE = "producer_byte_rate"
    FETCH = "consumer_byte_rate"
    REQUEST = "request_percentage"


def user_of(principal: str) -> str:
    """The user entity name of a principal: its name, without the principal type."""
    _kind, sep, name = principal.partition(":")
    return name if sep else principal


#: (user tag, client-id tag) of a sensor: "" where the quota entity has no such part.
Tags = tuple[str, str]


class _Resolver:
    """One quota type's overrides, resolved to sensor tags and limits as Kafka's default
    quota callback does."""

    def __init__(self, overrides: dict[Entity, float]) -> None:
        self.overrides = overrides

    def tags(self, user: str, client_id: str) -> Tags:
        """Which sensor the client shares: the level its quota comes from."""
        o = self.overrides
        if (
            _uc(user, client_id) in o
            or _uc(user, None) in o
            or (((USER, user),) not in o and (_uc(None, client_id) in o or _uc(None, None) in o))
        ):
            return (user, client_id)
        if ((USER, user),) in o or ((USER, None),) in o:
            return (user, "")
        return ("", client_id)

    def limit(self, tags: Tags) -> float | None:
        """The quota of a sensor's tags; None: unlimited."""
        user, client_id = tags
        o = self.overrides
        if user and client_id:
            candidates = [
                _uc(user, client_id),
                _uc(user, None),
                _uc(None, client_id),
                _uc(None, None),
            ]
        elif user:
            candidates = [((USER, user),), ((USER, None),)]
        elif client_id:
            candidates = [((CLIENT_ID, client_id),), ((CLIENT_ID, None),)]
        else:
            return None
        for entity in candidates:
            value = o.get(entity)
            if value is not None:
                return value
        return None


def _uc(user: str | None, client_id: str | None) -> Entity:
    return ((CLIENT_ID, client_id), (USER, user))


class QuotaManager:
    """Durable quota definitions plus their enforcement on each request."""

    def __init__(
        self,
        config: Config,
        namespace: Namespace,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.store = QuotaStore(namespace)
        self.windows = RateWindows(
            config.get_int("quota.window.num"), config.get_int("quota.window.size.seconds") * 1000
        )
        self._clock = clock
        self._sensors: dict[tuple[QuotaKind, Tags], SampledRate] = {}
        self._resolved: dict[tuple[QuotaKind, str, str], tuple[Tags, float | None]] = {}
        self._resolvers: dict[QuotaKind, _Resolver] = {}
        self._version = -1
        self._next_sweep_ms = 0
        #: Whether any quota is enforced: when False the pipeline skips `throttle_ms`.
        self.active = False
        self._refresh()

    # -- definitions -------------------------------------------------------------------------

    def _refresh(self) -> None:
        """Rebuild the resolvers after the definitions changed."""
        overrides: dict[QuotaKind, dict[Entity, float]] = {kind: {} for kind in QuotaKind}
        for entity, quotas in self.store.quotas().items():
            if any(kind == IP for kind, _name in entity):
                continue
            for kind in QuotaKind:
                value = quotas.get(kind.value)
                if value is not None:
                    overrides[kind][entity] = value
        self._resolvers = {kind: _Resolver(o) for kind, o in overrides.items()}
        self._resolved.clear()
        self._version = self.store.version
        self.active = any(overrides.values())

    def alter(
        self, alterations: Sequence[Alteration], validate_only: bool, host_ok: HostCheck
    ) -> list[AlterResult]:
        """Alter the definitions (see `QuotaStore.alter`); live connections follow at once."""
        results = self.store.alter(alterations, validate_only, host_ok)
        if self.store.version != self._version:
            self._refresh()
        return results

    def quota(self, kind: QuotaKind, principal: str, client_id: str | None) -> float | None:
        """The quota a client is held to (None: unlimited)."""
        return self._resolve(kind, user_of(principal), client_id or "")[1]

    def _resolve(self, kind: QuotaKind, user: str, client_id: str) -> tuple[Tags, float | None]:
        if self.store.version != self._version:
            self._refresh()
        key = (kind, user, client_id)
        found = self._resolved.get(key)
        if found is None:
            resolver = self._resolvers[kind]
            tags = resolver.tags(user, client_id)
            found = (tags, resolver.limit(tags))
            if len(self._resolved) > 100_000:
                self._resolved.clear()
            self._resolved[key] = found
        return found

    def max_fetch_bytes(self, principal: str, client_id: str | None) -> int:
        """The most a consumer may fetch at once without being throttled for it alone (Kafka
        caps fetch.max.bytes to it); very large when it has no quota."""
        limit = self.quota(QuotaKind.FETCH, principal, client_id)
        if limit is None:
            return 2**31 - 1
        span_s = (self.windows.samples - 1) * self.windows.window_ms / 1000
        return int(min(limit * span_s, 2**31 - 1))

    # -- enforcement -------------------------------------------------------------------------

    def _record(
        self, kind: QuotaKind, user: str, client_id: str, value: float, now_ms: int
    ) -> tuple[SampledRate, float | None]:
        tags, limit = self._resolve(kind, user, client_id)
        sensor = self._sensors.get((kind, tags))
        if sensor is None:
            sensor = self._sensors[(kind, tags)] = SampledRate(self.windows)
        sensor.record(value, now_ms)
        return sensor, limit

    def record(self, kind: QuotaKind, principal: str, client_id: str | None, value: float) -> int:
        """Record ``value`` against a client's quota of ``kind``; the throttle time it earns."""
        now_ms = self._now_ms()
        sensor, limit = self._record(kind, user_of(principal), client_id or "", value, now_ms)
        if limit is None:
            return 0
        throttle = throttle_time_ms(sensor, limit, now_ms)
        if kind is QuotaKind.REQUEST:
            throttle = min(throttle, self.windows.window_ms)  # Kafka caps request throttling
        return throttle

    def throttle_ms(
        self,
        principal: str,
        client_id: str | None,
        api_key: int,
        request: Any,
        response: Any,
        request_bytes: int,
        elapsed: float,
    ) -> int:
        """Record one request's use and return how long its connection is to be throttled.

        Produce counts its bytes (and, unless acks=0, its time); a consumer's Fetch its response
        bytes, and when throttled its response is emptied and its bytes taken back, as Kafka
        does; other requests their handler time, as a percentage of one thread.
        """
        self._maybe_sweep()
        percent = elapsed * 100.0
        if api_key == PRODUCE:
            throttle = self.record(QuotaKind.PRODUCE, principal, client_id, request_bytes)
            if request.acks != 0:
                throttle = max(
                    throttle, self.record(QuotaKind.REQUEST, principal, client_id, percent)
                )
            return throttle
        if api_key == FETCH:
            return self._throttle_fetch(principal, client_id, request, response, percent)
        if api_key in REQUEST_QUOTA_EXEMPT:
            return 0
        return self.record(QuotaKind.REQUEST, principal, client_id, percent)

    def _throttle_fetch(
        self, principal: str, client_id: str | None, request: Any, response: Any, percent: float
    ) -> int:
        if is_follower_fetch(request):
            return 0
        # A long-polling fetch spends its time waiting, not working: only a fetch that did not
        # wait is counted against the request-time quota (Kafka counts thread time only).
        throttle = 0
        if request.max_wait_ms <= 0:
            throttle = self.record(QuotaKind.REQUEST, principal, client_id, percent)
        if response is None:
            return throttle
        size = fetch_response_bytes(response)
        user = user_of(principal)
        client = client_id or ""
        now_ms = self._now_ms()
        sensor, limit = self._record(QuotaKind.FETCH, user, client, size, now_ms)
        if limit is not None:
            throttle = max(throttle, throttle_time_ms(sensor, limit, now_ms))
        if throttle > 0 and size <= self.max_fetch_bytes(principal, client_id):
            # Kafka answers a throttled consumer with nothing and takes its bytes back. A response
            # too big to ever fit the quota window is sent all the same, or it would starve.
            sensor.record(-size, now_ms)
            empty_throttled_fetch(request, response)
        return throttle

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def _maybe_sweep(self) -> None:
        now_ms = self._now_ms()
        if now_ms < self._next_sweep_ms:
            return
        self._next_sweep_ms = now_ms + _SWEEP_EVERY_MS
        idle = [
            k for k, s in self._sensors.items() if now_ms - s.last_record_ms > _SENSOR_EXPIRY_MS
        ]
        for key in idle:
            del self._sensors[key]
