"""One cluster's keys in etcd: reads, leases, compare-and-set transactions and watches.

etcd is the coordination engine (as ZooKeeper was for Kafka before KRaft): it keeps membership,
the controller and cluster metadata, and its leases, transactions and ordered watches are all
the consensus this project uses. Access goes through etcd's v3 JSON gateway with the `etcd3gw`
client; its calls block, so each runs in a Trio worker thread, on a client of its own (a
`requests` session is not shared between threads).

Every key lives under the cluster's prefix (``metadata.store.url``'s path), so several clusters
can share one etcd.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import socket
import threading
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import trio
from etcd3gw import exceptions as etcd_errors
from etcd3gw.client import Etcd3Client

from kafkacompat.config import HostPort

__all__ = [
    "Change",
    "Compare",
    "Entry",
    "EtcdStore",
    "EtcdUnavailable",
    "Put",
    "WatchLost",
    "parse_store_url",
]

log = logging.getLogger(__name__)


class EtcdUnavailable(Exception):
    """No etcd endpoint answered."""


class WatchLost(Exception):
    """A watch ended (etcd compacted the history it needed, or the stream broke): read again."""


@dataclass(frozen=True, slots=True)
class Entry:
    """A key as read: its value and the revisions that created and last modified it."""

    key: str
    value: bytes
    create_revision: int
    mod_revision: int
    lease: int = 0


@dataclass(frozen=True, slots=True)
class Change:
    """One watched change: ``value`` None when the key was deleted."""

    key: str
    value: bytes | None
    revision: int
    create_revision: int = 0


@dataclass(frozen=True, slots=True)
class Compare:
    """A transaction guard on one key: its CREATE or MOD revision, or its VALUE, compared."""

    key: str
    target: Literal["CREATE", "MOD", "VALUE"]
    result: Literal["EQUAL", "NOT_EQUAL", "GREATER", "LESS"]
    operand: int | bytes


@dataclass(frozen=True, slots=True)
class Put:
    """A write in a transaction: ``value`` None deletes the key; ``lease`` ties it to a lease."""

    key: str
    value: bytes | None
    lease: int = 0


def parse_store_url(url: str) -> tuple[list[HostPort], str]:
    """``etcd://host:port[,host:port...][/prefix]`` -> endpoints and key prefix (default
    ``/kafkacompat``)."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme != "etcd":
        raise ValueError(f"metadata.store.url must be etcd://HOST:PORT[,...][/PREFIX], got {url!r}")
    hosts, slash, path = rest.partition("/")
    endpoints = []
    for item in hosts.split(","):
        host, colon, port = item.strip().rpartition(":")
        if not colon or not host or not port.isdigit():
            raise ValueError(f"metadata.store.url: bad endpoint {item!r} in {url!r}")
        endpoints.append(HostPort(host, int(port)))
    prefix = "/" + path.strip("/") if slash and path.strip("/") else "/kafkacompat"
    return endpoints, prefix


def _b64(data: str | bytes) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return base64.b64encode(raw).decode()


def _unb64(text: str) -> bytes:
    return base64.b64decode(text)


def _prefix_end(prefix: bytes) -> bytes:
    """The first key after every key starting with ``prefix``."""
    return prefix[:-1] + bytes([prefix[-1] + 1])


