"""Topic configs: each one's type, meaning and the broker setting that supplies its default.

The one table of topic configs: DescribeConfigs lists it, and the broker's settings become the
topic defaults through it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum

from kafkacompat.config import BROKER_DEFAULTS, Config
from kafkacompat.storage.log_config import LogConfig

__all__ = ["TOPIC_CONFIGS", "ConfigDef", "ConfigType", "topic_defaults"]


class ConfigType(IntEnum):
    UNKNOWN = 0
    BOOLEAN = 1
    STRING = 2
    INT = 3
    SHORT = 4
    LONG = 5
    DOUBLE = 6
    LIST = 7
    CLASS = 8
    PASSWORD = 9


@dataclass(frozen=True, slots=True)
class ConfigDef:
    type: ConfigType
    doc: str
    #: The broker setting that supplies the default of a topic config.
    broker_synonym: str | None = None
    #: For broker settings: whether Kafka lets it change while running.
    dynamic: bool = False


B, S, INT, L, D, LIST = (
    ConfigType.BOOLEAN,
    ConfigType.STRING,
    ConfigType.INT,
    ConfigType.LONG,
    ConfigType.DOUBLE,
    ConfigType.LIST,
)

TOPIC_CONFIGS: Mapping[str, ConfigDef] = {
    "cleanup.policy": ConfigDef(
        LIST, "How old segments are discarded: delete, compact, or both.", "log.cleanup.policy"
    ),
    "compression.type": ConfigDef(
        S,
        "Codec the log is stored with; producer keeps what the producer sent.",
        "compression.type",
    ),
    "delete.retention.ms": ConfigDef(
        L,
        "How long tombstones stay readable in a compacted log.",
        "log.cleaner.delete.retention.ms",
    ),
    "file.delete.delay.ms": ConfigDef(
        L, "Wait before a deleted segment's files are removed.", "log.segment.delete.delay.ms"
    ),
    "flush.messages": ConfigDef(
        L, "Force an fsync after this many messages.", "log.flush.interval.messages"
    ),
    "flush.ms": ConfigDef(L, "Force an fsync after this much time.", "log.flush.interval.ms"),
    "index.interval.bytes": ConfigDef(
        INT, "Bytes of log between two offset index entries.", "log.index.interval.bytes"
    ),
    "max.compaction.lag.ms": ConfigDef(
        L, "Longest a message stays ineligible for compaction.", "log.cleaner.max.compaction.lag.ms"
    ),
    "max.message.bytes": ConfigDef(
        INT, "Largest record batch the topic accepts.", "message.max.bytes"
    ),
    "message.downconversion.enable": ConfigDef(
        B, "Whether fetches by old clients are down-converted.", "log.message.downconversion.enable"
    ),
    "message.timestamp.after.max.ms": ConfigDef(
        L,
        "How far in the future a record timestamp may be.",
        "log.message.timestamp.after.max.ms",
    ),
    "message.timestamp.before.max.ms": ConfigDef(
        L,
        "How far in the past a record timestamp may be.",
        "log.message.timestamp.before.max.ms",
    ),
    "message.timestamp.type": ConfigDef(
        S, "CreateTime or LogAppendTime.", "log.message.timestamp.type"
    ),
    "min.cleanable.dirty.ratio": ConfigDef(
        D, "Dirty share of the log that triggers compaction.", "log.cleaner.min.cleanable.ratio"
    ),
    "min.compaction.lag.ms": ConfigDef(
        L, "Shortest a message stays uncompacted.", "log.cleaner.min.compaction.lag.ms"
    ),
    "min.insync.replicas": ConfigDef(
        INT, "Replicas that must acknowledge an acks=all write.", "min.insync.replicas"
    ),
    "preallocate": ConfigDef(B, "Preallocate segment files.", "log.preallocate"),
    "retention.bytes": ConfigDef(
        L,
        "Size a partition may reach before old segments go; -1 is unlimited.",
        "log.retention.bytes",
    ),
    "retention.ms": ConfigDef(
        L, "Age after which old segments go; -1 is forever.", "log.retention.ms"
    ),
    "segment.bytes": ConfigDef(INT, "Size at which a segment is rolled.", "log.segment.bytes"),
    "segment.index.bytes": ConfigDef(
        INT, "Size of each segment's offset index.", "log.index.size.max.bytes"
    ),
    "segment.jitter.ms": ConfigDef(
        L, "Random jitter subtracted from segment.ms.", "log.roll.jitter.ms"
    ),
    "segment.ms": ConfigDef(L, "Age at which a segment is rolled.", "log.roll.ms"),
    "unclean.leader.election.enable": ConfigDef(
        B,
        "Whether an out-of-sync replica may become leader.",
        "unclean.leader.election.enable",
    ),
}


def topic_defaults(config: Config) -> LogConfig:
    """Topic config defaults as this broker's settings make them."""
    overrides: dict[str, str | None] = {}
    for topic_name, definition in TOPIC_CONFIGS.items():
        broker_name = definition.broker_synonym
        if broker_name is not None and broker_name in BROKER_DEFAULTS:
            value = config.get(broker_name)
            overrides[topic_name] = str(value).lower() if isinstance(value, bool) else str(value)
    return LogConfig.from_overrides(overrides)
