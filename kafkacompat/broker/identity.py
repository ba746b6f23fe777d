"""The broker's identity on disk: `meta.properties` with cluster.id and node.id, as Kafka keeps it."""

from __future__ import annotations

import base64
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

from kafkacompat.config import ConfigError, read_properties

META_FILE = "meta.properties"


@dataclass(frozen=True, slots=True)
class Identity:
    cluster_id: str
    node_id: int


def new_cluster_id() -> str:
    """A random cluster id in Kafka's form: a UUID as 22 characters of URL-safe base64."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()


def load_or_create_identity(data_dir: Path, node_id: int, cluster_id: str | None) -> Identity:
    """Read the identity of a data directory, creating it on first start.

    A data directory belongs to one cluster and one node: starting it with another id is refused.
    """
    path = data_dir / META_FILE
    if path.exists():
        stored = read_properties(path)
        stored_cluster = stored.get("cluster.id", "")
        stored_node = int(stored.get("node.id", node_id))
        if cluster_id is not None and cluster_id != stored_cluster:
            raise ConfigError(
                f"{data_dir} belongs to cluster {stored_cluster!r}, not {cluster_id!r}"
            )
        if stored_node != node_id:
            raise ConfigError(f"{data_dir} belongs to node {stored_node}, not {node_id}")
        return Identity(stored_cluster, stored_node)
    data_dir.mkdir(parents=True, exist_ok=True)
    identity = Identity(cluster_id or new_cluster_id(), node_id)
    _write(path, identity)
    return identity


def replace_cluster_id(data_dir: Path, cluster_id: str, node_id: int) -> None:
    """Give a new data directory the id of the cluster it joins."""
    _write(data_dir / META_FILE, Identity(cluster_id, node_id))


def _write(path: Path, identity: Identity) -> None:
    text = f"version=1\ncluster.id={identity.cluster_id}\nnode.id={identity.node_id}\n"
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
