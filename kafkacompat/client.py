"""A small blocking admin client over the generated codecs: enough for the `topics`, `groups` and
`top` commands.

It negotiates versions with ApiVersions and sends each request at the highest version both
sides support. One connection, one request in flight, a timeout on every socket operation.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from kafkacompat import __version__
from kafkacompat.config import HostPort
from kafkacompat.errors import ErrorCode
from kafkacompat.protocol.exchange import decode_response, encode_request, highest_version
from kafkacompat.protocol.messages import (
    APIS,
    consumer_protocol_assignment,
)
from kafkacompat.protocol.messages.api_versions_request import ApiVersionsRequest
from kafkacompat.protocol.messages.create_partitions_request import (
    CreatePartitionsRequest,
    CreatePartitionsTopic,
)
from kafkacompat.protocol.messages.create_topics_request import (
    CreatableTopic,
    CreatableTopicConfig,
    CreateTopicsRequest,
)
from kafkacompat.protocol.messages.delete_groups_request import DeleteGroupsRequest
from kafkacompat.protocol.messages.delete_topics_request import (
    DeleteTopicsRequest,
    DeleteTopicState,
)
from kafkacompat.protocol.messages.describe_configs_request import (
    DescribeConfigsRequest,
    DescribeConfigsResource,
)
from kafkacompat.protocol.messages.describe_groups_request import DescribeGroupsRequest
from kafkacompat.protocol.messages.incremental_alter_configs_request import (
    AlterableConfig,
    AlterConfigsResource,
    IncrementalAlterConfigsRequest,
)
from kafkacompat.protocol.messages.list_groups_request import ListGroupsRequest
from kafkacompat.protocol.messages.list_offsets_request import (
    ListOffsetsPartition,
    ListOffsetsRequest,
    ListOffsetsTopic,
)
from kafkacompat.protocol.messages.metadata_request import MetadataRequest, MetadataRequestTopic
from kafkacompat.protocol.messages.offset_commit_request import (
    OffsetCommitRequest,
    OffsetCommitRequestPartition,
    OffsetCommitRequestTopic,
)
from kafkacompat.protocol.messages.offset_fetch_request import (
    OffsetFetchRequest,
    OffsetFetchRequestGroup,
)

LIST_OFFSETS = 2
METADATA = 3
OFFSET_COMMIT = 8
OFFSET_FETCH = 9
DESCRIBE_GROUPS = 15
LIST_GROUPS = 16
API_VERSIONS = 18
CREATE_TOPICS = 19
DELETE_TOPICS = 20
DESCRIBE_CONFIGS = 32
CREATE_PARTITIONS = 37
DELETE_GROUPS = 42
INCREMENTAL_ALTER_CONFIGS = 44
EARLIEST_TIMESTAMP = -2
LATEST_TIMESTAMP = -1
CONSUMER_PROTOCOL_TYPE = "consumer"
TOPIC_RESOURCE = 2
MAX_RESPONSE_BYTES = 100 * 1024 * 1024
CONFIG_SOURCES = {
    1: "DYNAMIC_TOPIC_CONFIG",
    2: "DYNAMIC_BROKER_CONFIG",
    3: "DYNAMIC_DEFAULT_BROKER_CONFIG",
    4: "STATIC_BROKER_CONFIG",
    5: "DEFAULT_CONFIG",
    6: "DYNAMIC_BROKER_LOGGER_CONFIG",
}


class AdminError(Exception):
    """The broker answered with an error code, or the exchange failed."""

    def __init__(self, code: int, message: str | None = None) -> None:
        try:
            name = ErrorCode(code).name
        except ValueError:
            name = f"error {code}"
        super().__init__(f"{name}: {message}" if message else name)
        self.code = code


@dataclass(frozen=True, slots=True)
class PartitionInfo:
    partition: int
    leader: int
    replicas: list[int]
    isr: list[int]


@dataclass(frozen=True, slots=True)
class TopicDescription:
    name: str
    topic_id: str
    partitions: list[PartitionInfo]
    #: name -> (value, source name)
    configs: dict[str, tuple[str | None, str]] = field(default_factory=dict)


#: (topic, partition)
TopicPartition = tuple[str, int]


@dataclass(frozen=True, slots=True)
class GroupListing:
    group_id: str
    protocol_type: str
    state: str
    group_type: str


@dataclass(frozen=True, slots=True)
class GroupMember:
    member_id: str
    group_instance_id: str | None
    client_id: str
    host: str
    assignment: list[TopicPartition]


@dataclass(frozen=True, slots=True)
class GroupDescription:
    group_id: str
    state: str
    protocol_type: str
    protocol: str
    members: list[GroupMember]


def decode_assignment(data: bytes) -> list[TopicPartition]:
    """The partitions in a consumer protocol assignment (a version, then the versioned body);
    none when it is empty or unreadable."""
    if len(data) < 2:
        return []
    version = min(max(int.from_bytes(data[:2], "big", signed=True), 0), 3)
    try:
        decoded, _ = consumer_protocol_assignment.DECODERS[version](memoryview(data)[2:], 0)
    except Exception:  # a member's assignment we cannot read shows no partitions
        return []
    return sorted((t.topic, p) for t in decoded.assigned_partitions for p in t.partitions)


def _by_topic(partitions: Iterable[TopicPartition]) -> dict[str, list[int]]:
    topics: dict[str, list[int]] = {}
    for topic, partition in sorted(partitions):
        topics.setdefault(topic, []).append(partition)
    return topics


def _check(code: int, message: str | None = None) -> None:
    if code != ErrorCode.NONE:
        raise AdminError(code, message)


class AdminClient:
    """Talks to one broker (the bootstrap server, which is every broker here)."""

    def __init__(self, bootstrap: str, *, timeout: float = 10.0, client_id: str = "kafkacompat"):
        address = HostPort.parse(bootstrap.split(",")[0].strip())
        self._sock = socket.create_connection((address.host, address.port), timeout=timeout)
        self._client_id = client_id
        self._correlation = 0
        self.versions: dict[int, tuple[int, int]] = {}
        try:
            self._negotiate()
        except BaseException:
            self._sock.close()
            raise

    def __enter__(self) -> AdminClient:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._sock.close()

    # -- wire ------------------------------------------------------------------------------------

    def _read_exactly(self, size: int) -> bytes:
        data = bytearray()
        while len(data) < size:
            chunk = self._sock.recv(min(size - len(data), 1 << 20))
            if not chunk:
                raise ConnectionError("the broker closed the connection")
            data += chunk
        return bytes(data)

    def _exchange(self, api_key: int, version: int, request: Any) -> Any:
        self._correlation += 1
        frame = encode_request(api_key, version, self._correlation, self._client_id, request)
        self._sock.sendall(frame)
        (size,) = struct.unpack(">i", self._read_exactly(4))
        if not 0 <= size <= MAX_RESPONSE_BYTES:
            raise ConnectionError(f"bad response size {size}")
        return decode_response(
            api_key, version, memoryview(self._read_exactly(size)), self._correlation
        )

    def _negotiate(self) -> None:
        module = APIS[API_VERSIONS][0]
        request = ApiVersionsRequest("kafkacompat-client", __version__.replace("+", "-"))
        response = self._exchange(API_VERSIONS, module.MAX_VERSION, request)
        if response.error_code == ErrorCode.UNSUPPORTED_VERSION:
            response = self._exchange(API_VERSIONS, 0, ApiVersionsRequest())
        _check(response.error_code)
        self.versions = {k.api_key: (k.min_version, k.max_version) for k in response.api_keys}

    def version_for(self, api_key: int) -> int:
        """The highest version of the API that both this client and the broker speak."""
        module = APIS[api_key][0]
        low, high = self.versions.get(api_key, (0, -1))
        version = min(highest_version(api_key), high)
        if version < max(low, int(module.MIN_VERSION)):
            raise AdminError(ErrorCode.UNSUPPORTED_VERSION, f"API {api_key} is not supported")
        return version

    def send(self, api_key: int, request: Any) -> tuple[int, Any]:
        """Send at the negotiated version; returns (version, response)."""
        version = self.version_for(api_key)
        return version, self._exchange(api_key, version, request)

    # -- topics ----------------------------------------------------------------------------------

    def _metadata(self, names: list[str] | None) -> Any:
        topics = None if names is None else [MetadataRequestTopic(name=n) for n in names]
        version, response = self.send(
            METADATA, MetadataRequest(topics=topics, allow_auto_topic_creation=False)
        )
        if version == 0 and names is None:
            raise AdminError(ErrorCode.UNSUPPORTED_VERSION, "Metadata v1+ is needed")
        return response

    def metadata(self, names: list[str] | None) -> Any:
        """The raw Metadata answer for ``names`` (None: every topic; [] none, brokers only)."""
        return self._metadata(names)

    def list_topics(self) -> list[str]:
        return sorted(t.name for t in self._metadata(None).topics if t.error_code == 0)

    def create_topic(
        self,
        name: str,
        partitions: int = -1,
        replication_factor: int = -1,
        configs: dict[str, str] | None = None,
        *,
        validate_only: bool = False,
    ) -> None:
        topic = CreatableTopic(
            name=name,
            num_partitions=partitions,
            replication_factor=replication_factor,
            configs=[CreatableTopicConfig(k, v) for k, v in (configs or {}).items()],
        )
        request = CreateTopicsRequest(topics=[topic], timeout_ms=30000, validate_only=validate_only)
        _, response = self.send(CREATE_TOPICS, request)
        for result in response.topics:
            _check(result.error_code, result.error_message)

    def delete_topic(self, name: str) -> None:
        request = DeleteTopicsRequest(
            topics=[DeleteTopicState(name=name)], topic_names=[name], timeout_ms=30000
        )
        _, response = self.send(DELETE_TOPICS, request)
        for result in response.responses:
            _check(result.error_code, result.error_message)

    def create_partitions(self, name: str, total: int) -> None:
        request = CreatePartitionsRequest(
            topics=[CreatePartitionsTopic(name, total, None)], timeout_ms=30000
        )
        _, response = self.send(CREATE_PARTITIONS, request)
        for result in response.results:
            _check(result.error_code, result.error_message)

    def topic_configs(self, name: str) -> dict[str, tuple[str | None, str]]:
        """Every config of the topic: name -> (value, source)."""
        request = DescribeConfigsRequest(
            resources=[DescribeConfigsResource(TOPIC_RESOURCE, name, None)]
        )
        version, response = self.send(DESCRIBE_CONFIGS, request)
        configs: dict[str, tuple[str | None, str]] = {}
        for result in response.results:
            _check(result.error_code, result.error_message)
            for entry in result.configs:
                if version == 0:
                    source = "DEFAULT_CONFIG" if entry.is_default else "DYNAMIC_TOPIC_CONFIG"
                else:
                    source = CONFIG_SOURCES.get(entry.config_source, "UNKNOWN")
                configs[entry.name] = (entry.value, source)
        return configs

    def alter_topic_configs(self, name: str, changes: dict[str, str | None]) -> None:
        """Set (value) or delete (None) topic config overrides."""
        ops = [AlterableConfig(k, 1 if v is None else 0, v) for k, v in changes.items()]
        request = IncrementalAlterConfigsRequest(
            resources=[AlterConfigsResource(TOPIC_RESOURCE, name, ops)]
        )
        _, response = self.send(INCREMENTAL_ALTER_CONFIGS, request)
        for result in response.responses:
            _check(result.error_code, result.error_message)

    def describe_topic(self, name: str, *, with_configs: bool = True) -> TopicDescription:
        (topic,) = self._metadata([name]).topics
        _check(topic.error_code, f"topic {name!r}")
        partitions = [
            PartitionInfo(p.partition_index, p.leader_id, list(p.replica_nodes), list(p.isr_nodes))
            for p in sorted(topic.partitions, key=lambda p: p.partition_index)
        ]
        configs = self.topic_configs(name) if with_configs else {}
        return TopicDescription(topic.name, str(topic.topic_id), partitions, configs)

    def partition_counts(self, names: list[str] | None = None) -> dict[str, int]:
        """Partitions per topic (every non-internal topic when ``names`` is None)."""
        counts = {}
        for topic in self._metadata(names).topics:
            if names is not None:
                _check(topic.error_code, f"topic {topic.name!r}")
            elif topic.error_code != 0 or topic.is_internal:
                continue
            counts[topic.name] = len(topic.partitions)
        return dict(sorted(counts.items()))

    def list_offsets(
        self, partitions: Iterable[TopicPartition], timestamp: int
    ) -> dict[TopicPartition, int]:
        """The offset per partition for a timestamp (-2 log start, -1 log end; -1 in the answer
        when no record is that recent); a partition the broker cannot answer for is left out."""
        topics = [
            ListOffsetsTopic(name, [ListOffsetsPartition(p, timestamp=timestamp) for p in parts])
            for name, parts in _by_topic(partitions).items()
        ]
        if not topics:
            return {}
        version, response = self.send(
            LIST_OFFSETS, ListOffsetsRequest(replica_id=-1, topics=topics)
        )
        if version == 0:
            raise AdminError(ErrorCode.UNSUPPORTED_VERSION, "ListOffsets v1+ is needed")
        offsets = {}
        for topic in response.topics:
            for p in topic.partitions:
                if p.error_code == ErrorCode.NONE:
                    offsets[topic.name, p.partition_index] = p.offset
        return offsets

    def list_groups(
        self, states: Iterable[str] = (), types: Iterable[str] = ()
    ) -> list[GroupListing]:
        states, types = [s.lower() for s in states], [t.lower() for t in types]
        request = ListGroupsRequest(states_filter=states, types_filter=types)
        version, response = self.send(LIST_GROUPS, request)
        _check(response.error_code)
        if states and version < 4:
            raise AdminError(ErrorCode.UNSUPPORTED_VERSION, "ListGroups v4+ is needed for states")
        listed = [
            GroupListing(g.group_id, g.protocol_type, g.group_state, g.group_type or "classic")
            for g in response.groups
        ]
        listed = [g for g in listed if not types or g.group_type.lower() in types]
        return sorted(listed, key=lambda g: g.group_id)

    def describe_group(self, group_id: str) -> GroupDescription:
        """The group (state "Dead" when it does not exist), assignments decoded."""
        _, response = self.send(DESCRIBE_GROUPS, DescribeGroupsRequest(groups=[group_id]))
        (group,) = response.groups
        _check(group.error_code, f"group {group_id!r}")
        consumer = group.protocol_type == CONSUMER_PROTOCOL_TYPE
        members = [
            GroupMember(
                m.member_id,
                m.group_instance_id,
                m.client_id,
                m.client_host,
                decode_assignment(m.member_assignment) if consumer else [],
            )
            for m in group.members
        ]
        return GroupDescription(
            group.group_id, group.group_state, group.protocol_type, group.protocol_data, members
        )

    def committed_offsets(self, group_id: str) -> dict[TopicPartition, int]:
        """Every offset the group has committed."""
        version = self.version_for(OFFSET_FETCH)
        if version < 2:
            raise AdminError(ErrorCode.UNSUPPORTED_VERSION, "OffsetFetch v2+ is needed")
        if version >= 8:
            request = OffsetFetchRequest(groups=[OffsetFetchRequestGroup(group_id, topics=None)])
        else:
            request = OffsetFetchRequest(group_id=group_id, topics=None)
        response = self._exchange(OFFSET_FETCH, version, request)
        if version >= 8:
            (group,) = response.groups
            error, topics = group.error_code, group.topics
        else:
            error, topics = response.error_code, response.topics
        _check(error, f"group {group_id!r}")
        offsets = {}
        for topic in topics:
            for p in topic.partitions:
                _check(p.error_code, f"{topic.name}-{p.partition_index}")
                if p.committed_offset >= 0:
                    offsets[topic.name, p.partition_index] = p.committed_offset
        return offsets

    def commit_offsets(self, group_id: str, offsets: Mapping[TopicPartition, int]) -> None:
        """Commit as an admin does: generation -1 and no member id (the group must be empty)."""
        topics = [
            OffsetCommitRequestTopic(
                name,
                [
                    OffsetCommitRequestPartition(p, offsets[name, p], committed_metadata="")
                    for p in parts
                ],
            )
            for name, parts in _by_topic(offsets).items()
        ]
        request = OffsetCommitRequest(group_id, -1, "", topics=topics)
        _, response = self.send(OFFSET_COMMIT, request)
        for topic in response.topics:
            for p in topic.partitions:
                _check(p.error_code, f"{topic.name}-{p.partition_index}")

    def delete_group(self, group_id: str) -> None:
        _, response = self.send(DELETE_GROUPS, DeleteGroupsRequest(groups_names=[group_id]))
        for result in response.results:
            _check(result.error_code, f"group {result.group_id!r}")
