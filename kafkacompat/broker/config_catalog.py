"""What DescribeConfigs shows: every topic and broker config with its value, source and synonyms.

A topic config's value comes, in order, from the topic's own override, a broker setting given at
start-up, or the default; each level that has a value is a synonym, listed first to last.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum

from kafkacompat.cluster.topic_configs import TOPIC_CONFIGS, ConfigDef, ConfigType
from kafkacompat.config import BROKER_DEFAULTS, Config
from kafkacompat.storage.log_config import DEFAULT_LOG_CONFIG, LogConfig
from kafkacompat.storage.log_dirs import parse_log_dirs


class ResourceType(IntEnum):
    """Kafka's ConfigResource types."""

    UNKNOWN = 0
    TOPIC = 2
    BROKER = 4
    BROKER_LOGGER = 8
    CLIENT_METRICS = 16
    GROUP = 32


class ConfigSource(IntEnum):
    UNKNOWN = 0
    DYNAMIC_TOPIC_CONFIG = 1
    DYNAMIC_BROKER_CONFIG = 2
    DYNAMIC_DEFAULT_BROKER_CONFIG = 3
    STATIC_BROKER_CONFIG = 4
    DEFAULT_CONFIG = 5
    DYNAMIC_BROKER_LOGGER_CONFIG = 6


@dataclass(frozen=True, slots=True)
class Synonym:
    name: str
    value: str | None
    source: ConfigSource


@dataclass(frozen=True, slots=True)
class ConfigEntry:
    name: str
    value: str | None
    source: ConfigSource
    type: ConfigType
    documentation: str | None
    read_only: bool = False
    sensitive: bool = False
    synonyms: list[Synonym] = field(default_factory=list)


B, S, INT, L, LIST = (
    ConfigType.BOOLEAN,
    ConfigType.STRING,
    ConfigType.INT,
    ConfigType.LONG,
    ConfigType.LIST,
)

