"""The scenarios of the matrix: what users do with a Kafka client, one name each.

Every runner (one per client) implements the scenarios its client can express; a scenario it
cannot express is reported as skipped. Each run gets fresh topic and group names.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    timeout: float = 60.0


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("metadata", "cluster metadata: one broker, a topic's partitions and their leader"),
    Scenario("admin_topics", "admin: create a 3-partition topic, see it listed, delete it"),
    Scenario("keyed_headers", "produce keyed records with headers; consume them back in order"),
    Scenario("codec_gzip", "produce and consume gzip-compressed batches"),
    Scenario("codec_snappy", "produce and consume snappy-compressed batches"),
    Scenario("codec_lz4", "produce and consume lz4-compressed batches"),
    Scenario("codec_zstd", "produce and consume zstd-compressed batches"),
    Scenario("large_message", "produce and consume a ~900 KiB record"),
    Scenario("tombstone", "produce and consume a null value (a tombstone) for a key"),
    Scenario(
        "group_rebalance",
        "consumer group: a second member joins (partitions split), then leaves (hand back)",
        timeout=90.0,
    ),
    Scenario(
        "group_resume",
        "consumer group: commit, close, a new member resumes from the committed offset",
        timeout=90.0,
    ),
    Scenario(
        "group_consumer_protocol",
        "consumer group on the KIP-848 protocol (group.protocol=consumer, ConsumerGroupHeartbeat)",
        timeout=45.0,
    ),
    Scenario("offsets_by_time", "look up offsets by timestamp (ListOffsets with a time)"),
    Scenario("idempotent_producer", "idempotent producer: acks=all, in order, no duplicates"),
    Scenario(
        "transactional_producer",
        "transactions: commit one, abort one; a read_committed consumer sees only the commit",
    ),
    Scenario("describe_configs", "describe a topic's configs (a value set at creation)"),
)

BY_NAME = {scenario.name: scenario for scenario in SCENARIOS}

#: Used by the codec scenarios: a record set that compresses well and spans several batches.
CODECS = ("gzip", "snappy", "lz4", "zstd")
#: The large-message scenario's value size: under the broker's default message.max.bytes.
LARGE_VALUE_BYTES = 900 * 1024
