"""Fault injection over HTTP and the `kafkacompat faults` CLI, as a test in another language
would use them: a `kafkacompat serve` subprocess, faults set and read over /faults, stock clients
meeting them."""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kafkacompat.testing import BrokerProcess, KafkaBroker, create_scram_users

pytestmark = pytest.mark.integration

NOT_LEADER = "NOT_LEADER_OR_FOLLOWER"


class Http:
    """JSON over HTTP to one broker's listener: ``(status, payload)``."""

    def __init__(self, address: str, authorization: str | None = None) -> None:
        self.address = address
        self.authorization = authorization

    def __call__(self, method: str, path: str, body: object = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"http://{self.address}{path}", data, method=method)
        if self.authorization:
            request.add_header("Authorization", self.authorization)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            with error:
                return error.code, json.loads(error.read())


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    data = tmp_path_factory.mktemp("faults-http") / "data"
    settings = {"http.faults.enable": True, "num.partitions": 1}
    with KafkaBroker(data, mode="subprocess", settings=settings) as running:
        yield running


@pytest.fixture
def http(broker: KafkaBroker) -> Iterator[Http]:
    client = Http(str(broker.http_address))
    yield client
    client("DELETE", "/faults")


def cli(address: object, *argv: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "kafkacompat", "faults", *argv, "--http", str(address)]
    return subprocess.run(command, capture_output=True, text=True, timeout=30)


def produce(bootstrap: str, topic: str, value: bytes, **config: Any) -> Any:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, retry_backoff_ms=10, **config)
    try:
        return producer.send(topic, value).get(timeout=15)
    finally:
        producer.close()


def consume(bootstrap: str, topic: str) -> list[bytes]:
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        consumer_timeout_ms=2000,
    )
    try:
        return [message.value for message in consumer]
    finally:
        consumer.close()


# --- over HTTP ------------------------------------------------------------------------------------


def test_kafka_python_retries_through_errors_set_over_http(broker: KafkaBroker, http: Http) -> None:
    status, fault = http(
        "POST",
        "/faults",
        {"kind": "fail", "api": "Produce", "error": NOT_LEADER, "times": 2, "topic": "orders"},
    )
    assert status == 201
    assert fault == {
        "id": fault["id"],
        "kind": "fail",
        "api": "Produce",
        "description": f"fail Produce with {NOT_LEADER}",
        "times": 2,
        "topic": "orders",
        "partition": None,
        "client_id": None,
        "hits": 0,
        "active": True,
        "error_code": NOT_LEADER,
    }
    assert http("GET", "/faults") == (200, {"faults": [fault]})

    sent = produce(broker.bootstrap, "orders", b"paid")

    status, spent = http("GET", f"/faults/{fault['id']}")
    assert (status, spent["hits"], spent["active"]) == (200, 2, False)
    assert sent.offset == 0  # stored once, after two refusals
    assert consume(broker.bootstrap, "orders") == [b"paid"]
    assert http("GET", "/faults") == (200, {"faults": []})


def test_a_delay_slows_confluent_metadata(broker: KafkaBroker, http: Http) -> None:
    from confluent_kafka.admin import AdminClient

    status, fault = http("POST", "/faults", {"kind": "delay", "api": "Metadata", "seconds": 1})
    assert status == 201
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    started = time.monotonic()
    admin.list_topics(timeout=15)
    assert time.monotonic() - started >= 1.0
    assert http("GET", f"/faults/{fault['id']}")[1]["hits"] >= 1

    status, cleared = http("DELETE", f"/faults/{fault['id']}")
    assert (status, cleared["active"]) == (200, False)
    assert cleared["hits"] >= 1
    started = time.monotonic()
    admin.list_topics(timeout=15)
    assert time.monotonic() - started < 1.0


def test_clearing_restores_normal_answers(broker: KafkaBroker, http: Http) -> None:
    from kafka.errors import NotLeaderForPartitionError

    body = {"kind": "fail", "api": "Produce", "error": NOT_LEADER, "times": None, "topic": "stuck"}
    fault = http("POST", "/faults", body)[1]
    with pytest.raises(NotLeaderForPartitionError):
        produce(broker.bootstrap, "stuck", b"refused", retries=0)

    status, cleared = http("DELETE", "/faults")
    assert status == 200
    assert [(f["id"], f["active"], f["hits"]) for f in cleared["cleared"]] == [
        (fault["id"], False, 1)
    ]
    assert produce(broker.bootstrap, "stuck", b"stored").offset == 0


