"""What every Python runner shares: the command line, the result line, names and test data.

A runner is started once per scenario (so a hung client can be killed without taking the others
down) as ``python -m compat_tests.<client>.runner SCENARIO --bootstrap HOST:PORT --prefix P``
and prints one line ``COMPAT-RESULT {"status": ..., "error": ...}`` before it exits.
``--version`` prints ``COMPAT-VERSION <version>`` instead.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from compat_tests.scenarios import LARGE_VALUE_BYTES

RESULT_TAG = "COMPAT-RESULT "
VERSION_TAG = "COMPAT-VERSION "

Headers = list[tuple[str, bytes]]
#: (key, value, headers) as produced; consumed records are compared as the same triple.
Message = tuple[bytes | None, bytes | None, Headers]


class Skip(Exception):
    """The client cannot express this scenario (the reason says why)."""


@dataclass(frozen=True)
class Context:
    bootstrap: str
    prefix: str

    def topic(self, suffix: str = "t") -> str:
        return f"{self.prefix}-{suffix}"

    def group(self, suffix: str = "g") -> str:
        return f"{self.prefix}-{suffix}"


Impl = Callable[[Context], None]


def check(condition: object, message: str) -> None:
    if not condition:
        raise AssertionError(message)


def expect_equal(got: object, want: object, what: str) -> None:
    if got != want:
        raise AssertionError(f"{what}: expected {_short(want)}, got {_short(got)}")


def _short(value: object, limit: int = 300) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} chars)"


def keyed_messages(count: int = 20) -> list[Message]:
    return [
        (f"key-{i % 4}".encode(), f"value-{i}".encode(), [("trace", f"t{i}".encode()), ("n", b"1")])
        for i in range(count)
    ]


def compressible_messages(count: int = 200) -> list[Message]:
    return [
        (f"k{i}".encode(), (f"record {i} " + "abcdefgh" * 50).encode(), [("c", b"x")])
        for i in range(count)
    ]


def large_value() -> bytes:
    return os.urandom(LARGE_VALUE_BYTES)


def wait_until(
    predicate: Callable[[], object], timeout: float, what: str, step: float = 0.1
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(step)


def find_config_value(described: object, name: str) -> str | None:
    """A config's value in whatever shape an admin client returns a DescribeConfigs answer:
    dicts of names to values or to {"value": ...}, objects with `.value`, or (name, value, ...)
    tuples inside response objects."""
    seen: set[int] = set()
    stack: list[object] = [described]
    while stack:
        item = stack.pop()
        if id(item) in seen or isinstance(item, str | bytes | int | float | type(None)):
            continue
        seen.add(id(item))
        if isinstance(item, dict):
            if name in item:
                found = item[name]
                value = found.get("value") if isinstance(found, dict) else found
                return str(getattr(value, "value", value))
            stack.extend(item.values())
        elif isinstance(item, tuple | list):
            if len(item) >= 2 and item[0] == name:
                return None if item[1] is None else str(item[1])
            stack.extend(item)
        elif hasattr(item, "__dict__"):
            stack.extend(vars(item).values())
    return None


def run(
    impls: dict[str, Impl], version: Callable[[], str], argv: Iterable[str] | None = None
) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("scenario", nargs="?")
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--prefix", default=f"compat-{os.getpid()}")
    parser.add_argument("--version", action="store_true")
    args = parser.parse_args(None if argv is None else list(argv))
    if args.version:
        print(VERSION_TAG + version(), flush=True)
        return
    began = time.monotonic()
    impl = impls.get(args.scenario)
    result: dict[str, object]
    if impl is None:
        result = {"status": "skip", "error": "not expressible with this client"}
    else:
        try:
            impl(Context(args.bootstrap, args.prefix))
            result = {"status": "pass", "error": None}
        except Skip as exc:
            result = {"status": "skip", "error": str(exc)}
        except BaseException as exc:
            traceback.print_exc(file=sys.stderr)
            result = {"status": "fail", "error": f"{type(exc).__name__}: {exc}"[:1000]}
    result["seconds"] = round(time.monotonic() - began, 2)
    print(RESULT_TAG + json.dumps(result), flush=True)
    # Client libraries leave threads behind (heartbeats, sockets): do not wait for them.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
