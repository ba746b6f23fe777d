"""pytest plugin: a real Kafka-compatible broker for your tests, started in milliseconds.

Installed with kafkacompat (entry point ``pytest11``), so its fixtures need no import:

- ``kafka_broker``: a fresh broker per test (a `kafkacompat.testing.KafkaBroker`) on 127.0.0.1 and
  an ephemeral port, with its data under the test's ``tmp_path``. ``.bootstrap``, ``.port``,
  ``.data_dir``, ``.restart()`` (same port, same data), ``.stop()``, ``.start()``, ``.faults``
  (in-process only: errors, delays, stalls, dropped connections on purpose; cleared at teardown),
  ``.clock`` (in-process only: ``.clock.advance(seconds=..., minutes=..., days=...)`` moves the
  broker's time forward and returns once retention, session and transaction timeouts, offsets
  expiry and compaction lags that became due have run; `kafkacompat.testing_clock`).
- ``kafka_bootstrap``: its ``"HOST:PORT"``.
- ``kafka_secure_broker``: a broker secured as users run Kafka (SASL_SSL with a test CA made at
  start, PLAIN and SCRAM users, ACLs on); ``.security`` hands out the CA file, the users and
  client settings. The marker's ``security=`` secures ``kafka_broker`` the same way.
- ``kafka_cluster``: a cluster per test (a `kafkacompat.testing_cluster.LocalCluster`): a real
  etcd (Debian's etcd-server, from PATH; skipped with the reason when absent) and 3 brokers as
  ``kafkacompat serve`` processes with 2 s broker sessions. ``.bootstrap``, ``.brokers``,
  ``.kill(node_id)`` (kill -9), ``.restart(node_id)``, ``.controller()``, ``.leader(topic, p)``,
  ``.faults[node_id]`` (the fault API over each broker's HTTP listener);
  the marker ``@pytest.mark.kafka_cluster(brokers=N, settings={...})`` changes it.
- ``kafka_broker_session`` / ``kafka_bootstrap_session``: one broker shared by the whole session.
  Its clock never moves back: time a test advances stays advanced for the tests after it, so
  tests that advance time belong on ``kafka_broker``.

Brokers run in-process (on a thread with its own Trio loop) unless asked otherwise, by priority:
``@pytest.mark.parametrize("kafka_broker", ["subprocess"], indirect=True)``, the marker
``@pytest.mark.kafka_broker(mode="subprocess", settings={"num.partitions": 3})``, the option
``--kafka-broker-mode=subprocess``, the ini setting ``kafka_broker_mode = subprocess``.
Settings are the ones of ``kafkacompat serve --dev`` plus the marker's, by their Kafka names.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pytest

if TYPE_CHECKING:
    from kafkacompat.testing import BrokerMode, KafkaBroker
    from kafkacompat.testing_cluster import LocalCluster

_MODES = ("inprocess", "subprocess")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("kafkacompat", "kafkacompat test broker")
    group.addoption(
        "--kafka-broker-mode",
        choices=_MODES,
        default=None,
        help="run the kafka_broker fixtures in-process (default) or as subprocesses",
    )
    parser.addini(
        "kafka_broker_mode",
        "inprocess (default) or subprocess: how the kafka_broker fixtures run the broker",
        default="inprocess",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "kafka_broker(mode='inprocess'|'subprocess', settings={...}, security=...): how the "
        "kafka_broker fixture of this test runs its broker, broker settings by their Kafka "
        "names, and security ('SASL_SSL', or a dict of kafkacompat.testing.BrokerSecurity "
        "fields: protocol, mechanisms, users, acls, client_auth)",
    )
    config.addinivalue_line(
        "markers",
        "kafka_cluster(brokers=3, settings={...}): the kafka_cluster fixture's broker count and "
        "the settings of every broker, by their Kafka names",
    )


def _default_mode(config: pytest.Config) -> str:
    option = config.getoption("--kafka-broker-mode", default=None)
    return str(option or config.getini("kafka_broker_mode") or "inprocess")


def _broker_options(
    request: pytest.FixtureRequest,
) -> tuple[BrokerMode, Mapping[str, Any], Mapping[str, Any] | None]:
    mode = _default_mode(request.config)
    settings: Mapping[str, Any] = {}
    security: Mapping[str, Any] | None = None
    node = getattr(request, "node", None)
    marker = node.get_closest_marker("kafka_broker") if node is not None else None
    if marker is not None and request.scope == "function":
        mode = marker.kwargs.get("mode", marker.args[0] if marker.args else mode)
        settings = marker.kwargs.get("settings", {})
        security = _security_options(marker.kwargs.get("security"))
    param = getattr(request, "param", None)
    if isinstance(param, str):
        mode = param
    elif isinstance(param, Mapping):
        mode = param.get("mode", mode)
        settings = {**settings, **param.get("settings", {})}
    if mode not in _MODES:
        raise pytest.UsageError(f"kafka_broker mode must be one of {_MODES}, got {mode!r}")
    return cast("BrokerMode", mode), settings, security


def _security_options(value: object) -> Mapping[str, Any] | None:
    """``security="SASL_SSL"`` or ``security={"protocol": ..., "users": ..., ...}``."""
    if value is None or value is False:
        return None
    if value is True:
        return {}
    if isinstance(value, str):
        return {"protocol": value}
    if isinstance(value, Mapping):
        return dict(value)
    raise pytest.UsageError(f"kafka_broker security must be a protocol name or a dict: {value!r}")


def _run_broker(
    request: pytest.FixtureRequest,
    data_dir: Path,
    security: Mapping[str, Any] | None = None,
) -> Iterator[KafkaBroker]:
    from kafkacompat.testing import BrokerSecurity, KafkaBroker

    mode, settings, marked = _broker_options(request)
    wanted = marked if marked is not None else security
    secured = (
        None
        if wanted is None
        else BrokerSecurity(data_dir.with_name(data_dir.name + "-security"), **wanted)
    )
    broker = KafkaBroker(data_dir, mode=mode, settings=settings, security=secured).start()
    try:
        yield broker
    finally:
        if broker.mode == "inprocess" and broker.is_running:
            broker.faults.clear()  # let stalled requests go, so the broker stops cleanly
        broker.stop()


@pytest.fixture
def kafka_broker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[KafkaBroker]:
    """A fresh broker for this test; stopped after it."""
    yield from _run_broker(request, tmp_path / "kafka-data")


@pytest.fixture
def kafka_secure_broker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[KafkaBroker]:
    """A fresh secured broker: one SASL_SSL listener with a test CA made now, users admin (a
    super user), alice and bob for PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512, and ACLs on.

    ``kafka_secure_broker.security`` (a `kafkacompat.testing.BrokerSecurity`) has the CA file,
    the users and client settings: ``KafkaProducer(bootstrap_servers=broker.bootstrap,
    **broker.security.kafka_python("alice"))``. The marker's ``security={...}`` changes it.
    """
    yield from _run_broker(request, tmp_path / "kafka-data", security={})


@pytest.fixture
def kafka_bootstrap(kafka_broker: KafkaBroker) -> str:
    """The ``HOST:PORT`` of this test's fresh broker."""
    return kafka_broker.bootstrap


@pytest.fixture(scope="session")
def kafka_broker_session(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KafkaBroker]:
    """One broker for the whole session: give each test its own topic and group names."""
    yield from _run_broker(request, tmp_path_factory.mktemp("kafka-session") / "kafka-data")


@pytest.fixture(scope="session")
def kafka_bootstrap_session(kafka_broker_session: KafkaBroker) -> str:
    return kafka_broker_session.bootstrap


@pytest.fixture
def kafka_cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LocalCluster]:
    """etcd and 3 brokers (see the module's docstring)."""
    from kafkacompat.testing_cluster import LocalCluster
    from kafkacompat.testing_etcd import etcd_available

    if not etcd_available():
        pytest.skip("kafka_cluster needs etcd on PATH (Debian: etcd-server)")
    marker = request.node.get_closest_marker("kafka_cluster")
    options = dict(marker.kwargs) if marker is not None else {}
    settings: dict[str, int | bool | str] = {
        "broker.session.timeout.ms": 2000,
        "broker.heartbeat.interval.ms": 500,
        **options.get("settings", {}),
    }
    with LocalCluster(tmp_path / "kafka-cluster", options.get("brokers", 3), settings) as cluster:
        yield cluster