#: Broker settings: type, description and whether Kafka can change them while running.
BROKER_CONFIGS: Mapping[str, ConfigDef] = {
    "socket.request.max.bytes": ConfigDef(INT, "Largest request frame accepted."),
    "auto.create.topics.enable": ConfigDef(B, "Create unknown topics on first use."),
    "num.partitions": ConfigDef(INT, "Partitions of a topic created without a count."),
    "default.replication.factor": ConfigDef(
        INT, "Replication factor of topics created without one."
    ),
    "replica.lag.time.max.ms": ConfigDef(L, "A follower this far behind leaves the ISR."),
    "replica.fetch.wait.max.ms": ConfigDef(INT, "Longest wait of a follower's fetch."),
    "replica.fetch.min.bytes": ConfigDef(INT, "Bytes a follower's fetch waits for."),
    "replica.fetch.max.bytes": ConfigDef(INT, "Bytes a follower fetches per partition."),
    "replica.fetch.response.max.bytes": ConfigDef(INT, "Bytes a follower fetches at once."),
    "replica.fetch.backoff.ms": ConfigDef(INT, "Pause after a failed follower fetch."),
    "num.replica.fetchers": ConfigDef(INT, "Fetcher tasks per leader broker."),
    "replica.high.watermark.checkpoint.interval.ms": ConfigDef(
        L, "How often high watermarks are written to disk."
    ),
    "unclean.leader.election.enable": ConfigDef(
        B, "Default unclean.leader.election.enable of topics.", dynamic=True
    ),
    "auto.leader.rebalance.enable": ConfigDef(
        B, "Move leadership back to preferred replicas when out of balance."
    ),
    "leader.imbalance.check.interval.seconds": ConfigDef(
        L, "How often the controller checks the leadership balance."
    ),
    "leader.imbalance.per.broker.percentage": ConfigDef(
        INT, "Share of a broker's partitions led elsewhere that triggers a rebalance."
    ),
    "controlled.shutdown.enable": ConfigDef(B, "Hand leadership away before stopping."),
    "delete.topic.enable": ConfigDef(B, "Whether topics may be deleted."),
    "message.max.bytes": ConfigDef(INT, "Default max.message.bytes of topics.", dynamic=True),
    "log.retention.ms": ConfigDef(L, "Default retention.ms of topics.", dynamic=True),
    "log.retention.bytes": ConfigDef(L, "Default retention.bytes of topics.", dynamic=True),
    "log.retention.check.interval.ms": ConfigDef(L, "How often retention runs."),
    "log.segment.bytes": ConfigDef(INT, "Default segment.bytes of topics.", dynamic=True),
    "log.roll.ms": ConfigDef(L, "Default segment.ms of topics.", dynamic=True),
    "log.index.interval.bytes": ConfigDef(
        INT, "Default index.interval.bytes of topics.", dynamic=True
    ),
    "log.index.size.max.bytes": ConfigDef(
        INT, "Default segment.index.bytes of topics.", dynamic=True
    ),
    "log.flush.interval.messages": ConfigDef(L, "Default flush.messages of topics.", dynamic=True),
    "log.flush.interval.ms": ConfigDef(L, "Default flush.ms of topics.", dynamic=True),
    "log.message.timestamp.type": ConfigDef(
        S, "Default message.timestamp.type of topics.", dynamic=True
    ),
    "log.cleanup.policy": ConfigDef(LIST, "Default cleanup.policy of topics.", dynamic=True),
    "compression.type": ConfigDef(S, "Default compression.type of topics.", dynamic=True),
    "min.insync.replicas": ConfigDef(INT, "Default min.insync.replicas of topics.", dynamic=True),
    "group.initial.rebalance.delay.ms": ConfigDef(
        INT, "Wait before a new group's first rebalance."
    ),
    "group.min.session.timeout.ms": ConfigDef(INT, "Shortest session timeout a member may ask."),
    "group.max.session.timeout.ms": ConfigDef(INT, "Longest session timeout a member may ask."),
    "offsets.retention.minutes": ConfigDef(INT, "How long committed offsets of empty groups stay."),
    "offsets.topic.num.partitions": ConfigDef(INT, "Partitions of __consumer_offsets."),
    "offsets.topic.replication.factor": ConfigDef(
        INT, "Replicas of __consumer_offsets (at most the live brokers)."
    ),
    "transaction.state.log.num.partitions": ConfigDef(INT, "Partitions of __transaction_state."),
    "transaction.state.log.replication.factor": ConfigDef(
        INT, "Replicas of __transaction_state (at most the live brokers)."
    ),
    "transaction.max.timeout.ms": ConfigDef(INT, "Longest transaction timeout a producer may ask."),
    "transactional.id.expiration.ms": ConfigDef(
        INT, "Transactional ids idle this long are forgotten."
    ),
    "transaction.remove.expired.transaction.cleanup.interval.ms": ConfigDef(
        INT, "How often idle transactional ids are looked for."
    ),
    "connections.max.idle.ms": ConfigDef(L, "Idle connections are closed after this long."),
    "connections.send.timeout.ms": ConfigDef(
        L, "A client that reads none of its response this long is disconnected."
    ),
    "log.open.files.max": ConfigDef(
        INT, "Most segment files held open at once (at most a quarter of the process limit)."
    ),
    "max.broker.partitions": ConfigDef(INT, "Most partitions this broker hosts."),
    "log.cleaner.enable": ConfigDef(B, "Whether compacted topics are cleaned."),
    "log.cleaner.threads": ConfigDef(INT, "Partitions cleaned at the same time.", dynamic=True),
    "log.cleaner.backoff.ms": ConfigDef(L, "Pause between looks for partitions to clean."),
    "log.cleaner.dedupe.buffer.size": ConfigDef(
        L, "Memory for the key map of all cleaner threads.", dynamic=True
    ),
    "log.cleaner.delete.retention.ms": ConfigDef(
        L, "Default delete.retention.ms of topics.", dynamic=True
    ),
    "log.cleaner.min.compaction.lag.ms": ConfigDef(
        L, "Default min.compaction.lag.ms of topics.", dynamic=True
    ),
    "log.cleaner.max.compaction.lag.ms": ConfigDef(
        L, "Default max.compaction.lag.ms of topics.", dynamic=True
    ),
    "log.cleaner.min.cleanable.ratio": ConfigDef(
        ConfigType.DOUBLE, "Default min.cleanable.dirty.ratio of topics.", dynamic=True
    ),
    "kafkacompat.emulate.kafka.version": ConfigDef(
        S, "Serve only the API versions of this Kafka release (empty: all)."
    ),
    "kafkacompat.api.max.versions": ConfigDef(LIST, "Highest version served per API (API=N)."),
}


