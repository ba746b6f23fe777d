"""Running a real broker inside a test process: on its own thread with its own Trio loop."""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TypeVar

import trio

from kafkacompat.config import Config, HostPort
from kafkacompat.server.listener import RunningBroker, serve

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
