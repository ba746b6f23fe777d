"""Followers' fetching: ``num.replica.fetchers`` tasks per leader broker copy the partitions
this broker follows there (each partition always by the same one, Kafka's
``abs(31 * topic.hashCode() + partition) % num.replica.fetchers``), as Kafka's replica fetcher
threads do; each task has its own connection.

Each round is one Fetch (the newest version, with this broker's replica id and broker epoch in
``ReplicaState``) for every partition followed at that leader, from the local log end, carrying
the current leader epoch and the epoch of the last local batch. The leader long-polls it like a
consumer's (``replica.fetch.wait.max.ms``, ``replica.fetch.min.bytes``). Batches come back as
the leader wrote them and are appended verbatim; the leader's high watermark, capped by the
local log end, becomes the follower's. A ``DivergingEpoch`` in the answer (the local tail was
written under an epoch the leader does not have, KIP-320/KIP-279) truncates the local log there
first. A partition answered with an error, and a leader that cannot be reached, are asked
again after ``replica.fetch.backoff.ms`` (or at the next leader epoch).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import trio

from kafkacompat.cluster.broker_client import BrokerClients, BrokerUnreachable
from kafkacompat.errors import ErrorCode, KafkaError
from kafkacompat.java_hash import java_int, java_string_hash
from kafkacompat.partitions.partition import Partition
from kafkacompat.protocol.messages.fetch_request import API_KEY as FETCH
from kafkacompat.protocol.messages.fetch_request import (
    FetchPartition,
    FetchRequest,
    FetchTopic,
    ReplicaState,
)
from kafkacompat.protocol.messages.fetch_response import FetchResponse, PartitionData

__all__ = ["FetcherSettings", "FollowedPartition", "ReplicaFetchers"]

log = logging.getLogger(__name__)

#: Errors after which a partition waits for the metadata to change (leadership moved).
_LEADERSHIP_ERRORS = frozenset(
    {
        ErrorCode.NOT_LEADER_OR_FOLLOWER,
        ErrorCode.FENCED_LEADER_EPOCH,
        ErrorCode.UNKNOWN_LEADER_EPOCH,
        ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
        ErrorCode.UNKNOWN_TOPIC_ID,
    }
)


@dataclass(frozen=True, slots=True)
class FetcherSettings:
    """Kafka's ``replica.fetch.*`` settings."""

    max_wait_ms: int = 500
    min_bytes: int = 1
    max_bytes: int = 1024 * 1024  # per partition
    response_max_bytes: int = 10 * 1024 * 1024
    backoff_ms: int = 1000


@dataclass(slots=True)
class FollowedPartition:
    """A partition this broker follows: at which leader, in which leader epoch."""

    partition: Partition
    topic_id: uuid.UUID
    leader: int
    leader_epoch: int
    #: After an error: not fetched before this trio time (or a new leader epoch).
    delayed_until: float = field(default=0.0, compare=False)


Key = tuple[str, int]
#: A fetcher task: the leader it fetches from and its number among that leader's fetchers.
FetcherId = tuple[int, int]


def fetcher_number(topic: str, index: int, fetchers: int) -> int:
    """Which of a leader's fetchers copies the partition."""
    return abs(java_int(31 * java_string_hash(topic) + index)) % fetchers