def _text(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _type_of(value: object) -> ConfigType:
    if isinstance(value, bool):
        return ConfigType.BOOLEAN
    if isinstance(value, int):
        return ConfigType.INT if -(2**31) <= value < 2**31 else ConfigType.LONG
    return ConfigType.STRING


def topic_config_entries(
    config: Config, overrides: Mapping[str, str], effective: LogConfig
) -> list[ConfigEntry]:
    """Every topic config of a topic with these overrides, in name order."""
    settings = config.settings
    values = effective.to_kafka()
    builtin = DEFAULT_LOG_CONFIG.to_kafka()
    entries = []
    for name in sorted(values):
        definition = TOPIC_CONFIGS.get(name, ConfigDef(ConfigType.STRING, ""))
        synonyms = []
        if name in overrides:
            synonyms.append(Synonym(name, values[name], ConfigSource.DYNAMIC_TOPIC_CONFIG))
        broker_name = definition.broker_synonym
        if broker_name is not None:
            if broker_name in settings:
                value = _text(settings[broker_name])
                synonyms.append(Synonym(broker_name, value, ConfigSource.STATIC_BROKER_CONFIG))
            default = BROKER_DEFAULTS.get(broker_name, builtin[name])
            synonyms.append(Synonym(broker_name, _text(default), ConfigSource.DEFAULT_CONFIG))
        source = synonyms[0].source if synonyms else ConfigSource.DEFAULT_CONFIG
        entries.append(
            ConfigEntry(
                name,
                values[name],
                source,
                definition.type,
                definition.doc or None,
                synonyms=synonyms,
            )
        )
    return entries


def broker_config_entries(config: Config, node_id: int, advertised: str) -> list[ConfigEntry]:
    """The broker's settings: identity and listeners first, then every tunable setting."""
    static = ConfigSource.STATIC_BROKER_CONFIG
    identity = {
        "node.id": (str(node_id), ConfigType.INT, "This broker's id."),
        "broker.id": (str(node_id), ConfigType.INT, "This broker's id."),
        "log.dirs": (_log_dirs_text(config), LIST, "Where the logs are kept."),
        "listeners": (f"PLAINTEXT://{config.listen}", LIST, "Addresses listened on."),
        "advertised.listeners": (
            f"PLAINTEXT://{advertised}",
            LIST,
            "Addresses given to clients.",
        ),
    }
    entries = [
        ConfigEntry(
            name, value, static, kind, doc, read_only=True, synonyms=[Synonym(name, value, static)]
        )
        for name, (value, kind, doc) in identity.items()
    ]
    for name in sorted(BROKER_DEFAULTS):
        if name == "log.dirs":  # shown above, as the directories in use
            continue
        default = BROKER_DEFAULTS[name]
        definition = BROKER_CONFIGS.get(name, ConfigDef(_type_of(default), ""))
        synonyms = []
        if name in config.settings:
            synonyms.append(Synonym(name, _text(config.settings[name]), static))
        synonyms.append(Synonym(name, _text(default), ConfigSource.DEFAULT_CONFIG))
        entries.append(
            ConfigEntry(
                name,
                synonyms[0].value,
                synonyms[0].source,
                definition.type,
                definition.doc or None,
                read_only=not definition.dynamic,
                synonyms=synonyms,
            )
        )
    return entries


def _log_dirs_text(config: Config) -> str:
    """The log directories in use, absolute (``log.dirs``, or else the data directory)."""
    dirs = parse_log_dirs(config.get_str("log.dirs")) or [config.data_dir]
    return ",".join(str(d.resolve()) for d in dirs)


def logger_entries() -> list[ConfigEntry]:
    """Logger levels, as Kafka shows its log4j loggers for a BROKER_LOGGER resource."""
    source = ConfigSource.DYNAMIC_BROKER_LOGGER_CONFIG
    root = logging.getLogger()
    levels = {"root": logging.getLevelName(root.level)}
    for name in sorted(logging.root.manager.loggerDict):
        if name.startswith("kafkacompat"):
            levels[name] = logging.getLevelName(logging.getLogger(name).getEffectiveLevel())
    return [ConfigEntry(n, v, source, ConfigType.STRING, None) for n, v in levels.items()]
