"""`kafkacompat groups ...` and `kafkacompat top` against a running broker, with kafka-python
consumers committing the offsets they read about."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kafkacompat.cli import main
from kafkacompat.client import AdminClient
from kafkacompat.testing import BrokerThread, local_config, running_broker
from tests.internals import internals

pytestmark = pytest.mark.integration

SETTINGS = {"group.initial.rebalance.delay.ms": 0, "group.min.session.timeout.ms": 500}
#: records per partition: orders 0-2, audit 0
COUNTS = {("orders", 0): 5, ("orders", 1): 3, ("orders", 2): 0, ("audit", 0): 4}
#: audit records carry these CreateTime timestamps (ms)
AUDIT_TIMES = [1000, 2000, 3000, 4000]


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[BrokerThread]:
    with running_broker(local_config(tmp_path / "data").with_settings(settings=SETTINGS)) as b:
        internals(b).create_topic("orders", 3)
        internals(b).create_topic("audit", 1)
        produce(b.bootstrap)
        yield b


def produce(bootstrap: str) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
    try:
        for (topic, partition), count in COUNTS.items():
            for i in range(count):
                stamp = AUDIT_TIMES[i] if topic == "audit" else None
                producer.send(
                    topic, f"{topic}{i}".encode(), partition=partition, timestamp_ms=stamp
                )
        producer.flush(10)
    finally:
        producer.close()


def commit(bootstrap: str, group: str, offsets: dict[tuple[str, int], int]) -> None:
    """Commit offsets as a kafka-python consumer with manually assigned partitions does."""
    from kafka import KafkaConsumer, TopicPartition
    from kafka.structs import OffsetAndMetadata

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        chosen = {
            TopicPartition(t, p): OffsetAndMetadata(o, "", -1) for (t, p), o in offsets.items()
        }
        consumer.assign(list(chosen))
        consumer.commit(chosen)
    finally:
        consumer.close()


def committed_by_consumer(bootstrap: str, group: str) -> dict[tuple[str, int], int | None]:
    """The group's committed offsets as kafka-python reads them."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        return {tp: consumer.committed(TopicPartition(*tp)) for tp in COUNTS}
    finally:
        consumer.close()


class LiveConsumer(threading.Thread):
    """A subscribed kafka-python consumer that reads everything and commits what it read."""

    def __init__(self, bootstrap: str, group: str) -> None:
        super().__init__(daemon=True)
        self.bootstrap, self.group = bootstrap, group
        self.stop_event = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        from kafka import KafkaConsumer

        try:
            consumer = KafkaConsumer(
                "orders",
                bootstrap_servers=self.bootstrap,
                group_id=self.group,
                client_id="live-client",
                auto_offset_reset="earliest",
                enable_auto_commit=False,
                session_timeout_ms=6000,
                heartbeat_interval_ms=200,
            )
            try:
                while not self.stop_event.is_set():
                    if consumer.poll(timeout_ms=100):
                        consumer.commit()
            finally:
                consumer.close()
        except BaseException as error:
            self.error = error


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def run(capsys: pytest.CaptureFixture[str], broker: BrokerThread, *args: str) -> Any:
    """``kafkacompat ARGS --bootstrap-server ...`` in process: (status, stdout, stderr)."""
    status = main([*args, "--bootstrap-server", broker.bootstrap, "--timeout", "10"])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def row(*cells: object) -> str:
    """A describe line as Kafka's tool lays it out for short names."""
    group, topic, partition, current, end, lag, consumer, host, client = map(str, cells)
    return (
        f"{group:<15} {topic:<15} {partition:<10} {current:<15} {end:<15} {lag:<15} "
        f"{consumer:<15} {host:<15} {client}"
    ).rstrip()


HEADER = row(
    "GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "CONSUMER-ID",
    "HOST", "CLIENT-ID",
)  # fmt: skip


def plan(group: str, *rows: tuple[str, int, int]) -> str:
    lines = ["", f"{'GROUP':<30} {'TOPIC':<30} {'PARTITION':<10} NEW-OFFSET"]
    lines += [f"{group:<30} {t:<30} {p:<10} {o}" for t, p, o in rows]
    return "\n".join(lines) + "\n"


