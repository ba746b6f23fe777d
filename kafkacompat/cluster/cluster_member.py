"""A broker's part in the cluster's control plane, assembled: its registration kept alive, its
metadata follower, its controller campaign, and the admin path its handlers use.

`ClusterMember.run` registers, reads the metadata, then keeps all three going until cancelled;
leaving (cancelled or `leave`) ends the registration's lease, so the controller moves at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

import trio

from kafkacompat.cluster.cluster_admin import ClusterAdmin, ConfigValidator
from kafkacompat.cluster.controller_election import ControllerElection
from kafkacompat.cluster.controller_loop import run_controller
from kafkacompat.cluster.etcd_store import EtcdStore
from kafkacompat.cluster.leader_election import ElectionSettings
from kafkacompat.cluster.metadata_follower import ImageUpdates, MetadataKeys, follow_metadata
from kafkacompat.cluster.metadata_image import BrokerInfo, MetadataImage, MetadataView
from kafkacompat.cluster.registration import BrokerRegistration

__all__ = ["ClusterMember", "MemberSettings"]


@dataclass(frozen=True, slots=True)
class MemberSettings:
    """Kafka's names: broker.session.timeout.ms and broker.heartbeat.interval.ms (seconds here),
    default.replication.factor, and how long an admin change may take to be carried out."""

    session_timeout: float = 9.0
    heartbeat_interval: float = 2.0
    default_replication_factor: int = 1
    admin_timeout: float = 30.0


@dataclass
class ClusterMember:
    store: EtcdStore
    cluster_id: str
    info: BrokerInfo
    validate_configs: ConfigValidator
    settings: MemberSettings = field(default_factory=MemberSettings)
    #: How the controller elects leaders, when this broker is the controller (the broker sets
    #: them from its config before `run`).
    elections: ElectionSettings = field(default_factory=ElectionSettings)

    def __post_init__(self) -> None:
        empty = MetadataImage.build(self.cluster_id, -1, [], [])
        self.view = MetadataView(empty)
        self.updates = ImageUpdates(self.view)
        self.keys = MetadataKeys(self.cluster_id)
        self.registration = BrokerRegistration(
            self.store,
            self.info,
            self.settings.session_timeout,
            self.settings.heartbeat_interval,
        )
        self.election = ControllerElection(self.store, self.info.node_id)
        self.admin = ClusterAdmin(
            self.store,
            self.updates,
            self.info.node_id,
            self.validate_configs,
            default_replication_factor=self.settings.default_replication_factor,
            timeout=self.settings.admin_timeout,
        )

    @property
    def image(self) -> MetadataImage:
        return self.view.image

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Join the cluster and take part in it until cancelled; started once registered and
        the metadata is read."""
        await self.registration.register()
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(follow_metadata, self.store, self.keys, self.updates.publish)
                nursery.start_soon(self.registration.keep_alive)
                nursery.start_soon(
                    partial(run_controller, settings=self.elections),
                    self.election,
                    self.updates,
                    self._lease,
                )
                task_status.started()
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(5):
                await self.leave()

    def _lease(self) -> int:
        return self.registration.lease

    async def leave(self) -> None:
        """End the registration now (a clean shutdown): the controller, if here, moves."""
        self.election.resign_locally()
        await self.registration.unregister()
