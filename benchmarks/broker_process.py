"""Start `kafkacompat serve` as a subprocess on an ephemeral port, for benchmarks."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

_LISTENING = re.compile(r"listening on (\S+):(\d+)")


class BrokerProcess:
    def __init__(self, data_dir: Path, *extra: str) -> None:
        self.data_dir = data_dir
        self.extra = extra
        self.proc: subprocess.Popen[str] | None = None
        self.port = 0

    def start(self, timeout: float = 20.0) -> BrokerProcess:
        args = [sys.executable, "-m", "kafkacompat", "serve", "--listen", "127.0.0.1:0"]
        args += ["--data-dir", str(self.data_dir), *self.extra]
        self.proc = subprocess.Popen(args, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + timeout
        assert self.proc.stderr is not None
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                raise RuntimeError("broker exited during start")
            match = _LISTENING.search(line)
            if match:
                self.port = int(match[2])
                return self
        raise TimeoutError("broker did not start")

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=20)
            self.proc = None
