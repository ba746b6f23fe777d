"""Run `kafkacompat serve` as a subprocess: for tests that kill -9 the broker and restart it on
the same data directory.

The broker's log goes to a file (a pipe nobody drains could fill and stall the broker); the
bound port is read from its "listening on HOST:PORT" start line.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

_LISTENING = re.compile(rb"listening on (\S+):(\d+) ")


class BrokerProcess:
    """One broker process at a time over ``data_dir``; ``start`` again after a stop or kill."""

    def __init__(self, data_dir: Path, *settings: str, log_path: Path | None = None) -> None:
        self.data_dir = data_dir
        self.settings = settings
        self.log_path = log_path or data_dir.with_name(data_dir.name + ".broker.log")
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, *, port: int = 0, timeout: float = 20.0) -> BrokerProcess:
        """Start the broker (``-o`` settings as given) and wait until it listens."""
        assert self.proc is None, "already running"
        args = [sys.executable, "-m", "kafkacompat", "serve", "--listen", f"127.0.0.1:{port}"]
        args += ["--data-dir", str(self.data_dir)]
        for setting in self.settings:
            args += ["-o", setting]
        start_at = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                args, stdout=log, stderr=log, stdin=subprocess.DEVNULL, cwd=self.data_dir.parent
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
            time.sleep(0.02)
        self.kill()
        raise TimeoutError(f"broker did not start in {timeout}s:\n{self.log_tail()}")

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM: a clean shutdown. Returns the exit status."""
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
        """SIGKILL: the broker gets no chance to flush, snapshot or close anything."""
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
