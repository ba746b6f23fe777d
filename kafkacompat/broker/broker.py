"""A broker: its state (partitions, metadata, coordinators) wired to the request pipeline.

This is the root that builds the services; handlers never see it, only the `BrokerServices`
given to them through their `RequestContext`.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
from collections.abc import Mapping
from functools import partial

import trio

from kafkacompat.broker.api_versions import limit_versions
from kafkacompat.broker.cluster_node import ClusterNode
from kafkacompat.broker.dispatch import RequestPipeline
from kafkacompat.broker.fetch_sessions import FetchSessionCache
from kafkacompat.broker.identity import META_FILE, load_or_create_identity, replace_cluster_id
from kafkacompat.broker.internal_topics import open_internal_topics
from kafkacompat.broker.remote_markers import ClusterMarkers
from kafkacompat.broker.replication import Replication
from kafkacompat.broker.router import Handler, registered_handlers
from kafkacompat.broker.services import BrokerServices
from kafkacompat.clock import BrokerClock, use_clock
from kafkacompat.cluster.broker_client import BrokerClients
from kafkacompat.cluster.cluster_admin import ClusterAdmin
from kafkacompat.cluster.controller import LocalController
from kafkacompat.cluster.etcd_store import EtcdStore
from kafkacompat.cluster.leader_election import election_settings
from kafkacompat.cluster.metadata_image import BrokerEndpoint, BrokerInfo, MetadataView
from kafkacompat.cluster.producer_id_blocks import reserve_producer_ids
from kafkacompat.cluster.replica_fetcher import FetcherSettings, ReplicaFetchers
from kafkacompat.cluster.topic_configs import topic_defaults
from kafkacompat.config import Config, HostPort
from kafkacompat.coordinators.group_service import GroupService
from kafkacompat.coordinators.producer_ids import producer_id_manager
from kafkacompat.coordinators.transaction_service import TransactionService
from kafkacompat.errors import KafkaError
from kafkacompat.faults import Faults
from kafkacompat.listeners import configured_listeners
from kafkacompat.partitions.log_cleaner import LogCleaner
from kafkacompat.partitions.manager import PartitionManager
from kafkacompat.security.services import build_security
from kafkacompat.storage.log_dirs import parse_log_dirs

__all__ = ["Broker"]


log = logging.getLogger("kafkacompat.broker")


def _load_handlers() -> dict[int, Handler]:
    """Import every module of this package: importing an API module registers its handlers."""
    import kafkacompat.broker as package

    for info in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{package.__name__}.{info.name}")
    return registered_handlers()


class Broker:
    """One broker's state and its request pipeline; the server feeds the pipeline frames."""

    def __init__(self, config: Config, *, clock: BrokerClock | None = None) -> None:
        self.config = config
        #: This broker's time (`kafkacompat.clock`). Built inside a Trio run (as `serve` does),
        #: it is installed for the building task and every task and worker thread started from
        #: it, so `now_ms` there reads it; built outside one, it leaves the thread's clock alone.
        self.clock = clock or BrokerClock()
        if trio.lowlevel.in_trio_run():
            use_clock(self.clock)
        self.node_id = config.node_id
        fresh_data_dir = not (config.data_dir / META_FILE).exists()
        identity = load_or_create_identity(config.data_dir, config.node_id, config.cluster_id)
        self.cluster_id = identity.cluster_id
        #: Every listener, and the address clients of each are told (known once bound).
        self.listeners = configured_listeners(config)
        self.advertised_by_listener = {
            listener.name: listener.advertised_for(listener.bind.port)
            for listener in self.listeners
        }
        # Internal state (offsets, producer ids) is fsynced only when every message is, as the
        # logs are: Kafka's own __consumer_offsets relies on the page cache by default too.
        fsync_everything = config.get_int("log.flush.interval.messages") == 1
        self.partitions = PartitionManager(
            config.data_dir,
            topic_defaults(config),
            producer_expiration_ms=config.get_int("producer.id.expiration.ms"),
            fsync_state=fsync_everything,
            max_open_files=config.get_int("log.open.files.max"),
            log_dirs=parse_log_dirs(config.get_str("log.dirs")),
        )
        #: In a cluster (``metadata.store.url``): membership and local hosting; None alone.
        self.cluster: ClusterNode | None = None
        self.controller: LocalController | ClusterAdmin
        if config.get_str("metadata.store.url"):
            self.cluster = ClusterNode(
                config,
                self.partitions,
                self.cluster_id,
                self._broker_info(),
                fresh_data_dir=fresh_data_dir,
                adopt_cluster_id=self._adopt_cluster_id,
            )
            self.cluster.member.elections = election_settings(config)
            self.controller = self.cluster.member.admin
            metadata_view = self.cluster.member.view
        else:
            self.controller = LocalController(
                self.partitions,
                self.cluster_id,
                self._broker_info(),
                max_partitions=config.get_int("max.broker.partitions"),
            )
            metadata_view = self.controller.view
        self.cleaner = LogCleaner(
            self.partitions,
            threads=config.get_int("log.cleaner.threads"),
            backoff_ms=config.get_int("log.cleaner.backoff.ms"),
            dedupe_buffer_bytes=config.get_int("log.cleaner.dedupe.buffer.size"),
        )
        offsets_topic, transactions_topic = open_internal_topics(
            config, self.partitions, self.controller, single=self.cluster is None
        )
        self.groups = GroupService(config, offsets_topic)
        remote = None
        #: Leading and following partitions (a cluster member only).
        self.replication: Replication | None = None
        if self.cluster is not None:
            clients = BrokerClients(
                metadata_view, self.listeners[0].name, f"kafkacompat-broker-{self.node_id}"
            )
            remote = ClusterMarkers(self.node_id, metadata_view, clients)
            store = self.cluster.store
            producer_id_manager(self.partitions.state).reserve_block = partial(
                reserve_producer_ids, store
            )
            self.replication = self._replication(metadata_view, store)
            self.cluster.replication = self.replication
        self.transactions = TransactionService(
            config,
            self.partitions.state,
            self.partitions,
            self.groups.coordinator,
            transactions_topic,
            offsets_topic,
            remote,
        )
        if self.cluster is not None:
            self.cluster.coordinators = (self.groups, self.transactions)
        handlers, api_ranges = limit_versions(_load_handlers(), config)
        self.services = BrokerServices(
            node_id=self.node_id,
            config=config,
            partitions=self.partitions,
            metadata=metadata_view,
            controller=self.controller,
            groups=self.groups,
            transactions=self.transactions,
            producer_ids=producer_id_manager(self.partitions.state),
            fetch_sessions=FetchSessionCache(
                config.get_int("max.incremental.fetch.session.cache.slots")
            ),
            api_ranges=api_ranges,
            security=build_security(config, self.partitions.state),
            clock=self.clock,
            replication=self.replication,
        )
        self.pipeline = RequestPipeline(handlers, self.services)
        #: Faults to inject on purpose (tests); none are set unless a test sets them.
        self.faults = Faults(self.pipeline)
        self._last_retention_ms = self.clock.now_ms()
        self.clock.on_advance(self._catch_up)

    def _replication(self, view: MetadataView, store: EtcdStore) -> Replication:
        config, cluster = self.config, self.cluster
        assert cluster is not None
        fetch_clients = [
            BrokerClients(
                view, self.listeners[0].name, f"kafkacompat-replica-fetcher-{self.node_id}-{n}"
            )
            for n in range(max(1, config.get_int("num.replica.fetchers")))
        ]
        settings = FetcherSettings(
            max_wait_ms=config.get_int("replica.fetch.wait.max.ms"),
            min_bytes=config.get_int("replica.fetch.min.bytes"),
            max_bytes=config.get_int("replica.fetch.max.bytes"),
            response_max_bytes=config.get_int("replica.fetch.response.max.bytes"),
            backoff_ms=config.get_int("replica.fetch.backoff.ms"),
        )
        fetchers = ReplicaFetchers(
            fetch_clients, self.node_id, lambda: cluster.member.registration.epoch, settings
        )
        return Replication(
            self.node_id,
            self.partitions,
            store,
            view,
            fetchers,
            max_lag_ms=config.get_int("replica.lag.time.max.ms"),
            checkpoint_interval_ms=config.get_int("replica.high.watermark.checkpoint.interval.ms"),
        )

    def _broker_info(self) -> BrokerInfo:
        first = self.endpoint
        endpoints = tuple(
            BrokerEndpoint(name, address.host, address.port)
            for name, address in self.advertised_by_listener.items()
        )
        rack = self.config.get_str("broker.rack") or None
        return BrokerInfo(self.node_id, first.host, first.port, rack=rack, endpoints=endpoints)

    def _adopt_cluster_id(self, cluster_id: str) -> None:
        """A new data directory joining an existing cluster takes the cluster's id."""
        replace_cluster_id(self.config.data_dir, cluster_id, self.node_id)
        self.cluster_id = cluster_id

    def bind(self, bound_ports: Mapping[str, int]) -> None:
        """Record the ports actually bound, by listener name (they differ from the configured
        ones for port 0)."""
        for listener in self.listeners:
            if listener.name in bound_ports:
                address = listener.advertised_for(bound_ports[listener.name])
                self.advertised_by_listener[listener.name] = address
        if self.cluster is not None:
            self.cluster.set_endpoint(self._broker_info())
        elif isinstance(self.controller, LocalController):
            self.controller.set_endpoint(self._broker_info())

    @property
    def endpoint(self) -> HostPort:
        """The address of the first listener, as clients are told it."""
        return self.advertised_by_listener[self.listeners[0].name]

    def endpoint_for(self, listener: str) -> HostPort:
        """The address clients of ``listener`` are told."""
        return self.advertised_by_listener[listener.upper()]

    async def write_internal_state(self) -> None:
        """Write what the coordinators changed and have not written yet (stopping)."""
        for service in (self.groups, self.transactions):
            try:
                await service.settled()
            except (KafkaError, OSError) as exc:
                log.error("cannot write %s before stopping: %s", service.topic.name, exc)

    def close(self) -> None:
        """Flush and close storage; the next start needs no recovery."""
        self.partitions.close()

    async def run_background_tasks(self) -> None:
        """Group timers, retention, time-based flushes and log-directory moves, forever (storage
        work on worker threads)."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self.groups.run_timers)
            nursery.start_soon(self.groups.topic.run_writer)
            nursery.start_soon(self.transactions.run_timers)
            nursery.start_soon(self.transactions.topic.run_writer)
            nursery.start_soon(self.partitions.run_moves)
            if self.config.get_bool("log.cleaner.enable"):
                nursery.start_soon(self.cleaner.run)
            await self._run_storage_maintenance()

    async def _run_storage_maintenance(self) -> None:
        interval = self.config.get_int("log.retention.check.interval.ms") / 1000
        while True:
            await trio.sleep(min(interval, 1.0))
            now = self.clock.now_ms()
            retention = now - self._last_retention_ms >= interval * 1000
            if retention:
                self._last_retention_ms = now
            await self.partitions.maintain(now, retention=retention)

    async def _catch_up(self, now: int) -> None:
        """After the clock jumped to ``now``: run every timer that became due, and check
        retention and compaction at once (their check intervals are not waited for)."""
        self.groups.catch_up()
        await self.transactions.catch_up()
        self._last_retention_ms = now
        await self.partitions.maintain(now, retention=True)
        if self.config.get_bool("log.cleaner.enable"):
            await self.cleaner.clean_due()