def test_describe_an_inactive_group(
    capsys: pytest.CaptureFixture[str], broker: BrokerThread
) -> None:
    commit(broker.bootstrap, "billing", {("orders", 0): 2, ("orders", 1): 3, ("audit", 0): 1})
    assert run(capsys, broker, "groups", "describe", "billing") == (
        0,
        "\n".join([
            "",
            HEADER,
            row("billing", "audit", 0, 1, 4, 3, "-", "-", "-"),
            row("billing", "orders", 0, 2, 5, 3, "-", "-", "-"),
            row("billing", "orders", 1, 3, 3, 0, "-", "-", "-"),
        ]) + "\n",
        "Consumer group 'billing' has no active members.\n",
    )  # fmt: skip
    assert run(capsys, broker, "groups", "describe", "--group", "billing", "--members") == (
        0,
        "",
        "Consumer group 'billing' has no active members.\n",
    )
    assert run(capsys, broker, "groups", "list") == (0, "billing\n", "")
    status, out, _ = run(capsys, broker, "groups", "list", "--state", "--type")
    assert (status, out.splitlines()) == (
        0,
        [f"{'GROUP':<25} {'TYPE':<20} STATE", f"{'billing':<25} {'Classic':<20} Empty"],
    )
    stable = run(capsys, broker, "groups", "list", "--state", "stable")
    assert stable == (0, f"{'GROUP':<25} STATE\n", "")


def test_describe_reset_refused_and_delete_an_active_group(
    capsys: pytest.CaptureFixture[str], broker: BrokerThread
) -> None:
    live = LiveConsumer(broker.bootstrap, "live")
    live.start()
    try:
        with AdminClient(broker.bootstrap) as client:
            wait_until(
                lambda: (
                    client.describe_group("live").state == "Stable"
                    and sum(client.committed_offsets("live").values()) == 8
                ),
                "the consumer to join and commit everything",
            )
            (member,) = client.describe_group("live").members
        status, out, err = run(capsys, broker, "groups", "describe", "live")
        host = member.host
        assert (status, err) == (0, "")
        width_id, width_host = max(15, len(member.member_id)), max(15, len(host))
        expected = [
            f"{'live':<15} {'orders':<15} {p:<10} {c:<15} {c:<15} {0:<15} "
            f"{member.member_id:<{width_id}} {host:<{width_host}} live-client"
            for p, c in [(0, 5), (1, 3), (2, 0)]
        ]
        assert out.splitlines()[2:] == expected
        status, out, err = run(capsys, broker, "groups", "describe", "live", "--members")
        assert (status, err) == (0, "")
        assert out.splitlines()[2].split() == ["live", member.member_id, host, "live-client", "3"]

        refused = run(capsys, broker, "groups", "reset-offsets", "live", "--topic", "orders",
                      "--to-earliest", "--execute")  # fmt: skip
        assert refused == (
            1,
            "",
            "kafkacompat groups: Assignments can only be reset if the group 'live' is inactive, "
            "but the current state is Stable.\n",
        )
        status, _, err = run(capsys, broker, "groups", "delete", "live")
        assert status == 1 and err.startswith("kafkacompat groups: NON_EMPTY_GROUP")

        status, out, _ = run(capsys, broker, "top", "--iterations", "2", "--interval", "0.2")
        frames = out.split("\nkafkacompat top: ")
        assert status == 0 and len(frames) == 2
        for frame in frames:
            lines = frame.strip("\n").removeprefix("kafkacompat top: ").split("\n")
            assert lines[0].startswith(f"{broker.bootstrap} at ")
            assert [line.split()[:3] for line in lines[2:5]] == [
                ["TOPIC", "PARTITIONS", "LOG-END-OFFSET"],
                ["audit", "1", "4"],
                ["orders", "3", "8"],
            ]
            assert [line.split() for line in lines[6:]] == [
                ["GROUP", "STATE", "LAG"],
                ["live", "Stable", "0"],
            ]
        assert frames[0].split("\n")[3].split()[3] == "-"
        assert frames[1].split("\n")[3].split()[3] == "0.0"
    finally:
        live.stop_event.set()
        live.join(20)
    assert live.error is None
    with AdminClient(broker.bootstrap) as client:
        wait_until(lambda: client.describe_group("live").state == "Empty", "the member to leave")
    assert run(capsys, broker, "groups", "delete", "live") == (
        0,
        "Deletion of requested consumer groups ('live') was successful.\n",
        "",
    )
    gone = run(capsys, broker, "groups", "describe", "live")
    assert gone == (1, "", "kafkacompat groups: Consumer group 'live' does not exist.\n")


