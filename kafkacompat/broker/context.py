"""What a handler knows about the request it is answering, and the services it may use."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from kafkacompat.broker.services import BrokerServices
from kafkacompat.broker.session import Session
from kafkacompat.cluster.metadata_image import BrokerEndpoint, BrokerInfo, MetadataImage
from kafkacompat.errors import ErrorCode, KafkaError
from kafkacompat.partitions.partition import Partition
from kafkacompat.protocol.messages.request_header import RequestHeader
from kafkacompat.security.acls import (
    ALL_OPERATIONS_BITS,
    CLUSTER_NAME,
    AclOperation,
    ResourceType,
)

__all__ = ["RequestContext"]


#: Finds the hosted partition a request may use (`RequestContext.led_partition`).
PartitionLookup = Callable[[str, int], Partition]


@dataclass(slots=True)
class RequestContext:
    services: BrokerServices
    session: Session
    header: RequestHeader

    @property
    def api_version(self) -> int:
        return self.header.request_api_version

    @property
    def client_id(self) -> str | None:
        return self.header.client_id

    @property
    def client_address(self) -> str:
        return self.session.peer

    def led_partition(self, topic: str, index: int) -> Partition:
        """The hosted partition ``topic``-``index`` this broker leads: NOT_LEADER_OR_FOLLOWER
        when the cluster metadata names another leader, UNKNOWN_TOPIC_OR_PARTITION when it is
        not hosted here."""
        services = self.services
        if services.metadata.image.led_elsewhere(topic, index, services.node_id):
            raise KafkaError(
                ErrorCode.NOT_LEADER_OR_FOLLOWER,
                f"broker {services.node_id} does not lead {topic}-{index}",
            )
        return services.partitions.partition(topic, index)

    @property
    def image(self) -> MetadataImage:
        """The cluster metadata image current when this is read."""
        return self.services.metadata.image

    @property
    def node_id(self) -> int:
        return self.services.node_id

    @property
    def this_broker(self) -> BrokerInfo:
        """This broker as clients reach it."""
        image = self.services.metadata.image
        found = image.broker(self.services.node_id)
        assert found is not None, "a broker is always in its own image"
        return found

    @property
    def this_endpoint(self) -> BrokerEndpoint:
        """This broker's endpoint on the listener the request came in on."""
        found = self.this_broker.endpoint(self.session.listener_name)
        assert found is not None, "a request comes in on one of the broker's listeners"
        return found

    def reachable_brokers(self, image: MetadataImage) -> list[tuple[BrokerInfo, BrokerEndpoint]]:
        """The brokers of ``image`` that have this request's listener, with their endpoint on it
        (Kafka leaves out brokers without the client's listener)."""
        listener = self.session.listener_name
        found = []
        for broker in image.brokers:
            endpoint = broker.endpoint(listener)
            if endpoint is not None:
                found.append((broker, endpoint))
        return found

    def authorize(self, operation: AclOperation, resource_type: ResourceType, name: str) -> bool:
        """Whether this session's principal may do ``operation`` on the resource (always, when
        no authorizer is configured)."""
        authorizer = self.services.security.authorizer
        if authorizer is None:
            return True
        session = self.session
        return authorizer.authorize(session.principal, session.host, operation, resource_type, name)

    def authorize_cluster(self, operation: AclOperation) -> bool:
        """Whether this session's principal may do ``operation`` on the cluster."""
        return self.authorize(operation, ResourceType.CLUSTER, CLUSTER_NAME)

    def authorize_any(self, operation: AclOperation, resource_type: ResourceType) -> bool:
        """Whether this session's principal may do ``operation`` on at least one resource of
        ``resource_type`` (Kafka's authorizeByResourceType)."""
        authorizer = self.services.security.authorizer
        if authorizer is None:
            return True
        session = self.session
        return authorizer.authorize_any(session.principal, session.host, operation, resource_type)

    def authorized_operations(self, resource_type: ResourceType, name: str) -> int:
        """The KIP-430 bit field of what this session's principal may do on the resource."""
        authorizer = self.services.security.authorizer
        if authorizer is None:
            return ALL_OPERATIONS_BITS[resource_type]
        session = self.session
        return authorizer.authorized_operations(
            session.principal, session.host, resource_type, name
        )