class EtcdStore:
    """The keys of one cluster under ``prefix``, on the etcd at ``endpoints``."""

    def __init__(self, endpoints: Sequence[HostPort], prefix: str, timeout: float = 5.0) -> None:
        if not endpoints:
            raise ValueError("no etcd endpoints")
        self.endpoints = list(endpoints)
        self.prefix = prefix.rstrip("/")
        self.timeout = timeout
        self._local = threading.local()

    # -- keys --------------------------------------------------------------------------------

    def full_key(self, key: str) -> str:
        return f"{self.prefix}/{key}"

    def _relative(self, full: bytes) -> str:
        return full.decode()[len(self.prefix) + 1 :]

    # -- transport ---------------------------------------------------------------------------

    def _client(self) -> Etcd3Client:
        client: Etcd3Client | None = getattr(self._local, "client", None)
        if client is None:
            endpoint = self.endpoints[getattr(self._local, "endpoint", 0)]
            client = Etcd3Client(endpoint.host, endpoint.port, timeout=self.timeout)
            self._local.client = client
        return client

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        """POST to the gateway from a worker thread, trying each endpoint once."""
        last: Exception | None = None
        for _ in self.endpoints:
            client = self._client()
            try:
                return client.post(client.get_url(path), json=body)
            except (etcd_errors.ConnectionFailedError, etcd_errors.ConnectionTimeoutError) as exc:
                last = exc
                self._local.endpoint = (getattr(self._local, "endpoint", 0) + 1) % len(
                    self.endpoints
                )
                self._local.client = None
        raise EtcdUnavailable(f"etcd at {self._where()} does not answer: {last}")

    def _where(self) -> str:
        return ",".join(str(e) for e in self.endpoints)

    async def _call(self, path: str, body: dict[str, Any]) -> Any:
        return await trio.to_thread.run_sync(self._post, path, body)

    # -- reads -------------------------------------------------------------------------------

    async def read_prefix(self, key_prefix: str = "") -> tuple[int, list[Entry]]:
        """Every key under ``key_prefix`` (relative to the cluster's prefix) and the revision
        the read saw: watch from revision + 1 to miss nothing."""
        start = (self.full_key(key_prefix)).encode()
        body = {"key": _b64(start), "range_end": _b64(_prefix_end(start))}
        answer = await self._call("/kv/range", body)
        revision = int(answer["header"]["revision"])
        return revision, [self._entry(kv) for kv in answer.get("kvs", [])]

    async def read(self, key: str) -> Entry | None:
        answer = await self._call("/kv/range", {"key": _b64(self.full_key(key))})
        kvs = answer.get("kvs", [])
        return self._entry(kvs[0]) if kvs else None

    def _entry(self, kv: dict[str, Any]) -> Entry:
        return Entry(
            key=self._relative(_unb64(kv["key"])),
            value=_unb64(kv.get("value", "")),
            create_revision=int(kv.get("create_revision", 0)),
            mod_revision=int(kv.get("mod_revision", 0)),
            lease=int(kv.get("lease", 0)),
        )

    # -- leases ------------------------------------------------------------------------------

    async def grant_lease(self, ttl_seconds: int) -> int:
        answer = await self._call("/lease/grant", {"TTL": ttl_seconds})
        return int(answer["ID"])

    async def keep_alive(self, lease: int) -> bool:
        """Renew ``lease``; False when it has already expired."""
        answer = await self._call("/lease/keepalive", {"ID": lease})
        return int(answer.get("result", {}).get("TTL", -1)) > 0

    async def revoke(self, lease: int) -> None:
        """End ``lease`` now: its keys are deleted."""
        with contextlib.suppress(etcd_errors.Etcd3Exception):  # already expired
            await self._call("/kv/lease/revoke", {"ID": lease})

    # -- writes ------------------------------------------------------------------------------

    async def transaction(
        self, compares: Sequence[Compare], writes: Sequence[Put]
    ) -> tuple[bool, int]:
        """Apply ``writes`` only if every compare holds, atomically: (succeeded, revision)."""
        body = {
            "compare": [self._compare(c) for c in compares],
            "success": [self._write(w) for w in writes],
        }
        answer = await self._call("/kv/txn", body)
        return bool(answer.get("succeeded", False)), int(answer["header"]["revision"])

    async def put(self, key: str, value: bytes, lease: int = 0) -> int:
        """Write unconditionally; the new revision."""
        _, revision = await self.transaction([], [Put(key, value, lease)])
        return revision

    def _compare(self, compare: Compare) -> dict[str, Any]:
        found: dict[str, Any] = {
            "key": _b64(self.full_key(compare.key)),
            "target": compare.target,
            "result": compare.result,
        }
        if compare.target == "CREATE":
            found["create_revision"] = str(compare.operand)
        elif compare.target == "MOD":
            found["mod_revision"] = str(compare.operand)
        else:
            operand = compare.operand
            found["value"] = _b64(operand if isinstance(operand, bytes) else str(operand))
        return found

    def _write(self, write: Put) -> dict[str, Any]:
        key = _b64(self.full_key(write.key))
        if write.value is None:
            return {"request_delete_range": {"key": key}}
        put: dict[str, Any] = {"key": key, "value": _b64(write.value)}
        if write.lease:
            put["lease"] = str(write.lease)
        return {"request_put": put}

    # -- watches -----------------------------------------------------------------------------

    async def watch(
        self, key_prefix: str, start_revision: int
    ) -> AsyncGenerator[list[Change], None]:
        """Changes under ``key_prefix`` from ``start_revision`` on, in revision order, until
        cancelled, as etcd sends them: a batch holds whole revisions (a transaction's changes
        arrive together). Raises `WatchLost` when etcd no longer has that history (compacted) or the
        stream breaks: read the prefix again and watch from the new revision."""
        send, receive = trio.open_memory_channel[list[Change] | BaseException](256)
        stop = threading.Event()
        token = trio.lowlevel.current_trio_token()
        start = self.full_key(key_prefix).encode()
        body = {
            "create_request": {
                "key": _b64(start),
                "range_end": _b64(_prefix_end(start)),
                "start_revision": str(start_revision),
            }
        }

        opened: list[Any] = []

        def deliver(item: list[Change] | BaseException) -> None:
            trio.from_thread.run(send.send, item, trio_token=token)

        def stream() -> None:
            endpoint = self.endpoints[getattr(self._local, "endpoint", 0)]
            client = Etcd3Client(endpoint.host, endpoint.port, timeout=None)
            try:
                response = client.session.post(
                    client.get_url("/watch"), json=body, stream=True, timeout=(self.timeout, None)
                )
                opened.append(response)
                with response:
                    for line in response.iter_lines():
                        if stop.is_set():
                            return
                        if line.strip():
                            changes = self._changes(line)
                            if changes:
                                deliver(changes)
                raise WatchLost("the watch stream ended")
            except BaseException as exc:  # handed to the Trio side, which raises it there
                if stop.is_set():
                    return
                lost = exc if isinstance(exc, WatchLost) else WatchLost(f"watch failed: {exc}")
                with contextlib.suppress(
                    trio.RunFinishedError, trio.BrokenResourceError, trio.ClosedResourceError
                ):
                    deliver(lost)

        thread = threading.Thread(target=stream, name="etcd-watch", daemon=True)
        thread.start()
        try:
            async with receive:
                async for item in receive:
                    if isinstance(item, BaseException):
                        raise item
                    yield item
        finally:
            stop.set()
            for response in opened:
                _interrupt(response)

    def _changes(self, line: bytes) -> list[Change]:
        result = json.loads(line).get("result", {})
        if result.get("canceled") or int(result.get("compact_revision", 0) or 0):
            raise WatchLost(
                f"etcd compacted the history (to {result.get('compact_revision')}); read again"
            )
        found = []
        for event in result.get("events", []):
            kv = event["kv"]
            deleted = event.get("type") == "DELETE"
            found.append(
                Change(
                    key=self._relative(_unb64(kv["key"])),
                    value=None if deleted else _unb64(kv.get("value", "")),
                    revision=int(kv.get("mod_revision", 0)),
                    create_revision=int(kv.get("create_revision", 0)),
                )
            )
        return found


def _interrupt(response: Any) -> None:
    """Wake the thread reading a streamed response by shutting its socket down (closing the
    response here would wait for the lock the reading thread holds)."""
    connection = getattr(response.raw, "connection", None) or getattr(
        response.raw, "_connection", None
    )
    sock = getattr(connection, "sock", None)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