def test_a_stall_holds_produce_until_released(broker: KafkaBroker, http: Http) -> None:
    produce(broker.bootstrap, "held", b"first")
    fault = http("POST", "/faults", {"kind": "stall", "api": "Produce", "topic": "held"})[1]
    results: list[Any] = []
    sender = threading.Thread(
        target=lambda: results.append(produce(broker.bootstrap, "held", b"second"))
    )
    sender.start()
    deadline = time.monotonic() + 10
    while http("GET", f"/faults/{fault['id']}")[1]["hits"] == 0:
        assert time.monotonic() < deadline, "the produce never reached the broker"
        time.sleep(0.05)
    time.sleep(0.2)
    assert results == []  # held

    status, released = http("POST", f"/faults/{fault['id']}/release")
    assert (status, released["released"], released["active"]) == (200, True, False)
    sender.join(15)
    assert [r.offset for r in results] == [1]


def test_connections_are_refused_then_accepted(broker: KafkaBroker, http: Http) -> None:
    fault = http("POST", "/faults", {"kind": "refuse_connections", "seconds": 0.5})[1]
    with socket.create_connection(("127.0.0.1", broker.port), timeout=5) as refused:
        assert refused.recv(1) == b""  # closed by the broker at once
    assert produce(broker.bootstrap, "later", b"v", reconnect_backoff_ms=50).offset == 0
    assert http("GET", f"/faults/{fault['id']}")[1]["hits"] >= 1


def test_bad_requests_answer_400_and_unknown_ids_404(http: Http) -> None:
    assert http("POST", "/faults", {"kind": "explode"}) == (
        400,
        {
            "error": "unknown kind 'explode'; expected one of fail, delay, stall, "
            "drop_connection, throttle, refuse_connections"
        },
    )
    assert http("POST", "/faults", {"kind": "fail", "api": "Produce", "error": "NOPE"}) == (
        400,
        {"error": "unknown error 'NOPE'"},
    )
    assert http("POST", "/faults", {"kind": "fail", "api": "Nope", "error": NOT_LEADER}) == (
        400,
        {"error": "unknown Kafka API 'Nope'"},
    )
    assert http("POST", "/faults", {"kind": "delay", "api": "Fetch"}) == (
        400,
        {"error": "delay needs seconds"},
    )
    assert http("POST", "/faults", {"kind": "delay", "api": "Fetch", "seconds": "1"}) == (
        400,
        {"error": 'seconds must be a non-negative number, got "1"'},
    )
    assert http(
        "POST", "/faults", {"kind": "fail", "api": "Heartbeat", "error": 6, "topic": "t"}
    ) == (
        400,
        {"error": "Heartbeat requests name no topics or partitions"},
    )
    assert http("GET", "/faults/12345") == (404, {"error": "no fault '12345'"})
    assert http("DELETE", "/faults/12345") == (404, {"error": "no fault '12345'"})
    assert http("POST", "/faults/12345/release") == (404, {"error": "no fault '12345'"})
    assert http("GET", "/faults") == (200, {"faults": []})


# --- the CLI --------------------------------------------------------------------------------------


