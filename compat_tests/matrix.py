"""Run every (client, scenario) pair against one broker and write the report card.

    python -m compat_tests [--clients kafka-python,kcat] [--scenarios ...] [--bootstrap HOST:PORT]
                           [--report DIR] [--jobs N]

Without ``--bootstrap`` a fresh broker is started (``kafkacompat serve --dev`` on an ephemeral
port, data in a temporary directory). Each pair runs in a process of its own with the scenario's
timeout (killed with its process group when it runs over) and fresh topic and group names, so a
hung or failing client does not stop the others. The run fails when a scenario on the client's
allow-list does not pass; other failures are reported only.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path

from compat_tests.harness import RESULT_TAG, VERSION_TAG
from compat_tests.report import write_report
from compat_tests.scenarios import BY_NAME, SCENARIOS

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


@dataclass(frozen=True)
class Client:
    name: str
    folder: str
    #: The command that runs one scenario (the scenario and options are appended).
    command: tuple[str, ...]

    @property
    def path(self) -> Path:
        return HERE / self.folder


CLIENTS: tuple[Client, ...] = (
    Client(
        "kafka-python", "kafka_python", (sys.executable, "-m", "compat_tests.kafka_python.runner")
    ),
    Client("aiokafka", "aiokafka", (sys.executable, "-m", "compat_tests.aiokafka.runner")),
    Client(
        "confluent-kafka",
        "confluent_kafka",
        (sys.executable, "-m", "compat_tests.confluent_kafka.runner"),
    ),
    Client("kcat", "kcat", (sys.executable, "-m", "compat_tests.kcat.runner")),
    Client("kafkajs", "kafkajs", ("node", str(HERE / "kafkajs" / "runner.js"))),
)
CLIENTS_BY_NAME = {client.name: client for client in CLIENTS}


@dataclass
class Result:
    client: str
    version: str
    scenario: str
    status: str  # pass | fail | skip
    error: str | None = None
    seconds: float = 0.0
    allowlisted: bool = False
    log_tail: str | None = field(default=None, repr=False)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    return env


def run_tagged(command: Sequence[str], timeout: float) -> tuple[str | None, str, bool]:
    """Run ``command`` in its own process group: (its tagged line, its stderr tail, timed out)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        try:
            proc = subprocess.Popen(
                list(command),
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                cwd=ROOT,
                env=_env(),
                start_new_session=True,
            )
        except OSError as exc:
            return None, f"cannot start {command[0]}: {exc}", False
        timed_out = False
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
        # The runner's children (kcat, node's helpers) go with it.
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode(errors="replace")
        stderr = err.read().decode(errors="replace")
    tagged = [line for line in stdout.splitlines() if line.startswith(("COMPAT-", "{"))]
    tail = "\n".join((stderr + stdout).strip().splitlines()[-15:])
    return (tagged[-1] if tagged else None), tail, timed_out


def client_version(client: Client) -> tuple[str | None, str]:
    """(the client's version, or None when its runner cannot start; the runner's output tail)."""
    line, tail, _ = run_tagged([*client.command, "--version"], 60)
    if line is None or not line.startswith(VERSION_TAG):
        return None, tail
    return line.removeprefix(VERSION_TAG).strip(), tail


def read_allowlist(client: Client, version: str, given: Path | None = None) -> tuple[set[str], str]:
    """``given``, else ``allowlist-<version prefix>.txt`` (the longest prefix of the client's
    version), else ``allowlist.txt``."""
    best: Path | None = given
    for candidate in [] if given else client.path.glob("allowlist-*.txt"):
        prefix = candidate.stem.removeprefix("allowlist-")
        if (version == prefix or version.startswith(prefix + ".")) and (
            best is None or len(prefix) > len(best.stem)
        ):
            best = candidate
    path = best or client.path / "allowlist.txt"
    if not path.exists():
        return set(), "(none)"
    names = set()
    for raw in path.read_text().splitlines():
        name = raw.split("#", 1)[0].strip()
        if name:
            if name not in BY_NAME:
                raise SystemExit(f"{path}: unknown scenario {name!r}")
            names.add(name)
    return names, str(
        path.resolve().relative_to(ROOT) if path.resolve().is_relative_to(ROOT) else path
    )


