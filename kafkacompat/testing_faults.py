"""Faults on a broker in another process: the Python fault API (`kafkacompat.faults`) over the
broker's HTTP listener (``/faults``, with ``http.faults.enable=true``).

`RemoteFaults` has the same methods as an in-process broker's ``.faults`` — ``fail``,
``delay``, ``stall``, ``drop_connection``, ``throttle``, ``refuse_connections``, ``clear`` —
and each returns a `RemoteFault`: a context manager that clears it on exit, whose ``hits`` is
read from the broker. A subprocess `KafkaBroker` and every broker of a `LocalCluster` hand one out.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from types import TracebackType
from typing import Any

__all__ = ["RemoteFault", "RemoteFaults", "RemoteFaultsError"]


class RemoteFaultsError(Exception):
    """The broker refused the fault (bad arguments, faults not enabled) or did not answer."""


class RemoteFaults:
    """The faults of the broker whose HTTP listener is at ``address`` (``HOST:PORT``)."""

    def __init__(self, address: str, timeout: float = 10.0) -> None:
        self.address = address
        self.timeout = timeout

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"http://{self.address}{path}",
            data=data,
            method=method,
            headers={"content-type": "application/json"} if data is not None else {},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                return json.loads(answer.read() or b"null")
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")
            raise RemoteFaultsError(f"{method} {path}: {exc.code} {detail}") from None
        except OSError as exc:
            raise RemoteFaultsError(f"{method} {path}: {exc}") from None

    def _add(self, kind: str, **arguments: Any) -> RemoteFault:
        body = {"kind": kind, **{k: v for k, v in arguments.items() if v is not None}}
        return RemoteFault(self, self._call("POST", "/faults", body))

    def fail(
        self,
        api: str | int,
        error_code: int | str,
        times: int | None = 1,
        *,
        topic: str | None = None,
        partition: int | None = None,
        client_id: str | None = None,
    ) -> RemoteFault:
        """Answer the next ``times`` requests of ``api`` with ``error_code``."""
        return self._add(
            "fail",
            api=api,
            error_code=error_code,
            times=times,
            topic=topic,
            partition=partition,
            client_id=client_id,
        )

    def delay(
        self, api: str | int, seconds: float, times: int | None = None, **scope: Any
    ) -> RemoteFault:
        return self._add("delay", api=api, seconds=seconds, times=times, **scope)

    def stall(self, api: str | int, **scope: Any) -> RemoteFault:
        return self._add("stall", api=api, **scope)

    def drop_connection(
        self, api: str | int, before_answer: bool = False, times: int | None = 1, **scope: Any
    ) -> RemoteFault:
        return self._add(
            "drop_connection", api=api, before_answer=before_answer, times=times, **scope
        )

    def throttle(
        self, api: str | int, throttle_time_ms: int, times: int | None = None, **scope: Any
    ) -> RemoteFault:
        return self._add(
            "throttle", api=api, throttle_time_ms=throttle_time_ms, times=times, **scope
        )

    def refuse_connections(self, seconds: float) -> RemoteFault:
        """Close every new connection at once for ``seconds`` (the broker looks down)."""
        return self._add("refuse_connections", seconds=seconds)

    def active(self) -> list[dict[str, Any]]:
        answer = self._call("GET", "/faults")
        return list(answer["faults"] if isinstance(answer, dict) else answer)

    def clear(self) -> None:
        """Clear every fault of the broker."""
        self._call("DELETE", "/faults")


class RemoteFault:
    """One fault set on a remote broker."""

    def __init__(self, faults: RemoteFaults, described: dict[str, Any]) -> None:
        self.faults = faults
        self.id = described["id"]
        self.kind = str(described["kind"])

    def describe(self) -> dict[str, Any]:
        answer: dict[str, Any] = self.faults._call("GET", f"/faults/{self.id}")
        return answer

    @property
    def hits(self) -> int:
        """How many requests (or connections) the fault has hit so far."""
        return int(self.describe()["hits"])

    def release(self) -> None:
        """Let a stall's held requests go."""
        self.faults._call("POST", f"/faults/{self.id}/release")

    def clear(self) -> None:
        self.faults._call("DELETE", f"/faults/{self.id}")

    def __enter__(self) -> RemoteFault:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.clear()
