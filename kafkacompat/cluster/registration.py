"""A broker's membership of the cluster: its registration under an etcd lease.

As a ZooKeeper-era broker's ephemeral ``/brokers/ids/<id>``: the key ``brokers/<id>`` holds the
broker's endpoints and rack and lives as long as the broker keeps its lease alive. The revision
that created the key is the broker epoch. A broker that loses its lease (paused, cut off) is
gone from the cluster; it registers again with a new epoch when it can.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

import trio

from kafkacompat.cluster.etcd_store import Compare, EtcdStore, EtcdUnavailable, Put
from kafkacompat.cluster.metadata_image import BrokerEndpoint, BrokerInfo

__all__ = ["BROKERS", "BrokerRegistration", "NodeIdInUse", "broker_key", "decode_broker"]

log = logging.getLogger(__name__)

BROKERS = "brokers/"


class NodeIdInUse(Exception):
    """Another live broker is registered with this node id."""


def broker_key(node_id: int) -> str:
    return f"{BROKERS}{node_id}"


def encode_broker(info: BrokerInfo) -> bytes:
    return json.dumps(
        {
            "node_id": info.node_id,
            "rack": info.rack,
            "endpoints": [[e.listener, e.host, e.port] for e in info.endpoints],
        },
        separators=(",", ":"),
    ).encode()


def decode_broker(value: bytes) -> BrokerInfo:
    """A registration's value as the broker it describes."""
    data = json.loads(value)
    endpoints = tuple(
        BrokerEndpoint(str(name), str(host), int(port)) for name, host, port in data["endpoints"]
    )
    first = endpoints[0]
    return BrokerInfo(
        data["node_id"], first.host, first.port, rack=data.get("rack"), endpoints=endpoints
    )


@dataclass
class BrokerRegistration:
    """Register ``info`` under a lease of ``session_timeout`` seconds and keep it alive every
    ``heartbeat_interval`` seconds (Kafka's broker.session.timeout.ms and
    broker.heartbeat.interval.ms)."""

    store: EtcdStore
    info: BrokerInfo
    session_timeout: float
    heartbeat_interval: float
    lease: int = 0
    #: The create revision of this broker's registration: its broker epoch (0: not registered).
    epoch: int = 0

    async def register(self) -> int:
        """Create the registration (NodeIdInUse if a live broker holds the id); the epoch."""
        self.lease = await self.store.grant_lease(max(1, round(self.session_timeout)))
        key = broker_key(self.info.node_id)
        won, revision = await self.store.transaction(
            [Compare(key, "CREATE", "EQUAL", 0)], [Put(key, encode_broker(self.info), self.lease)]
        )
        if not won:
            await self.store.revoke(self.lease)
            self.lease = 0
            raise NodeIdInUse(f"node id {self.info.node_id} is registered by a live broker")
        self.epoch = revision
        log.info("registered broker %d, epoch %d", self.info.node_id, self.epoch)
        return revision

    async def keep_alive(self) -> None:
        """Renew the lease forever; when it was lost, register again (a new epoch)."""
        while True:
            await trio.sleep(self.heartbeat_interval)
            try:
                alive = await self.store.keep_alive(self.lease)
            except EtcdUnavailable as exc:
                log.warning("cannot renew broker %d's lease: %s", self.info.node_id, exc)
                continue
            if alive:
                continue
            log.warning("broker %d's lease expired; registering again", self.info.node_id)
            try:
                await self.register()
            except (EtcdUnavailable, NodeIdInUse) as exc:
                log.warning("broker %d cannot register again yet: %s", self.info.node_id, exc)

    async def unregister(self) -> None:
        """Leave the cluster now (a clean shutdown)."""
        if self.lease:
            await self.store.revoke(self.lease)
            self.lease = 0
            self.epoch = 0