def prepare_kafkajs() -> str | None:
    """Install KafkaJS from package-lock.json unless node_modules matches it; an error or None."""
    folder = HERE / "kafkajs"
    if shutil.which("node") is None:
        return "node is not installed"
    marker = folder / "node_modules" / ".package-lock.json"
    lock = folder / "package-lock.json"
    if marker.exists() and marker.stat().st_mtime >= lock.stat().st_mtime:
        return None
    npm = shutil.which("npm")
    if npm is None:
        return "npm is not installed"
    result = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=folder,
        capture_output=True,
        timeout=300,
    )
    if result.returncode != 0:
        return "npm ci failed: " + result.stderr.decode(errors="replace")[-500:]
    return None


def run_one(client: Client, version: str, scenario: str, bootstrap: str) -> Result:
    prefix = f"compat-{client.folder.replace('_', '')}-{scenario.replace('_', '')}-{secrets.token_hex(3)}"
    timeout = BY_NAME[scenario].timeout
    began = time.monotonic()
    command = [*client.command, scenario, "--bootstrap", bootstrap, "--prefix", prefix]
    line, tail, timed_out = run_tagged(command, timeout)
    seconds = round(time.monotonic() - began, 2)
    if timed_out:
        return Result(
            client.name,
            version,
            scenario,
            "fail",
            f"timed out after {timeout:.0f}s",
            seconds,
            log_tail=tail,
        )
    if line is None or not line.startswith(RESULT_TAG):
        return Result(
            client.name, version, scenario, "fail", "runner gave no result", seconds, log_tail=tail
        )
    answer = json.loads(line.removeprefix(RESULT_TAG))
    status = answer.get("status")
    if status not in ("pass", "fail", "skip"):
        status, answer["error"] = "fail", f"bad runner status {status!r}"
    return Result(
        client.name,
        version,
        scenario,
        status,
        answer.get("error"),
        seconds,
        log_tail=tail if status == "fail" else None,
    )


