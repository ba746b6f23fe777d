"""The /faults routes without sockets: request bodies checked into registry calls, the answers,
auth, and the CLI's request bodies and lines."""

from __future__ import annotations

import argparse
import base64
import json
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
import trio

from kafkacompat.cli import build_parser
from kafkacompat.cli_faults import _body, format_fault
from kafkacompat.errors import ErrorCode
from kafkacompat.faults import Faults
from kafkacompat.ops.faults_api import BadFault, FaultsApi, JsonAnswer, parse_fault
from kafkacompat.ops.http import Request


def fake_broker(
    *, enabled: bool = True, plain: dict[str, str] | None = None, scram: bool = False
) -> Any:
    settings = {"http.faults.enable": enabled}
    sasl = SimpleNamespace(plain_users=lambda listener: dict(plain or {}))
    credentials = SimpleNamespace(
        entries=lambda: iter([("u", None, None)] if scram else []),
        get=lambda user, mechanism: None,
    )
    return SimpleNamespace(
        config=SimpleNamespace(get_bool=settings.__getitem__),
        faults=Faults(),
        listeners=[SimpleNamespace(name="PLAINTEXT")],
        services=SimpleNamespace(
            security=SimpleNamespace(sasl=sasl, scram_credentials=credentials)
        ),
    )


def call(api: FaultsApi, method: str, path: str, body: object = None, **headers: str) -> JsonAnswer:
    raw = b"" if body is None else body if isinstance(body, bytes) else json.dumps(body).encode()
    segments = tuple(p for p in path.split("/") if p)
    request = Request(method, path, {}, {"host": "h:1", **headers}, raw, segments)

    async def handle() -> JsonAnswer:
        return await api.handle(request)

    return trio.run(handle)


@pytest.fixture
def api() -> Iterator[FaultsApi]:
    broker = fake_broker()
    yield FaultsApi(broker)
    broker.faults.clear()


# --- request bodies -------------------------------------------------------------------------------


def test_bodies_become_the_python_calls() -> None:
    assert parse_fault(
        {"kind": "fail", "api": "Produce", "error": "NOT_LEADER_OR_FOLLOWER", "times": 2}
    ) == ("fail", {"api": "Produce", "error_code": ErrorCode.NOT_LEADER_OR_FOLLOWER, "times": 2})
    assert parse_fault({"kind": "fail", "api": 0, "error_code": 6, "times": None}) == (
        "fail",
        {"api": 0, "error_code": ErrorCode.NOT_LEADER_OR_FOLLOWER, "times": None},
    )
    assert parse_fault({"kind": "throttle", "api": "Fetch", "ms": 250}) == (
        "throttle",
        {"api": "Fetch", "throttle_time_ms": 250},
    )
    assert parse_fault({"kind": "refuse_connections", "seconds": 1.5}) == (
        "refuse_connections",
        {"seconds": 1.5},
    )
    assert parse_fault({"kind": "drop_connection", "api": "Produce", "before_answer": True})[1] == {
        "api": "Produce",
        "before_answer": True,
    }


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "the body must be a JSON object with a kind and its arguments"),
        ({"api": "Produce"}, "unknown kind None; expected one of fail, delay, stall, "),
        ({"kind": "explode"}, "unknown kind 'explode'"),
        ({"kind": "fail", "api": "Produce"}, "fail needs error_code"),
        ({"kind": "delay"}, "delay needs api, seconds"),
        ({"kind": "fail", "api": "Produce", "error": "NOPE"}, "unknown error 'NOPE'"),
        ({"kind": "fail", "api": "Produce", "error": 9999}, "unknown error code 9999"),
        (
            {"kind": "stall", "api": "Fetch", "times": 2},
            "stall takes no argument 'times'; it takes api, topic, client_id",
        ),
        ({"kind": "throttle", "api": "Fetch", "ms": 1, "throttle_time_ms": 2}, "repeats"),
        ({"kind": "delay", "api": "Fetch", "seconds": -1}, "seconds must be a non-negative"),
        ({"kind": "delay", "api": "Fetch", "seconds": float("nan")}, "got NaN"),
        ({"kind": "delay", "api": "Fetch", "seconds": True}, "must be a non-negative number"),
        ({"kind": "fail", "api": "Fetch", "error": 6, "times": "2"}, "an integer or null"),
        ({"kind": "fail", "api": "Fetch", "error": 6, "partition": -1}, "non-negative integer"),
        ({"kind": "stall", "api": ["Fetch"]}, "api must be an API name or key"),
    ],
)
def test_bad_bodies_say_what_is_wrong(body: object, message: str) -> None:
    with pytest.raises(BadFault, match=None) as caught:
        parse_fault(body)
    assert message in str(caught.value)


