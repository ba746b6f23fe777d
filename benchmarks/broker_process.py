"""Start `kafkacompat serve` as a subprocess on an ephemeral port, for benchmarks.

The broker logs to a file next to its data directory (a pipe nobody reads would fill up and
stall it); the bound port is read from its start line.
"""

from __future__ import annotations

import compileall
import os
import re
import subprocess
import sys
import time
from pathlib import Path

_LISTENING = re.compile(r"listening on (\S+):(\d+)")


def compile_package(source: Path | None = None) -> None:
    """Write the package's bytecode, as `pip install` does: a checkout run with
    PYTHONDONTWRITEBYTECODE would otherwise compile every module at each broker start.
    `source`: the checkout holding the package (default: the imported one)."""
    if source is None:
        import kafkacompat

        compileall.compile_dir(Path(kafkacompat.__file__).parent, quiet=1)
    else:
        compileall.compile_dir(source / "kafkacompat", quiet=1)


def source_env(source: Path | None) -> tuple[Path | None, dict[str, str] | None]:
    """(cwd, env) for a `python -m kafkacompat` subprocess importing the package from `source`
    (None: inherit both). `-m` puts the working directory first on sys.path, so it is set too."""
    if source is None:
        return None, None
    return source, dict(os.environ, PYTHONPATH=str(source))


class BrokerProcess:
    def __init__(self, data_dir: Path, *extra: str, source: Path | None = None) -> None:
        self.data_dir = data_dir
        self.extra = extra
        self.source = source
        self.log_path = data_dir.with_name(data_dir.name + ".log")
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    def start(self, timeout: float = 20.0) -> BrokerProcess:
        args = [sys.executable, "-m", "kafkacompat", "serve", "--listen", "127.0.0.1:0"]
        args += ["--data-dir", str(self.data_dir), "--log-level", "INFO", *self.extra]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        cwd, env = source_env(self.source)
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(args, stderr=log, stdout=log, cwd=cwd, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = _LISTENING.search(self.log_path.read_text(errors="replace"))
            if match:
                self.port = int(match[2])
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"broker exited during start: {self.log_path.read_text()}")
            time.sleep(0.01)
        raise TimeoutError("broker did not start")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=20)
            self.proc = None