def test_the_cli_adds_lists_and_clears(broker: KafkaBroker, http: Http) -> None:
    address = broker.http_address
    added = cli(address, "add", "fail", "Produce", "--error", NOT_LEADER, "--times", "2")
    assert added.returncode == 0, added.stderr
    fault_id, line = added.stdout.rstrip("\n").split("\t")
    assert line == f"fail Produce with {NOT_LEADER}, 2 times, 0 hits"
    delay = cli(address, "add", "delay", "Fetch", "--seconds", "0.1", "--topic", "cli")
    delay_id = delay.stdout.split("\t")[0]
    assert cli(address, "list").stdout == (
        f"{fault_id}\tfail Produce with {NOT_LEADER}, 2 times, 0 hits\n"
        f"{delay_id}\tdelay Fetch by 0.1 s, until cleared, topic cli, 0 hits\n"
    )

    assert produce(broker.bootstrap, "cli", b"v").offset == 0  # through both errors
    shown = cli(address, "show", fault_id)
    assert (
        shown.stdout == f"{fault_id}\tfail Produce with {NOT_LEADER}, 2 times, 2 hits, inactive\n"
    )
    cleared = cli(address, "clear", delay_id)
    assert cleared.stdout.startswith(f"{delay_id}\tdelay Fetch by 0.1 s") and "inactive" in (
        cleared.stdout
    )
    assert cli(address, "list").stdout == ""
    cli(address, "add", "throttle", "Fetch", "--ms", "5")
    assert cli(address, "clear").stdout.endswith(
        "throttle Fetch by 5 ms, until cleared, 0 hits, inactive\n"
    )
    assert http("GET", "/faults") == (200, {"faults": []})


def test_cli_errors_are_one_line_and_exit_1(broker: KafkaBroker) -> None:
    address = broker.http_address
    bad = cli(address, "add", "fail", "Produce", "--error", "NOPE")
    assert (bad.returncode, bad.stdout, bad.stderr) == (
        1,
        "",
        "kafkacompat faults: unknown error 'NOPE' (HTTP 400)\n",
    )
    missing = cli(address, "show", "999")
    assert missing.returncode == 1
    assert missing.stderr == "kafkacompat faults: no fault '999' (HTTP 404)\n"
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    down = cli(f"127.0.0.1:{port}", "list")
    assert down.returncode == 1
    assert down.stderr.startswith(f"kafkacompat faults: cannot talk to 127.0.0.1:{port}: ")
    assert down.stderr.count("\n") == 1


# --- off by default, behind auth with SASL users --------------------------------------------------


def test_off_unless_enabled(tmp_path: Path) -> None:
    """`kafkacompat serve` (here --dev) keeps it off; the test fixtures turn it on."""
    with BrokerProcess(tmp_path / "data") as broker:
        http = Http(str(broker.http_address()))
        assert http("POST", "/faults", {"kind": "stall", "api": "Fetch"}) == (
            404,
            {"error": "fault injection over HTTP is off (http.faults.enable=false)"},
        )
        off = cli(broker.http_address(), "list")
        assert (off.returncode, off.stderr) == (
            1,
            "kafkacompat faults: fault injection over HTTP is off "
            "(http.faults.enable=false) (HTTP 404)\n",
        )


def test_sasl_users_log_in(tmp_path: Path) -> None:
    data = tmp_path / "data"
    create_scram_users(data, {"admin": "admin-secret"}, ["SCRAM-SHA-256"])
    settings = {"http.faults.enable": True}
    with KafkaBroker(data, mode="subprocess", settings=settings) as broker:
        address = str(broker.http_address)
        assert Http(address)("GET", "/faults") == (401, {"error": "authentication required"})
        wrong = "Basic " + base64.b64encode(b"admin:wrong").decode()
        assert Http(address, wrong)("GET", "/faults")[0] == 401
        right = "Basic " + base64.b64encode(b"admin:admin-secret").decode()
        assert Http(address, right)("POST", "/faults", {"kind": "stall", "api": "Fetch"})[0] == 201
        denied = cli(address, "list")
        assert (denied.returncode, denied.stderr) == (
            1,
            "kafkacompat faults: authentication required (HTTP 401)\n",
        )
        listed = cli(address, "clear", "--user", "admin:admin-secret")
        assert listed.stdout == "1\tstall Fetch, until cleared, 0 hits, inactive\n"


# --- the Python API on a subprocess broker --------------------------------------------------------


def test_a_subprocess_kafka_broker_has_the_same_fault_api(tmp_path: Path) -> None:
    from kafka import KafkaProducer

    with KafkaBroker(tmp_path / "data", mode="subprocess") as broker:
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap, retry_backoff_ms=10)
        producer.send("remote", b"first").get(timeout=20)
        with broker.faults.fail("Produce", "NOT_LEADER_OR_FOLLOWER", times=2) as fault:
            assert producer.send("remote", b"second").get(timeout=20).offset == 1
            assert fault.hits == 2
        assert broker.faults.active() == []
        producer.close()
