"""Real brokers for tests: in the test process on a thread of its own (`BrokerThread`), as a
`kafkacompat serve` subprocess (`BrokerProcess`), or either behind one interface that can be
restarted on the same port and data directory (`KafkaBroker`, what the pytest plugin hands out).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from types import TracebackType
from typing import Literal, TypeVar

import trio

from kafkacompat.config import DEV_OVERRIDES, Config, HostPort
from kafkacompat.faults import Faults
from kafkacompat.server.listener import RunningBroker, serve
from kafkacompat.testing_security import BrokerSecurity

__all__ = [
    "BrokerProcess",
    "BrokerSecurity",
    "BrokerThread",
    "KafkaBroker",
    "dev_config",
    "local_config",
    "running_broker",
]

T = TypeVar("T")


class BrokerThread:
    """A broker serving on a background thread, so blocking clients can talk to it."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._running: RunningBroker | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._cancel: trio.CancelScope | None = None
        self._error: BaseException | None = None

    @property
    def running(self) -> RunningBroker:
        assert self._running is not None, "broker not started"
        return self._running

    @property
    def bootstrap(self) -> str:
        return self.running.bootstrap

    @property
    def port(self) -> int:
        return self.running.port

    def bootstrap_for(self, listener: str) -> str:
        """``HOST:PORT`` of one listener (by name, e.g. ``"SASL_SSL"``)."""
        return self.running.bootstrap_for(listener)

    @property
    def faults(self) -> Faults:
        """The faults this broker injects (`kafkacompat.faults`)."""
        return self.running.broker.faults

    async def _main(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        with trio.CancelScope() as scope:
            self._cancel = scope
            async with trio.open_nursery() as nursery:
                self._running = await nursery.start(serve, self.config)
                self._started.set()

    def _run(self) -> None:
        try:
            trio.run(self._main)
        except BaseException as exc:  # reported to the thread that waits for the start
            self._error = exc
        finally:
            self._started.set()

    def start(self, timeout: float = 10.0) -> BrokerThread:
        self._thread = threading.Thread(target=self._run, name="kafkacompat-broker", daemon=True)
        self._thread.start()
        if not self._started.wait(timeout):
            raise TimeoutError("broker did not start in time")
        if self._error is not None:
            raise RuntimeError("broker failed to start") from self._error
        return self

    def call(self, func: Callable[..., Awaitable[T]], *args: object) -> T:
        """Run an async function on the broker's own Trio loop and return its result."""
        assert self._token is not None, "broker not started"
        return trio.from_thread.run(func, *args, trio_token=self._token)

    def stop(self, timeout: float = 10.0) -> None:
        if self._thread is None:
            return
        if self._token is not None and self._cancel is not None and self._thread.is_alive():
            cancel = self._cancel
            with suppress(trio.RunFinishedError):
                trio.from_thread.run_sync(cancel.cancel, trio_token=self._token)
        self._thread.join(timeout)
        self._thread = None
        if self._error is not None:
            raise RuntimeError("broker stopped with an error") from self._error


def local_config(data_dir: Path, **changes: object) -> Config:
    """A config for a test broker: loopback, an ephemeral port, the given data dir."""
    config = Config(listen=HostPort("127.0.0.1", 0), data_dir=data_dir)
    return config.with_settings(**changes) if changes else config


@contextmanager
def running_broker(config: Config) -> Iterator[BrokerThread]:
    broker = BrokerThread(config).start()
    try:
        yield broker
    finally:
        broker.stop()


def dev_config(data_dir: Path, port: int = 0, **settings: int | bool | str) -> Config:
    """What `kafkacompat serve --dev` runs with: loopback, the `--dev` settings, then `settings`
    (by Kafka name, e.g. ``**{"num.partitions": 3}``)."""
    merged: dict[str, int | bool | str] = {**DEV_OVERRIDES, **settings}
    return Config(listen=HostPort("127.0.0.1", port), data_dir=data_dir, settings=merged)


_LISTENING = re.compile(rb"listening on (\S+):(\d+) ")


class BrokerProcess:
    """`kafkacompat serve --dev` as a child process on loopback. Its log goes to a file (a pipe
    nobody drains could stall it); the bound port is read from its "listening on" line."""

    def __init__(
        self,
        data_dir: Path,
        settings: Mapping[str, int | bool | str] | None = None,
        *,
        log_path: Path | None = None,
        dev: bool = True,
        log_level: str = "INFO",
    ) -> None:
        self.data_dir = data_dir
        self.settings = dict(settings or {})
        self.log_path = log_path or data_dir.with_name(data_dir.name + ".broker.log")
        self.dev = dev
        self.log_level = log_level
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None, "broker not started"
        return self.proc.pid

    def command(self, port: int) -> list[str]:
        args = [sys.executable, "-m", "kafkacompat", "serve", "--listen", f"127.0.0.1:{port}"]
        args += ["--data-dir", str(self.data_dir), "--log-level", self.log_level]
        if self.dev:
            args.append("--dev")
        for name, value in self.settings.items():
            text = str(value).lower() if isinstance(value, bool) else str(value)
            args += ["-o", f"{name}={text}"]
        return args

    def start(self, *, port: int = 0, timeout: float = 20.0) -> BrokerProcess:
        assert self.proc is None, "already running"
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        start_at = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.command(port), stdout=log, stderr=log, stdin=subprocess.DEVNULL
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with open(self.log_path, "rb") as log:
                log.seek(start_at)
                match = _LISTENING.search(log.read())
            if match:
                self.port = int(match[2])
                return self
            if self.proc.poll() is not None:
                self.proc = None
                raise RuntimeError(f"broker exited during start:\n{self.log_tail()}")
            time.sleep(0.005)
        self.kill()
        raise TimeoutError(f"broker did not start in {timeout}s:\n{self.log_tail()}")

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM, a clean shutdown; returns the exit status."""
        if self.proc is None:
            return 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise
        finally:
            self.proc = None

    def kill(self) -> None:
        """SIGKILL: nothing is flushed or closed."""
        if self.proc is None:
            return
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.proc = None

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def __enter__(self) -> BrokerProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.kill()


BrokerMode = Literal["inprocess", "subprocess"]
BROKER_MODES: tuple[BrokerMode, ...] = ("inprocess", "subprocess")


class KafkaBroker:
    """A fresh broker for a test, in-process (default) or as a subprocess.

    It listens on 127.0.0.1 and an ephemeral port chosen at the first start; `restart()` stops it
    and starts it again on the same port over the same data directory, so clients made before the
    restart keep working. Settings are the `--dev` ones plus ``settings`` (Kafka names).
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        mode: BrokerMode = "inprocess",
        settings: Mapping[str, int | bool | str] | None = None,
        security: BrokerSecurity | None = None,
    ) -> None:
        if mode not in BROKER_MODES:
            raise ValueError(f"broker mode must be one of {BROKER_MODES}, got {mode!r}")
        self.data_dir = data_dir
        self.mode: BrokerMode = mode
        self.settings = dict(settings or {})
        #: TLS, SASL users and ACLs of a secured broker (`kafkacompat.testing_security`).
        self.security = security
        self.port = 0
        self._thread: BrokerThread | None = None
        self._process: BrokerProcess | None = None

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def bootstrap(self) -> str:
        """``HOST:PORT``, for `bootstrap_servers` / `bootstrap.servers`."""
        assert self.port, "broker not started"
        return f"{self.host}:{self.port}"

    @property
    def is_running(self) -> bool:
        return self._thread is not None or self._process is not None

    @property
    def thread(self) -> BrokerThread:
        """The in-process broker (its `.call` runs code on the broker's loop)."""
        assert self._thread is not None, "not an in-process broker, or not running"
        return self._thread

    @property
    def faults(self) -> Faults:
        """The faults this broker injects on purpose (`kafkacompat.faults`); a restart starts
        with none. In-process brokers only, for now."""
        if self.mode != "inprocess":
            raise NotImplementedError(
                "fault injection works with in-process brokers only, for now "
                "(this kafka_broker runs as a subprocess)"
            )
        return self.thread.faults

    @property
    def process(self) -> BrokerProcess:
        assert self._process is not None, "not a subprocess broker, or not running"
        return self._process

    def _settings(self) -> dict[str, int | bool | str]:
        if self.security is None:
            return self.settings
        prepare_secured_data_dir(self.data_dir, self.security)
        return {**self.security.broker_settings(self.port), **self.settings}

    def start(self, timeout: float = 20.0) -> KafkaBroker:
        assert not self.is_running, "already running"
        settings = self._settings()
        if self.mode == "inprocess":
            config = dev_config(self.data_dir, self.port, **settings)
            self._thread = BrokerThread(config).start(timeout)
            self.port = self._thread.port
        else:
            process = BrokerProcess(self.data_dir, settings)
            self._process = process.start(port=self.port, timeout=timeout)
            self.port = process.port
        return self

    def stop(self) -> None:
        """A clean shutdown; `start()` again to serve the same data on the same port."""
        thread, process = self._thread, self._process
        self._thread = self._process = None
        if thread is not None:
            thread.stop()
        if process is not None:
            process.stop()

    def kill(self) -> None:
        """Stop without a clean shutdown: SIGKILL for a subprocess (in-process: `stop()`)."""
        if self._process is not None:
            self._process.kill()
            self._process = None
        self.stop()

    def restart(self, timeout: float = 20.0) -> KafkaBroker:
        self.stop()
        return self.start(timeout)

    def __enter__(self) -> KafkaBroker:
        return self if self.is_running else self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = self.bootstrap if self.port else "not started"
        return f"<KafkaBroker {self.mode} {state} data_dir={self.data_dir}>"


def prepare_secured_data_dir(data_dir: Path, security: BrokerSecurity) -> None:
    """Make the test certificates and the SCRAM users of ``security`` before the broker starts."""
    security.prepare()
    users = security.scram_users()
    if users:
        create_scram_users(
            data_dir, users, [m for m in security.mechanisms if m.startswith("SCRAM-")]
        )


def create_scram_users(data_dir: Path, users: Mapping[str, str], mechanisms: list[str]) -> None:
    """SCRAM credentials for ``users`` (name -> password) in a broker's data directory, for every
    mechanism in ``mechanisms`` (SCRAM-SHA-256, SCRAM-SHA-512); the broker must not be running."""
    from kafkacompat.security.scram_credentials import scram_mechanism
    from kafkacompat.security.scram_users import ScramUser, add_scram_users

    found = []
    for name in mechanisms:
        mechanism = scram_mechanism(name)
        if mechanism is None:
            raise ValueError(f"{name} is not a SCRAM mechanism")
        found.append(mechanism)
    add_scram_users(
        data_dir, [ScramUser(m, user, password) for m in found for user, password in users.items()]
    )