def test_reset_offsets(capsys: pytest.CaptureFixture[str], broker: BrokerThread) -> None:
    bootstrap = broker.bootstrap
    commit(bootstrap, "billing", {("orders", 0): 4, ("orders", 1): 2, ("audit", 0): 3})
    before = committed_by_consumer(bootstrap, "billing")
    assert before == {("orders", 0): 4, ("orders", 1): 2, ("orders", 2): None, ("audit", 0): 3}

    reset = ["groups", "reset-offsets", "billing"]
    dry = run(capsys, broker, *reset, "--topic", "orders", "--to-earliest", "--dry-run")
    assert dry == (0, plan("billing", ("orders", 0, 0), ("orders", 1, 0), ("orders", 2, 0)), "")
    status, out, err = run(capsys, broker, *reset, "--topic", "orders", "--to-earliest")
    assert (status, out) == (0, dry[1])
    assert err.startswith("WARN: No action will be performed as the --execute option is missing.")
    assert committed_by_consumer(bootstrap, "billing") == before

    shifted = run(capsys, broker, *reset, "--topic", "orders:0,1", "--shift-by", "-3", "--execute")
    assert shifted == (0, plan("billing", ("orders", 0, 1), ("orders", 1, 0)), "")
    beyond = run(capsys, broker, *reset, "--topic", "orders:0", "--to-offset", "100", "--execute")
    assert beyond == (0, plan("billing", ("orders", 0, 5)), "")
    latest = run(capsys, broker, *reset, "--topic", "audit", "--to-latest", "--execute")
    assert latest == (0, plan("billing", ("audit", 0, 4)), "")
    assert committed_by_consumer(bootstrap, "billing") == {
        ("orders", 0): 5, ("orders", 1): 0, ("orders", 2): None, ("audit", 0): 4,
    }  # fmt: skip

    at = "1970-01-01T00:00:02.500+00:00"
    by_time = run(capsys, broker, *reset, "--topic", "audit", "--to-datetime", at, "--execute")
    assert by_time == (0, plan("billing", ("audit", 0, 2)), "")
    later = "2999-01-01T00:00:00+00:00"
    assert run(capsys, broker, *reset, "--topic", "audit", "--to-datetime", later)[1] == plan(
        "billing", ("audit", 0, 4)
    )
    every = run(capsys, broker, *reset, "--all-topics", "--shift-by", "1", "--execute")
    assert every == (
        0,
        plan("billing", ("audit", 0, 3), ("orders", 0, 5), ("orders", 1, 1)),
        "",
    )
    with AdminClient(bootstrap) as client:
        assert client.committed_offsets("billing") == {
            ("audit", 0): 3, ("orders", 0): 5, ("orders", 1): 1,
        }  # fmt: skip

    no_offset = run(capsys, broker, *reset, "--topic", "orders:2", "--shift-by", "1")
    assert no_offset == (
        1,
        "",
        "kafkacompat groups: Expected a valid current offset for topic partition: orders-2\n",
    )
    missing = run(capsys, broker, *reset, "--topic", "nope", "--to-earliest")
    assert missing[0] == 1 and "UNKNOWN_TOPIC_OR_PARTITION" in missing[2]
    bad_partition = run(capsys, broker, *reset, "--topic", "orders:7", "--to-earliest")
    assert bad_partition == (1, "", "kafkacompat groups: Partition orders-7 does not exist.\n")

    fresh = run(capsys, broker, "groups", "reset-offsets", "--group", "fresh", "--topic",
                "orders:1", "--to-latest", "--execute")  # fmt: skip
    assert fresh == (0, plan("fresh", ("orders", 1, 3)), "")
    assert committed_by_consumer(bootstrap, "fresh")[("orders", 1)] == 3


def test_errors_in_one_line(capsys: pytest.CaptureFixture[str], broker: BrokerThread) -> None:
    assert run(capsys, broker, "groups", "describe", "ghost") == (
        1,
        "",
        "kafkacompat groups: Consumer group 'ghost' does not exist.\n",
    )
    status, _, err = run(capsys, broker, "groups", "delete", "ghost")
    assert status == 1 and err.startswith("kafkacompat groups: GROUP_ID_NOT_FOUND")
    assert run(capsys, broker, "groups", "describe")[0] == 2


def test_unreachable_broker() -> None:
    for command in (["groups", "list"], ["top", "--iterations", "1"]):
        result = subprocess.run(
            [sys.executable, "-m", "kafkacompat", *command, "--bootstrap-server", "127.0.0.1:1"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert result.returncode == 1
        assert result.stderr.startswith(f"kafkacompat {command[0]}: cannot talk to 127.0.0.1:1")
        assert result.stderr.count("\n") == 1
