"""/healthz (the process answers) and /readyz (the broker can serve clients).

Ready means: storage recovered (the broker's partitions were opened, which runs recovery),
every Kafka listener bound and accepting, and this broker registered in the cluster metadata it
serves (on a single broker the local controller registers it at once).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kafkacompat.broker.broker import Broker

__all__ = ["Readiness"]


@dataclass
class Readiness:
    """What the server reports as it starts; `problems` is empty when the broker is ready."""

    broker: Broker
    listeners_bound: bool = False
    #: Extra checks a cluster adds (registration, metadata caught up): name -> ok.
    checks: dict[str, bool] = field(default_factory=dict)

    def problems(self) -> list[str]:
        found = []
        if getattr(self.broker, "partitions", None) is None:
            found.append("storage not recovered")
        if not self.listeners_bound:
            found.append("listeners not bound")
        image = self.broker.services.metadata.image
        if image.broker(self.broker.node_id) is None:
            found.append(f"node {self.broker.node_id} not registered in the cluster metadata")
        if self.broker.node_id not in self.broker.controller.live_brokers():
            found.append(f"node {self.broker.node_id} not among the live brokers")
        found += [f"{name} failed" for name, ok in sorted(self.checks.items()) if not ok]
        return found
