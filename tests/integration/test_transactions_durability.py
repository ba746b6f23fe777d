"""Transactions survive broker crashes: kill -9 mid-transaction, and a commit interrupted after
its PrepareCommit was written."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from kafkacompat.cluster.topic_configs import topic_defaults
from kafkacompat.coordinators.internal_records import TRANSACTION_RECORDS
from kafkacompat.coordinators.internal_topic import InternalTopic
from kafkacompat.coordinators.transaction_state import TransactionStateStore, TxnState
from kafkacompat.partitions.manager import PartitionManager
from kafkacompat.storage.topic_names import TRANSACTION_STATE_TOPIC
from kafkacompat.testing import BrokerProcess, local_config, running_broker
from tests.integration.txn_clients import TIMEOUT, consume_confluent
from tests.internals import internals

pytestmark = pytest.mark.integration


def test_kill_9_mid_transaction_loses_no_commit_and_shows_no_abort(tmp_path: Path) -> None:
    from confluent_kafka import Producer

    broker = BrokerProcess(tmp_path / "data", {"num.partitions": 1}, dev=False)
    try:
        broker.start()
        config = {"bootstrap.servers": broker.bootstrap, "transactional.id": "t-crash"}
        producer = Producer(config)
        producer.init_transactions(TIMEOUT)
        producer.begin_transaction()
        for value in (b"a1", b"a2", b"a3"):
            producer.produce("crash", value, partition=0)
        producer.commit_transaction(TIMEOUT)
        producer.begin_transaction()
        producer.produce("crash", b"b1", partition=0)
        producer.produce("crash", b"b2", partition=0)
        producer.flush(TIMEOUT)
        broker.kill()
        del producer
        broker.start()
        # Until the open transaction ends, read_committed stops before it.
        assert consume_confluent(broker.bootstrap, "crash", "read_committed") == [
            (0, b"a1"),
            (1, b"a2"),
            (2, b"a3"),
        ]
        successor = Producer({**config, "bootstrap.servers": broker.bootstrap})
        successor.init_transactions(TIMEOUT)  # aborts the transaction the crash left open
        successor.begin_transaction()
        successor.produce("crash", b"c1", partition=0)
        successor.commit_transaction(TIMEOUT)
        assert consume_confluent(broker.bootstrap, "crash", "read_committed") == [
            (0, b"a1"),
            (1, b"a2"),
            (2, b"a3"),
            (7, b"c1"),
        ]
        assert consume_confluent(broker.bootstrap, "crash", "read_uncommitted") == [
            (0, b"a1"),
            (1, b"a2"),
            (2, b"a3"),
            (4, b"b1"),
            (5, b"b2"),
            (7, b"c1"),
        ]
        # A second crash: the aborted-transaction index and producer state come back.
        broker.kill()
        broker.start()
        assert [v for _, v in consume_confluent(broker.bootstrap, "crash", "read_committed")] == [
            b"a1",
            b"a2",
            b"a3",
            b"c1",
        ]
    finally:
        broker.kill()


async def _write_prepare_commit(data_dir: Path, transactional_id: str) -> None:
    """Append a PrepareCommit record for ``transactional_id`` to ``__transaction_state``."""
    config = local_config(data_dir)
    manager = PartitionManager(
        data_dir, topic_defaults(config), producer_expiration_ms=86_400_000, fsync_state=False
    )

    async def no_creation(_name: str, _partitions: int) -> None:
        raise AssertionError("the topic exists")

    try:
        topic = InternalTopic(
            TRANSACTION_STATE_TOPIC, 50, TRANSACTION_RECORDS, manager, no_creation
        )
        topic.load_all_now()
        store = TransactionStateStore(topic)
        txn = store.load()[transactional_id]
        assert txn.state is TxnState.ONGOING
        txn.transition(TxnState.PREPARE_COMMIT, txn.last_update_ms)
        store.write(txn)
        await topic.flush()
    finally:
        manager.close()


def test_prepared_commit_completes_after_restart(tmp_path: Path) -> None:
    from confluent_kafka import Producer

    data_dir = tmp_path / "data"
    with running_broker(local_config(data_dir)) as broker:
        internals(broker).create_topic("prep", 1)
        producer = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": "t-prep"})
        producer.init_transactions(TIMEOUT)
        producer.begin_transaction()
        producer.produce("prep", b"p1", partition=0)
        producer.flush(TIMEOUT)
    del producer
    # As if the broker died right after writing PrepareCommit, before any marker.
    trio.run(_write_prepare_commit, data_dir, "t-prep")
    with running_broker(local_config(data_dir)) as broker:
        assert consume_confluent(broker.bootstrap, "prep", "read_committed") == [(0, b"p1")]
        state = broker.running.broker.transactions.coordinator.describe("t-prep")
        assert state is not None and state.state is TxnState.COMPLETE_COMMIT
