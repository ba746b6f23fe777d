"""A local cluster for tests: a real etcd and N `kafkacompat serve` brokers as subprocesses on
loopback ports, each killable (kill -9), pausable (SIGSTOP) and restartable on its data
directory."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from kafkacompat.testing import BrokerProcess
from kafkacompat.testing_etcd import EtcdServer
from kafkacompat.testing_faults import RemoteFaults

__all__ = ["ClusterBroker", "LocalCluster"]


class ClusterBroker(BrokerProcess):
    """One broker of a `LocalCluster`: a `kafkacompat serve --node-id N --metadata-store URL`."""

    def __init__(
        self,
        data_dir: Path,
        node_id: int,
        store_url: str,
        settings: Mapping[str, int | bool | str] | None = None,
    ) -> None:
        super().__init__(data_dir, settings, log_path=data_dir.with_name(f"broker-{node_id}.log"))
        self.node_id = node_id
        self.store_url = store_url

    def command(self, port: int) -> list[str]:
        return [
            *super().command(port),
            "--node-id",
            str(self.node_id),
            "--metadata-store",
            self.store_url,
        ]

    @property
    def faults(self) -> RemoteFaults:
        """This broker's faults, set over its HTTP listener (`kafkacompat.testing_faults`)."""
        address = self.http_address()
        if address is None:
            raise RuntimeError(f"broker {self.node_id} has no HTTP listener for faults")
        return RemoteFaults(str(address))

    def pause(self) -> None:
        """SIGSTOP: alive but silent (its lease runs out) until `resume`."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)


class LocalCluster:
    """etcd and ``brokers`` brokers (node ids 1..N) under ``directory``; brokers start one after
    the other, each on a free port it keeps over restarts."""

    def __init__(
        self,
        directory: Path,
        brokers: int = 3,
        settings: Mapping[str, int | bool | str] | None = None,
        *,
        first_port: int = 0,
        dev: bool = True,
    ) -> None:
        self.directory = directory
        self.dev = dev
        self.etcd = EtcdServer(directory / "etcd")
        #: Every broker can be made to fail on purpose (``.brokers[n].faults``).
        self.settings = {"http.faults.enable": True, **(settings or {})}
        self.brokers: dict[int, ClusterBroker] = {}
        self._count = brokers
        #: Broker ports: consecutive from ``first_port``, or free ones (0) kept over restarts.
        self._ports: dict[int, int] = (
            {n: first_port + n - 1 for n in range(1, brokers + 1)} if first_port else {}
        )

    @property
    def bootstrap(self) -> str:
        """Every running broker's ``HOST:PORT``, comma-separated."""
        return ",".join(b.bootstrap for b in self.brokers.values() if b.proc is not None)

    def start(self) -> LocalCluster:
        self.etcd.start()
        for node_id in range(1, self._count + 1):
            broker = ClusterBroker(
                self.directory / f"broker-{node_id}", node_id, self.etcd.url, self.settings
            )
            broker.dev = self.dev
            self.brokers[node_id] = broker
            self.start_broker(node_id)
        return self

    def start_broker(self, node_id: int) -> ClusterBroker:
        broker = self.brokers[node_id]
        broker.start(port=self._ports.get(node_id, 0))
        self._ports[node_id] = broker.port
        return broker

    @property
    def faults(self) -> dict[int, RemoteFaults]:
        """Each running broker's faults by node id: ``cluster.faults[2].refuse_connections(5)``
        makes broker 2 look down while alive (`kafkacompat.testing_faults`)."""
        return {n: b.faults for n, b in self.brokers.items() if b.proc is not None}

    def kill(self, node_id: int) -> None:
        """kill -9 one broker."""
        self.brokers[node_id].kill()

    def restart(self, node_id: int) -> ClusterBroker:
        """Start a killed or stopped broker again, on its port and data directory."""
        broker = self.brokers[node_id]
        if broker.proc is not None:
            broker.stop()
        return self.start_broker(node_id)

    def _metadata(self, topics: list[str] | None) -> Any:
        """A Metadata answer from the first running (not paused) broker that gives one; the
        brokers are asked again for up to 10 s (a loaded machine, a broker restarting)."""
        from kafkacompat.client import AdminClient

        failure: Exception | None = None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            for broker in self.brokers.values():
                if broker.proc is None or _stopped(broker):
                    continue
                try:
                    with AdminClient(broker.bootstrap, timeout=2.0) as admin:
                        return admin.metadata(topics)
                except OSError as exc:
                    failure = exc
            time.sleep(0.2)
        raise ConnectionError(f"no broker of the cluster answers: {failure}")

    def controller(self) -> int:
        """The controller's node id, as the running brokers report it (-1: none)."""
        return int(self._metadata([]).controller_id)

    def leader(self, topic: str, partition: int) -> int:
        """The node id leading ``topic``-``partition`` (-1: none), as the brokers report it."""
        for found in self._metadata([topic]).topics:
            for answer in found.partitions:
                if answer.partition_index == partition:
                    return int(answer.leader_id)
        return -1

    def isr(self, topic: str, partition: int) -> list[int]:
        """The in-sync replicas of ``topic``-``partition``, sorted, as the brokers report them."""
        for found in self._metadata([topic]).topics:
            for answer in found.partitions:
                if answer.partition_index == partition:
                    return sorted(answer.isr_nodes)
        return []

    def stop(self) -> None:
        for broker in self.brokers.values():
            if broker.proc is not None:
                if _stopped(broker):
                    broker.resume()
                broker.kill()
        self.etcd.kill()

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def _stopped(broker: ClusterBroker) -> bool:
    """Whether the broker's process is stopped (SIGSTOP)."""
    assert broker.proc is not None
    try:
        with open(f"/proc/{broker.proc.pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "T"
    except OSError:
        return False
