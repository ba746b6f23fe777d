"""Who is the controller: one broker wins it in an etcd transaction, and its writes are fenced.

As Kafka on ZooKeeper (an ephemeral ``/controller`` and a ``/controller_epoch`` bumped in one
multi-op): the key ``controller`` names the winner and lives under the winner's broker lease;
``controller_epoch`` counts the controllers there have been. A broker wins only if there is no
controller and the epoch is the one it read, so two can never win the same epoch. Every write a
controller makes is a transaction that also checks the ``controller`` key is still the one it
created: a deposed controller (its lease expired while it was paused) cannot change anything.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from kafkacompat.cluster.etcd_store import Compare, EtcdStore, Put

__all__ = [
    "CONTROLLER",
    "CONTROLLER_EPOCH",
    "ControllerElection",
    "ControllerState",
    "NotController",
    "decode_controller",
]

log = logging.getLogger(__name__)

CONTROLLER = "controller"
CONTROLLER_EPOCH = "controller_epoch"


class NotController(Exception):
    """This broker is not (or no longer) the controller: its write was refused."""


@dataclass(frozen=True, slots=True)
class ControllerState:
    """The controller as read from etcd: its node id and epoch (-1, 0 when there is none)."""

    node_id: int
    epoch: int


def decode_controller(value: bytes) -> ControllerState:
    data = json.loads(value)
    return ControllerState(int(data["node_id"]), int(data["epoch"]))


@dataclass
class ControllerElection:
    """Campaign for the controller as ``node_id``, under the broker's ``lease``."""

    store: EtcdStore
    node_id: int
    #: The create revision of the controller key this broker wrote: its fence (0: not controller).
    fence: int = 0
    epoch: int = 0

    @property
    def is_controller(self) -> bool:
        return self.fence != 0

    async def current(self) -> ControllerState | None:
        """The controller etcd names now, if any."""
        entry = await self.store.read(CONTROLLER)
        return decode_controller(entry.value) if entry else None

    async def campaign(self, lease: int) -> bool:
        """Try once to become the controller; True when this broker won (a new epoch)."""
        previous = await self.store.read(CONTROLLER_EPOCH)
        last_epoch = int(previous.value) if previous else 0
        epoch_guard = (
            Compare(CONTROLLER_EPOCH, "MOD", "EQUAL", previous.mod_revision)
            if previous
            else Compare(CONTROLLER_EPOCH, "CREATE", "EQUAL", 0)
        )
        epoch = last_epoch + 1
        value = json.dumps({"node_id": self.node_id, "epoch": epoch}).encode()
        won, revision = await self.store.transaction(
            [Compare(CONTROLLER, "CREATE", "EQUAL", 0), epoch_guard],
            [Put(CONTROLLER, value, lease), Put(CONTROLLER_EPOCH, str(epoch).encode())],
        )
        if won:
            self.fence, self.epoch = revision, epoch
            log.info("broker %d is the controller, epoch %d", self.node_id, epoch)
        return won

    def resign_locally(self) -> None:
        """Forget being the controller (its key is gone or names another broker)."""
        if self.fence:
            log.info("broker %d is no longer the controller (epoch %d)", self.node_id, self.epoch)
        self.fence = 0

    async def write(self, writes: Sequence[Put], guards: Sequence[Compare] = ()) -> int:
        """Apply ``writes`` as the controller, fenced by its epoch and by ``guards``; the new
        revision. Raises NotController when this broker is not the controller any more (or a
        guard failed)."""
        if not self.fence:
            raise NotController(f"broker {self.node_id} is not the controller")
        fenced = [Compare(CONTROLLER, "CREATE", "EQUAL", self.fence), *guards]
        won, revision = await self.store.transaction(fenced, writes)
        if not won:
            current = await self.current()
            if current is None or current.epoch != self.epoch:
                self.resign_locally()
                raise NotController(
                    f"broker {self.node_id}'s controller epoch {self.epoch} was superseded"
                )
            raise NotController("a guarded value changed meanwhile")
        return revision
