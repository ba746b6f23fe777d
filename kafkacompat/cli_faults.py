"""`kafkacompat faults add|list|show|clear|release`: set and clear a running broker's faults
through its HTTP listener's ``/faults`` routes (``http.faults.enable``), for tests in any language.

One line per fault: its id, a tab, then what it does, how often, to what and its hits, e.g.
``3<TAB>fail Produce with NOT_LEADER_OR_FOLLOWER, 2 times, topic orders, 0 hits``.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import urllib.error
import urllib.request
from typing import Any

__all__ = ["add_parser", "format_fault", "run"]

KINDS = ("fail", "delay", "stall", "drop_connection", "throttle", "refuse_connections")
HTTP_ENV = "KAFKACOMPAT_HTTP"
USER_ENV = "KAFKACOMPAT_HTTP_USER"
PASSWORD_ENV = "KAFKACOMPAT_HTTP_PASSWORD"


class FaultsError(Exception):
    """What the broker refused, or why it could not be asked; one line."""


def _kind(text: str) -> str:
    kind = text.replace("-", "_").lower()
    if kind not in KINDS:
        raise argparse.ArgumentTypeError(f"unknown kind {text!r} (one of {', '.join(KINDS)})")
    return kind


def _times(text: str) -> int | None:
    if text.lower() in ("forever", "unlimited"):
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a count or 'forever', got {text!r}") from None


def add_parser(commands: Any) -> None:
    """Add the `faults` subcommand to the top-level parser's subcommands."""
    faults = commands.add_parser(
        "faults", help="inject faults into a running broker over its HTTP listener"
    )
    actions = faults.add_subparsers(dest="action", required=True)

    def action(name: str, help_text: str) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = actions.add_parser(name, help=help_text)
        sub.add_argument(
            "--http",
            default=os.environ.get(HTTP_ENV),
            metavar="HOST:PORT",
            help=f"the broker's http.listener (default: ${HTTP_ENV})",
        )
        sub.add_argument(
            "--user",
            default=os.environ.get(USER_ENV),
            metavar="USER[:PASSWORD]",
            help=f"basic auth as a SASL user of the broker (default: ${USER_ENV}; "
            f"the password, when not given here, from ${PASSWORD_ENV})",
        )
        sub.add_argument("--timeout", type=float, default=30.0, help="seconds (default 30)")
        return sub

    add = action("add", "set a fault; prints it with its id")
    add.add_argument("kind", type=_kind, help=f"one of {', '.join(KINDS)}")
    add.add_argument(
        "api", nargs="?", help="the Kafka API, e.g. Produce (none for refuse_connections)"
    )
    add.add_argument("--error", help="fail: the error, e.g. NOT_LEADER_OR_FOLLOWER")
    add.add_argument(
        "--times",
        type=_times,
        default=argparse.SUPPRESS,
        help="how many requests it hits, or 'forever' (default: the kind's, as in Python)",
    )
    add.add_argument("--topic", help="only requests for this topic")
    add.add_argument("--partition", type=int, help="fail: only this partition")
    add.add_argument("--client-id", help="only requests from this client id")
    add.add_argument("--seconds", type=float, help="delay, refuse_connections: how long")
    add.add_argument("--ms", type=int, help="throttle: the throttle_time_ms to answer")
    add.add_argument(
        "--before-answer", action="store_true", help="drop_connection: instead of answering"
    )
    action("list", "list the active faults")
    show = action("show", "show faults by id, spent or not")
    show.add_argument("ids", nargs="+", metavar="ID")
    clear = action("clear", "clear faults by id (they print with their final hits), or all")
    clear.add_argument("ids", nargs="*", metavar="ID")
    release = action("release", "let a stall's held requests go")
    release.add_argument("ids", nargs="+", metavar="ID")


def format_fault(fault: dict[str, Any]) -> str:
    """One line: the id, a tab, then what the fault does, how often, to what and its hits."""
    times = fault.get("times")
    words = [str(fault.get("description", fault.get("kind")))]
    if fault.get("kind") != "refuse_connections":
        words.append("until cleared" if times is None else f"{times} times")
    words += [
        f"{name.replace('_', ' ')} {fault[name]}"
        for name in ("topic", "partition", "client_id")
        if fault.get(name) is not None
    ]
    words.append(f"{fault.get('hits', 0)} hits")
    if not fault.get("active", True):
        words.append("inactive")
    return f"{fault.get('id')}\t{', '.join(words)}"


def _body(args: argparse.Namespace) -> dict[str, Any]:
    body: dict[str, Any] = {"kind": args.kind}
    if args.api is not None:
        body["api"] = int(args.api) if args.api.isdigit() else args.api
    options = {
        "error": args.error,
        "topic": args.topic,
        "partition": args.partition,
        "client_id": args.client_id,
        "seconds": args.seconds,
        "ms": args.ms,
    }
    body.update({name: value for name, value in options.items() if value is not None})
    if args.before_answer:
        body["before_answer"] = True
    if "times" in vars(args):
        body["times"] = args.times
    return body


class Client:
    """The ``/faults`` routes of one broker's HTTP listener."""

    def __init__(self, address: str, user: str | None, timeout: float) -> None:
        self.base = address if "://" in address else f"http://{address}"
        self.address = address
        self.timeout = timeout
        self.headers = {"accept": "application/json"}
        if user:
            name, sep, password = user.partition(":")
            if not sep:
                password = os.environ.get(PASSWORD_ENV, "")
            token = base64.b64encode(f"{name}:{password}".encode()).decode()
            self.headers["authorization"] = f"Basic {token}"

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        headers = dict(self.headers)
        if data is not None:
            headers["content-type"] = "application/json"
        request = urllib.request.Request(
            self.base + path, data=data, method=method, headers=headers
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            with error:
                raw = error.read()
            try:
                message = json.loads(raw)["error"]
            except (ValueError, KeyError, TypeError):
                message = raw.decode("utf-8", "replace").strip() or str(error.reason)
            raise FaultsError(f"{message} (HTTP {error.code})") from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise FaultsError(f"cannot talk to {self.address}: {reason}") from None


def _run(client: Client, args: argparse.Namespace) -> None:
    if args.action == "add":
        print(format_fault(client.call("POST", "/faults", _body(args))))
    elif args.action == "list":
        for fault in client.call("GET", "/faults")["faults"]:
            print(format_fault(fault))
    elif args.action == "show":
        for fault_id in args.ids:
            print(format_fault(client.call("GET", f"/faults/{fault_id}")))
    elif args.action == "clear":
        if not args.ids:
            for fault in client.call("DELETE", "/faults")["cleared"]:
                print(format_fault(fault))
        for fault_id in args.ids:
            print(format_fault(client.call("DELETE", f"/faults/{fault_id}")))
    elif args.action == "release":
        for fault_id in args.ids:
            print(format_fault(client.call("POST", f"/faults/{fault_id}/release")))


def run(args: argparse.Namespace) -> int:
    """Run a `faults` action; the exit status: 0 done, 1 refused by the broker, unreachable or
    not told where the broker is (one line on stderr)."""
    try:
        if not args.http:
            raise FaultsError(f"where is the broker's HTTP listener? give --http or ${HTTP_ENV}")
        _run(Client(args.http, args.user, args.timeout), args)
    except FaultsError as error:
        print(f"kafkacompat faults: {error}", file=sys.stderr)
        return 1
    return 0