# --- the routes -----------------------------------------------------------------------------------


def test_set_read_and_clear_a_fault(api: FaultsApi) -> None:
    body = {"kind": "fail", "api": "Produce", "error": "NOT_LEADER_OR_FOLLOWER", "times": 2}
    created = call(api, "POST", "/faults", body)
    assert created.status == 201
    assert created.headers == [("location", "/faults/1")]
    assert created.payload == {
        "id": 1,
        "kind": "fail",
        "api": "Produce",
        "description": "fail Produce with NOT_LEADER_OR_FOLLOWER",
        "times": 2,
        "topic": None,
        "partition": None,
        "client_id": None,
        "hits": 0,
        "active": True,
        "error_code": "NOT_LEADER_OR_FOLLOWER",
    }
    assert [f["id"] for f in call(api, "GET", "/faults").payload["faults"]] == [1]
    assert call(api, "GET", "/faults/1").payload == created.payload
    cleared = call(api, "DELETE", "/faults/1")
    assert cleared.status == 200 and cleared.payload["active"] is False
    assert call(api, "GET", "/faults").payload == {"faults": []}
    assert call(api, "GET", "/faults/1").payload["active"] is False  # still readable
    assert json.loads(cleared.body()) == cleared.payload


def test_every_kind_is_shown_with_its_arguments(api: FaultsApi) -> None:
    bodies: list[dict[str, Any]] = [
        {"kind": "delay", "api": "Metadata", "seconds": 0.5, "client_id": "c"},
        {"kind": "stall", "api": "Fetch", "topic": "t"},
        {"kind": "drop_connection", "api": "Produce", "before_answer": True},
        {"kind": "throttle", "api": "Fetch", "ms": 100},
        {"kind": "refuse_connections", "seconds": 2},
    ]
    shown = [call(api, "POST", "/faults", b).payload for b in bodies]
    assert [(f["id"], f["kind"], f["api"]) for f in shown] == [
        (1, "delay", "Metadata"),
        (2, "stall", "Fetch"),
        (3, "drop_connection", "Produce"),
        (4, "throttle", "Fetch"),
        (5, "refuse_connections", None),
    ]
    assert shown[0]["seconds"] == 0.5 and shown[0]["client_id"] == "c"
    assert shown[1]["released"] is False and shown[1]["topic"] == "t"
    assert shown[2]["before_answer"] is True and shown[2]["times"] == 1
    assert shown[3]["throttle_time_ms"] == 100 and shown[3]["times"] is None
    assert shown[4]["seconds"] == 2
    released = call(api, "POST", "/faults/2/release")
    assert released.payload["released"] is True and released.payload["active"] is False
    cleared = call(api, "DELETE", "/faults")
    assert [f["id"] for f in cleared.payload["cleared"]] == [1, 3, 4, 5]
    assert call(api, "GET", "/faults").payload == {"faults": []}
    assert call(api, "GET", "/faults/1").status == 404  # clearing all forgets them