class ReplicaFetchers:
    """The fetcher tasks of one broker, ``len(clients)`` per leader it follows partitions of
    (fetcher number i uses ``clients[i]``)."""

    def __init__(
        self,
        clients: list[BrokerClients],
        node_id: int,
        broker_epoch: Callable[[], int],
        settings: FetcherSettings,
    ) -> None:
        self._clients = clients
        self._node_id = node_id
        self._broker_epoch = broker_epoch
        self._settings = settings
        self._by_fetcher: dict[FetcherId, dict[Key, FollowedPartition]] = {}
        self._wake: dict[FetcherId, trio.Event] = {}
        self._nursery: trio.Nursery | None = None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Host the fetcher tasks until cancelled."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            await trio.sleep_forever()

    def follow(self, wanted: Mapping[Key, FollowedPartition]) -> None:
        """Fetch exactly ``wanted`` from now on (the whole set, after each metadata change)."""
        by_fetcher: dict[FetcherId, dict[Key, FollowedPartition]] = {}
        count = len(self._clients)
        for key, followed in wanted.items():
            fetcher = (followed.leader, fetcher_number(key[0], key[1], count))
            old = self._by_fetcher.get(fetcher, {}).get(key)
            if old is not None and old.leader_epoch == followed.leader_epoch:
                followed.delayed_until = old.delayed_until
            by_fetcher.setdefault(fetcher, {})[key] = followed
        self._by_fetcher = by_fetcher
        for fetcher in set(self._wake) | set(by_fetcher):
            self._wake.get(fetcher, trio.Event()).set()
            if fetcher in by_fetcher and fetcher not in self._wake:
                self._start(fetcher)

    def _start(self, fetcher: FetcherId) -> None:
        assert self._nursery is not None, "ReplicaFetchers.run must be started first"
        self._wake[fetcher] = trio.Event()
        self._nursery.start_soon(self._fetch_from, fetcher)

    async def _fetch_from(self, fetcher: FetcherId) -> None:
        leader, number = fetcher
        try:
            while self._by_fetcher.get(fetcher):
                wake = self._wake[fetcher] = trio.Event()
                now = trio.current_time()
                followed = self._by_fetcher[fetcher]
                partitions = {k: p for k, p in followed.items() if p.delayed_until <= now}
                if not partitions:
                    with trio.move_on_at(min(p.delayed_until for p in followed.values())):
                        await wake.wait()
                    continue
                try:
                    response = await self._clients[number].request(
                        leader,
                        FETCH,
                        self._request(partitions),
                        timeout=self._settings.max_wait_ms / 1000 + 10,
                    )
                except BrokerUnreachable as exc:
                    log.info("replica fetch from broker %d: %s", leader, exc)
                    with trio.move_on_after(self._settings.backoff_ms / 1000):
                        await wake.wait()
                    continue
                await self._apply(response, partitions)
        finally:
            self._wake.pop(fetcher, None)

    def _request(self, partitions: Mapping[Key, FollowedPartition]) -> FetchRequest:
        topics: dict[uuid.UUID, FetchTopic] = {}
        for (name, index), followed in partitions.items():
            hosted = followed.partition
            topic = topics.setdefault(followed.topic_id, FetchTopic(name, followed.topic_id))
            topic.partitions.append(
                FetchPartition(
                    partition=index,
                    current_leader_epoch=followed.leader_epoch,
                    fetch_offset=hosted.log_end_offset,
                    last_fetched_epoch=hosted.leader_epoch,
                    log_start_offset=hosted.log_start_offset,
                    partition_max_bytes=self._settings.max_bytes,
                )
            )
        settings = self._settings
        return FetchRequest(
            replica_id=self._node_id,
            replica_state=ReplicaState(self._node_id, self._broker_epoch()),
            max_wait_ms=settings.max_wait_ms,
            min_bytes=settings.min_bytes,
            max_bytes=settings.response_max_bytes,
            topics=list(topics.values()),
        )

    async def _apply(
        self, response: FetchResponse, partitions: Mapping[Key, FollowedPartition]
    ) -> None:
        by_id = {(f.topic_id, key[1]): f for key, f in partitions.items()}
        if response.error_code != ErrorCode.NONE:
            log.info("replica fetch refused: %s", ErrorCode(response.error_code).name)
            await trio.sleep(self._settings.backoff_ms / 1000)
            return
        for topic in response.responses:
            for data in topic.partitions:
                followed = by_id.get((topic.topic_id, data.partition_index))
                if followed is None or followed.partition.deleted:
                    continue
                try:
                    await self._apply_partition(followed, data)
                except KafkaError as exc:
                    hosted = followed.partition
                    log.warning(
                        "replicating %s-%d from broker %d failed: %s",
                        hosted.topic,
                        hosted.index,
                        followed.leader,
                        exc,
                    )
                    self._delay(followed)

    def _delay(self, followed: FollowedPartition) -> None:
        followed.delayed_until = trio.current_time() + self._settings.backoff_ms / 1000

    async def _apply_partition(self, followed: FollowedPartition, data: PartitionData) -> None:
        hosted = followed.partition
        if not hosted.applies(followed.leader_epoch):
            return  # a late answer of a leader this replica no longer follows
        code = ErrorCode(data.error_code)
        if code in _LEADERSHIP_ERRORS:
            # The leader has not caught up with the metadata yet, or leadership moved on.
            self._delay(followed)
            return
        if code == ErrorCode.OFFSET_OUT_OF_RANGE and hosted.log_end_offset < data.log_start_offset:
            # Behind the leader's log start (its retention went past us): start over there.
            await hosted.truncate_fully(data.log_start_offset, followed.leader_epoch)
            return
        if code != ErrorCode.NONE:
            raise KafkaError(code, f"leader answered {code.name}")
        diverging = data.diverging_epoch
        if diverging.epoch >= 0 or diverging.end_offset >= 0:
            offset = hosted.diverging_truncation_offset(diverging.epoch, diverging.end_offset)
            log.info(
                "%s-%d truncated to %d (diverged from the leader's epoch %d ending at %d)",
                hosted.topic,
                hosted.index,
                offset,
                diverging.epoch,
                diverging.end_offset,
            )
            await hosted.truncate_to(offset, followed.leader_epoch)
            return
        records = data.records
        if records:
            # Decoded from the wire: bytes (a file-backed source only exists on the send side).
            assert isinstance(records, bytes | memoryview)
            await hosted.append_as_follower(records, followed.leader_epoch)
        if hosted.applies(followed.leader_epoch):
            hosted.take_leader_high_watermark(data.high_watermark)
