"""pytest plugin: a real Kafka-compatible broker for your tests, started in milliseconds.

Installed with kafkacompat (entry point ``pytest11``), so its fixtures need no import:

- ``kafka_broker``: a fresh broker per test (a `kafkacompat.testing.KafkaBroker`) on 127.0.0.1 and
  an ephemeral port, with its data under the test's ``tmp_path``. ``.bootstrap``, ``.port``,
  ``.data_dir``, ``.restart()`` (same port, same data), ``.stop()``, ``.start()``, ``.faults``
  (in-process only: errors, delays, stalls, dropped connections on purpose; cleared at teardown).
- ``kafka_bootstrap``: its ``"HOST:PORT"``.
- ``kafka_broker_session`` / ``kafka_bootstrap_session``: one broker shared by the whole session.

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
        "kafka_broker(mode='inprocess'|'subprocess', settings={...}): how the kafka_broker "
        "fixture of this test runs its broker, and broker settings by their Kafka names",
    )


def _default_mode(config: pytest.Config) -> str:
    option = config.getoption("--kafka-broker-mode", default=None)
    return str(option or config.getini("kafka_broker_mode") or "inprocess")


def _broker_options(request: pytest.FixtureRequest) -> tuple[BrokerMode, Mapping[str, Any]]:
    mode = _default_mode(request.config)
    settings: Mapping[str, Any] = {}
    node = getattr(request, "node", None)
    marker = node.get_closest_marker("kafka_broker") if node is not None else None
    if marker is not None and request.scope == "function":
        mode = marker.kwargs.get("mode", marker.args[0] if marker.args else mode)
        settings = marker.kwargs.get("settings", {})
    param = getattr(request, "param", None)
    if isinstance(param, str):
        mode = param
    elif isinstance(param, Mapping):
        mode = param.get("mode", mode)
        settings = {**settings, **param.get("settings", {})}
    if mode not in _MODES:
        raise pytest.UsageError(f"kafka_broker mode must be one of {_MODES}, got {mode!r}")
    return cast("BrokerMode", mode), settings


def _run_broker(request: pytest.FixtureRequest, data_dir: Path) -> Iterator[KafkaBroker]:
    from kafkacompat.testing import KafkaBroker

    mode, settings = _broker_options(request)
    broker = KafkaBroker(data_dir, mode=mode, settings=settings).start()
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
