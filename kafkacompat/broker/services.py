"""The services handlers use, built once per broker: no handler sees the broker itself."""

from __future__ import annotations

from dataclasses import dataclass

from kafkacompat.broker.fetch_sessions import FetchSessionCache
from kafkacompat.broker.replication import Replication
from kafkacompat.clock import REAL_TIME, BrokerClock
from kafkacompat.cluster.controller import Controller
from kafkacompat.cluster.metadata_image import MetadataView
from kafkacompat.config import Config
from kafkacompat.coordinators.group_service import GroupService
from kafkacompat.coordinators.producer_ids import ProducerIdManager
from kafkacompat.coordinators.transaction_service import TransactionService
from kafkacompat.partitions.manager import PartitionManager
from kafkacompat.security.services import SecurityServices

__all__ = ["ApiRange", "BrokerServices"]

#: ``(api key, min version, max version)`` of one served API.
ApiRange = tuple[int, int, int]


@dataclass(frozen=True, slots=True)
class BrokerServices:
    node_id: int
    config: Config
    #: The partitions hosted here (reads, appends, markers, record deletion).
    partitions: PartitionManager
    #: The current cluster-metadata image (brokers, topics, leaders).
    metadata: MetadataView
    #: Where topic creation, deletion, growth and config changes go.
    controller: Controller
    groups: GroupService
    transactions: TransactionService
    producer_ids: ProducerIdManager
    fetch_sessions: FetchSessionCache
    #: What ApiVersions advertises: the registered handlers' ranges, by API key.
    api_ranges: tuple[ApiRange, ...]
    #: SASL, SCRAM credentials, the authorizer (None: all allowed) and quotas.
    security: SecurityServices
    #: The broker's clock (`kafkacompat.clock`); `now_ms` reads it in the broker's tasks.
    clock: BrokerClock = REAL_TIME
    #: Leading and following partitions in a cluster (None: a single broker, every partition
    #: its own).
    replication: Replication | None = None
