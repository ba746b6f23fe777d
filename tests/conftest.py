"""Shared fixtures: a real broker on an ephemeral loopback port."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kafkacompat.testing import BrokerThread, local_config, running_broker


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[BrokerThread]:
    """A fresh broker serving on 127.0.0.1 and an ephemeral port, stopped after the test."""
    with running_broker(local_config(tmp_path / "data")) as running:
        yield running


def pytest_addoption(parser: pytest.Parser) -> None:
    """Options of tests/integration/test_fuzz.py and test_replication_soak.py."""
    group = parser.getgroup("fuzz")
    group.addoption("--fuzz-seconds", type=float, default=30.0, help="fuzzing time (default 30)")
    group.addoption("--fuzz-seed", type=int, default=1, help="fuzz seed (default 1)")
    soak = parser.getgroup("soak")
    soak.addoption(
        "--soak-seconds",
        type=float,
        default=20.0,
        help="time of faults in the replication soak test (default 20; tox -e soak: 600)",
    )
    soak.addoption("--soak-seed", type=int, default=1, help="soak test seed (default 1)")
