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
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Literal, TypeVar

import trio

from kafkacompat.broker.broker import Broker
from kafkacompat.clock import BrokerClock, reset_clock, use_clock
from kafkacompat.config import DEV_OVERRIDES, Config, HostPort
from kafkacompat.faults import Faults
from kafkacompat.server.listener import RunningBroker, serve
from kafkacompat.testing_clock import BrokerTime
from kafkacompat.testing_faults import RemoteFaults
from kafkacompat.testing_security import BrokerSecurity

__all__ = [
    "BrokerProcess",
    "BrokerSecurity",
    "BrokerThread",
    "BrokerTime",
    "KafkaBroker",
    "dev_config",
    "local_config",
    "running_broker",
]

T = TypeVar("T")


class BrokerThread:
    """A broker serving on a background thread, so blocking clients can talk to it.

    Its clock starts ``clock_offset_ms`` ahead of real time (`clock` moves it further).
    """

    def __init__(self, config: Config, *, clock_offset_ms: int = 0) -> None:
        self.config = config
        self._clock_offset_ms = clock_offset_ms
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

    @property
    def http_address(self) -> HostPort | None:
        """Where the HTTP listener (metrics, health, console) listens; None when it is off."""
        return self.running.http_address

    def bootstrap_for(self, listener: str) -> str:
        """``HOST:PORT`` of one listener (by name, e.g. ``"SASL_SSL"``)."""
        return self.running.bootstrap_for(listener)

    @property
    def faults(self) -> Faults:
        """The faults this broker injects (`kafkacompat.faults`)."""
        return self.running.broker.faults

    @property
    def clock(self) -> BrokerTime:
        """This broker's clock, to advance from the test's thread (`kafkacompat.testing_clock`)."""
        return BrokerTime(self)

    @property
    def clock_offset_ms(self) -> int:
        """How far (ms) this broker's clock runs ahead of real time."""
        running = self._running
        return self._clock_offset_ms if running is None else running.broker.clock.offset_ms

    def advance_clock(self, ms: int) -> int:
        """Move the broker's clock ``ms`` forward on its loop; returns the new time once every
        timer that became due has run."""
        return self.call(self.running.broker.clock.advance, ms)

    async def _main(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        with trio.CancelScope() as scope:
            self._cancel = scope
            async with trio.open_nursery() as nursery:
                broker = Broker(self.config, clock=BrokerClock(self._clock_offset_ms))
                self._running = await nursery.start(partial(serve, broker=broker), self.config)
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
        """Run an async function on the broker's own Trio loop and return its result (it reads
        the broker's clock, as the broker's own tasks do)."""
        assert self._token is not None, "broker not started"
        return trio.from_thread.run(self._with_clock, func, args, trio_token=self._token)

    async def _with_clock(self, func: Callable[..., Awaitable[T]], args: tuple[object, ...]) -> T:
        running = self._running
        if running is None:
            return await func(*args)
        token = use_clock(running.broker.clock)
        try:
            return await func(*args)
        finally:
            reset_clock(token)

    def stop(self, timeout: float = 10.0) -> None:
        if self._thread is None:
            return
        if self._running is not None:
            self._clock_offset_ms = self._running.broker.clock.offset_ms
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
_HTTP_LISTENING = re.compile(rb"http listening on (\S+):(\d+)")


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

    def http_address(self, timeout: float = 10.0) -> HostPort | None:
        """Where the HTTP listener listens, from the log's last "http listening on" line; None
        when it is off (--dev turns it on). It is logged just after the Kafka listeners: wait
        up to ``timeout`` seconds for it when it is on."""
        deadline = time.monotonic() + timeout
        while self.proc is not None and self.log_path.exists():
            found = _HTTP_LISTENING.findall(self.log_path.read_bytes())
            if found:
                return HostPort(found[-1][0].decode(), int(found[-1][1]))
            http_on = self.settings.get("http.listener", "127.0.0.1:0" if self.dev else "")
            if not http_on or time.monotonic() > deadline:
                return None
            time.sleep(0.01)
        return None

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
        self._clock_offset_ms = 0

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
    def faults(self) -> Faults | RemoteFaults:
        """The faults this broker injects on purpose (`kafkacompat.faults`); a restart starts
        with none. A subprocess broker's are set over its HTTP listener, with the same methods
        (`kafkacompat.testing_faults.RemoteFaults`)."""
        if self.mode != "inprocess":
            if self._process is None:
                raise RuntimeError("the broker is not running: start it before setting faults")
            address = self._process.http_address()
            if address is None:
                raise RuntimeError("this subprocess broker has no HTTP listener for faults")
            return RemoteFaults(str(address))
        return self.thread.faults

    @property
    def clock(self) -> BrokerTime:
        """This broker's clock: ``.advance(seconds=..., ms=..., minutes=..., days=...)`` moves it
        forward and returns once what became due has run (`kafkacompat.testing_clock`). It keeps
        its time over restarts. In-process brokers only."""
        if self.mode != "inprocess":
            raise NotImplementedError(
                "time control works with in-process brokers only "
                "(this kafka_broker runs as a subprocess, on real time)"
            )
        return BrokerTime(self)

    @property
    def clock_offset_ms(self) -> int:
        """How far (ms) the broker's clock runs ahead of real time."""
        thread = self._thread
        return self._clock_offset_ms if thread is None else thread.clock_offset_ms

    def advance_clock(self, ms: int) -> int:
        """Move the clock ``ms`` forward: at once when running, else from the next start."""
        if self._thread is None:
            self._clock_offset_ms += ms
            return int(time.time() * 1000) + self._clock_offset_ms
        return self._thread.advance_clock(ms)

    @property
    def http_address(self) -> HostPort | None:
        """Where the broker's HTTP listener (metrics, health, console) listens."""
        if self._thread is not None:
            return self._thread.http_address
        return self._process.http_address() if self._process is not None else None

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
            thread = BrokerThread(config, clock_offset_ms=self._clock_offset_ms)
            self._thread = thread.start(timeout)
            self.port = self._thread.port
        else:
            # Faults reach a subprocess over its HTTP listener (`kafkacompat.testing_faults`).
            process = BrokerProcess(self.data_dir, {"http.faults.enable": True, **settings})
            self._process = process.start(port=self.port, timeout=timeout)
            self.port = process.port
        return self

    def stop(self) -> None:
        """A clean shutdown; `start()` again to serve the same data on the same port."""
        thread, process = self._thread, self._process
        self._thread = self._process = None
        if thread is not None:
            self._clock_offset_ms = thread.clock_offset_ms
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