@contextmanager
def broker(bootstrap: str | None, workdir: Path) -> Iterator[tuple[str, str]]:
    """The bootstrap address and a description of the broker."""
    if bootstrap:
        yield bootstrap, f"external broker at {bootstrap}"
        return
    from kafkacompat import __version__
    from kafkacompat.testing import KafkaBroker

    started = KafkaBroker(workdir / "data", mode="subprocess").start()
    try:
        yield (
            started.bootstrap,
            f"kafkacompat {__version__} (`kafkacompat serve --dev`, subprocess)",
        )
    finally:
        started.stop()


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m compat_tests", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--clients", default=",".join(c.name for c in CLIENTS), help="comma-separated"
    )
    parser.add_argument(
        "--scenarios", default=",".join(s.name for s in SCENARIOS), help="comma-separated"
    )
    parser.add_argument("--bootstrap", help="HOST:PORT of a running broker (default: start one)")
    parser.add_argument(
        "--report", type=Path, default=HERE / "report", help="where REPORT.md and report.json go"
    )
    parser.add_argument("--jobs", type=int, default=4, help="pairs run at once (default 4)")
    parser.add_argument(
        "--title", default="", help="a line for the report's heading, e.g. the tox env"
    )
    parser.add_argument(
        "--allowlist",
        action="append",
        default=[],
        metavar="CLIENT=FILE",
        help="use this allow-list for a client (e.g. when pinning old protocol versions)",
    )
    parser.add_argument("--list", action="store_true", help="list clients and scenarios, then exit")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list:
        for scenario in SCENARIOS:
            print(f"{scenario.name:<24} {scenario.description}")
        print("clients:", ", ".join(CLIENTS_BY_NAME))
        return 0
    unknown = [n for n in args.clients.split(",") if n and n not in CLIENTS_BY_NAME]
    unknown += [n for n in args.scenarios.split(",") if n and n not in BY_NAME]
    if unknown:
        print(f"unknown clients or scenarios: {unknown}", file=sys.stderr)
        return 2
    clients = [CLIENTS_BY_NAME[n] for n in args.clients.split(",") if n]
    given: dict[str, Path] = {}
    for item in args.allowlist:
        name, _, path = item.partition("=")
        if name not in CLIENTS_BY_NAME or not path:
            print(f"--allowlist needs CLIENT=FILE, got {item!r}", file=sys.stderr)
            return 2
        given[name] = Path(path)
    scenarios = [n for n in args.scenarios.split(",") if n]
    began = time.monotonic()
    results: list[Result] = []
    client_rows: list[dict[str, object]] = []
    runnable: list[tuple[Client, str, set[str]]] = []
    for client in clients:
        problem = prepare_kafkajs() if client.name == "kafkajs" else None
        version, tail = (None, "") if problem else client_version(client)
        if version is None:
            last = tail.strip().splitlines()[-1:] or ["no output"]
            problem = problem or f"the runner cannot start: {last[0][:300]}"
        allowlist, allowlist_file = read_allowlist(client, version or "", given.get(client.name))
        client_rows.append(
            {
                "name": client.name,
                "version": version or "-",
                "allowlist": allowlist_file,
                "problem": problem,
            }
        )
        if problem or version is None:
            for scenario in scenarios:
                results.append(
                    Result(client.name, "-", scenario, "skip", problem, 0.0, scenario in allowlist)
                )
            continue
        runnable.append((client, version, allowlist))
    with (
        tempfile.TemporaryDirectory(prefix="kafkacompat-matrix-") as tmp,
        broker(args.bootstrap, Path(tmp)) as (
            bootstrap,
            broker_text,
        ),
    ):
        print(
            f"compat matrix: {broker_text}; {len(runnable)} clients x {len(scenarios)} scenarios",
            flush=True,
        )
        pairs = [(c, v, s, allow) for s in scenarios for c, v, allow in runnable]
        # Slow scenarios first, so the tail of the run is short ones.
        pairs.sort(key=lambda pair: -BY_NAME[pair[2]].timeout)

        def work(pair: tuple[Client, str, str, set[str]]) -> Result:
            client, version, scenario, allow = pair
            result = run_one(client, version, scenario, bootstrap)
            result.allowlisted = scenario in allow
            mark = {"pass": "ok", "fail": "FAIL", "skip": "skip"}[result.status]
            failed = result.error and result.status == "fail"
            note = "  " + " ".join(str(result.error).split()) if failed else ""
            print(
                f"  {client.name:<16} {scenario:<24} {mark:<5} {result.seconds:6.2f}s{note[:200]}",
                flush=True,
            )
            return result

        with ThreadPoolExecutor(max(1, args.jobs)) as pool:
            results += list(pool.map(work, pairs))
    duration = time.monotonic() - began
    order = {n: i for i, n in enumerate(scenarios)}
    corder = {c.name: i for i, c in enumerate(clients)}
    results.sort(key=lambda r: (corder[r.client], order[r.scenario]))
    regressions = [r for r in results if r.allowlisted and r.status != "pass"]
    report = {
        "generated": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "title": args.title,
        "broker": broker_text,
        "duration_seconds": round(duration, 1),
        "clients": client_rows,
        "scenarios": [{"name": s, "description": BY_NAME[s].description} for s in scenarios],
        "results": [{k: v for k, v in asdict(r).items() if k != "log_tail"} for r in results],
        "ok": not regressions,
    }
    markdown = write_report(args.report, report)
    print(markdown.split("\n## ", 1)[0].rstrip())
    print(f"report: {args.report / 'REPORT.md'} and report.json ({duration:.0f}s)")
    for result in regressions:
        print(f"\nALLOW-LISTED FAILURE {result.client} {result.scenario}: {result.error}")
        if result.log_tail:
            print("  " + result.log_tail.replace("\n", "\n  "))
    return 1 if regressions else 0
