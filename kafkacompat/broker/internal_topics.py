"""The internal topics ``__consumer_offsets`` and ``__transaction_state``, opened for the group
and transaction coordinators.

Each is created on first use through the controller (Kafka creates them on the first
FindCoordinator), with Kafka's settings: ``offsets.topic.num.partitions`` and
``offsets.topic.replication.factor``, ``transaction.state.log.num.partitions`` and
``transaction.state.log.replication.factor`` (replicas capped at the live brokers), compacted.

A single broker coordinates every partition from the start. A data directory written before the
internal topics existed kept this state in the state store's namespaces of the same names: on
first start their entries are written to the topics, then the namespace files are removed.
"""

from __future__ import annotations

import logging

from kafkacompat.cluster.controller import Controller
from kafkacompat.config import Config
from kafkacompat.coordinators.internal_records import GROUP_RECORDS, TRANSACTION_RECORDS
from kafkacompat.coordinators.internal_topic import (
    INTERNAL_TOPIC_CONFIGS,
    InternalTopic,
    TopicCreator,
)
from kafkacompat.errors import ErrorCode, KafkaError
from kafkacompat.partitions.manager import PartitionManager
from kafkacompat.storage.state_store import StateStore
from kafkacompat.storage.topic_names import OFFSETS_TOPIC, TRANSACTION_STATE_TOPIC

__all__ = ["open_internal_topics"]

log = logging.getLogger("kafkacompat.broker")


def _creator(controller: Controller, config: Config, factor_setting: str) -> TopicCreator:
    async def create(name: str, partitions: int) -> None:
        factor = max(1, min(config.get_int(factor_setting), len(controller.live_brokers())))
        try:
            await controller.create_topic(
                name, partitions, INTERNAL_TOPIC_CONFIGS, replication_factor=factor
            )
        except KafkaError as exc:
            if exc.code != ErrorCode.TOPIC_ALREADY_EXISTS:
                raise
        else:
            log.info("created internal topic %s with %d partitions", name, partitions)

    return create


def _migrate(state: StateStore, topic: InternalTopic) -> None:
    """Move a namespace of the same name into ``topic`` (written by the topic's writer; the
    namespace file is removed once its entries are in the log)."""
    if not state.exists(topic.name):
        return
    entries = list(state.namespace(topic.name).items())
    if entries:
        log.info("moving %d entries of the state store into %s", len(entries), topic.name)
        topic.put_many(entries)
    topic.when_written(lambda: state.remove(topic.name))


def open_internal_topics(
    config: Config, partitions: PartitionManager, controller: Controller, *, single: bool
) -> tuple[InternalTopic, InternalTopic]:
    """``(__consumer_offsets, __transaction_state)``; on a single broker (``single``) all
    their partitions are coordinated here and a data directory's older state is moved in."""
    offsets = InternalTopic(
        OFFSETS_TOPIC,
        config.get_int("offsets.topic.num.partitions"),
        GROUP_RECORDS,
        partitions,
        _creator(controller, config, "offsets.topic.replication.factor"),
    )
    transactions = InternalTopic(
        TRANSACTION_STATE_TOPIC,
        config.get_int("transaction.state.log.num.partitions"),
        TRANSACTION_RECORDS,
        partitions,
        _creator(controller, config, "transaction.state.log.replication.factor"),
    )
    if single:
        for topic in (offsets, transactions):
            topic.load_all_now()
            _migrate(partitions.state, topic)
    return offsets, transactions