def test_errors_are_json_with_a_status(api: FaultsApi) -> None:
    def error(method: str, path: str, body: object = None) -> tuple[int, str]:
        answer = call(api, method, path, body)
        return answer.status, answer.payload["error"]

    assert error("POST", "/faults", b"{nope") == (
        400,
        "the body is not JSON: Expecting property name enclosed in double quotes: "
        "line 1 column 2 (char 1)",
    )
    assert error("POST", "/faults", {"kind": "stall", "api": "Nope"}) == (
        400,
        "unknown Kafka API 'Nope'",
    )
    assert error("POST", "/faults", {"kind": "fail", "api": "Produce", "error": 6, "times": 0}) == (
        400,
        "times must be at least 1, got 0",
    )
    assert error(
        "POST", "/faults", {"kind": "throttle", "api": "Fetch", "ms": 1, "topic": "t"}
    ) == (
        400,
        "throttle takes no argument 'topic'; it takes api, throttle_time_ms, times, client_id",
    )
    assert error("GET", "/faults/7") == (404, "no fault '7'")
    assert error("GET", "/faults/x") == (404, "no fault 'x'")
    assert error("DELETE", "/faults/7") == (404, "no fault '7'")
    call(api, "POST", "/faults", {"kind": "delay", "api": "Fetch", "seconds": 1})
    assert error("POST", "/faults/1/release") == (
        400,
        "fault 1 is not a stall: only a stall is released",
    )
    assert error("GET", "/faults/1/other") == (404, "no such resource '/faults/1/other'")
    answer = call(api, "PUT", "/faults")
    assert (answer.status, answer.headers) == (405, [("allow", "GET, POST, DELETE")])
    assert call(api, "GET", "/faults/1/release").status == 405


def test_off_unless_enabled() -> None:
    api = FaultsApi(fake_broker(enabled=False))
    answer = call(api, "POST", "/faults", {"kind": "stall", "api": "Fetch"})
    assert (answer.status, answer.payload) == (
        404,
        {"error": "fault injection over HTTP is off (http.faults.enable=false)"},
    )


def test_pages_of_other_sites_are_refused(api: FaultsApi) -> None:
    answer = call(api, "DELETE", "/faults", origin="http://evil.example")
    assert answer.status == 403
    assert call(api, "GET", "/faults", origin="http://h:1").status == 200


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_sasl_users_must_log_in() -> None:
    api = FaultsApi(fake_broker(plain={"admin": "secret"}))
    answer = call(api, "GET", "/faults")
    assert answer.status == 401
    assert answer.headers == [("www-authenticate", 'Basic realm="kafkacompat faults"')]
    assert call(api, "GET", "/faults", authorization=basic("admin", "wrong")).status == 401
    assert call(api, "GET", "/faults", authorization=basic("admin", "secret")).status == 200
    assert FaultsApi(fake_broker(scram=True))._has_users()
    assert not FaultsApi(fake_broker())._has_users()


# --- the CLI --------------------------------------------------------------------------------------


def cli_args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["faults", *argv])


def test_cli_bodies() -> None:
    args = cli_args("add", "fail", "Produce", "--error", "NOT_LEADER_OR_FOLLOWER", "--times", "2")
    assert _body(args) == {
        "kind": "fail",
        "api": "Produce",
        "error": "NOT_LEADER_OR_FOLLOWER",
        "times": 2,
    }
    args = cli_args("add", "drop-connection", "0", "--before-answer", "--times", "forever")
    assert _body(args) == {
        "kind": "drop_connection",
        "api": 0,
        "before_answer": True,
        "times": None,
    }
    assert _body(cli_args("add", "refuse_connections", "--seconds", "2")) == {
        "kind": "refuse_connections",
        "seconds": 2.0,
    }
    assert _body(cli_args("add", "throttle", "Fetch", "--ms", "9", "--client-id", "c")) == {
        "kind": "throttle",
        "api": "Fetch",
        "ms": 9,
        "client_id": "c",
    }


def test_cli_lines(api: FaultsApi) -> None:
    body = {"kind": "fail", "api": "Produce", "error": 6, "times": 2, "topic": "orders"}
    shown = call(api, "POST", "/faults", body).payload
    assert format_fault(shown) == (
        "1\tfail Produce with NOT_LEADER_OR_FOLLOWER, 2 times, topic orders, 0 hits"
    )
    refuse = call(api, "POST", "/faults", {"kind": "refuse_connections", "seconds": 1}).payload
    assert format_fault({**refuse, "active": False}) == (
        "2\trefuse connections for 1 s, 0 hits, inactive"
    )
