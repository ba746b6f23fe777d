"""Topic-level log configuration with Kafka's names, defaults and validation rules."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from kafkacompat.errors import ErrorCode, KafkaError

__all__ = ["DEFAULT_LOG_CONFIG", "LONG_MAX", "LogConfig", "validate_topic_configs"]

LONG_MAX = 9223372036854775807
_COMPRESSION = {"producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"}
_TIMESTAMP_TYPES = {"CreateTime", "LogAppendTime"}


@dataclass(frozen=True, slots=True)
class LogConfig:
    """Effective configuration of one topic's logs; field ``x_y`` is Kafka's ``x.y``."""

    cleanup_policy: str = "delete"
    compression_type: str = "producer"
    delete_retention_ms: int = 86400000
    file_delete_delay_ms: int = 60000
    flush_messages: int = LONG_MAX
    flush_ms: int = LONG_MAX
    index_interval_bytes: int = 4096
    max_compaction_lag_ms: int = LONG_MAX
    max_message_bytes: int = 1048588
    message_timestamp_type: str = "CreateTime"
    message_timestamp_before_max_ms: int = LONG_MAX
    message_timestamp_after_max_ms: int = LONG_MAX
    message_downconversion_enable: bool = True
    min_cleanable_dirty_ratio: float = 0.5
    min_compaction_lag_ms: int = 0
    min_insync_replicas: int = 1
    preallocate: bool = False
    retention_bytes: int = -1
    retention_ms: int = 604800000
    segment_bytes: int = 1073741824
    segment_index_bytes: int = 10485760
    segment_jitter_ms: int = 0
    segment_ms: int = 604800000
    unclean_leader_election_enable: bool = False

    @classmethod
    def from_overrides(
        cls, overrides: Mapping[str, str | None], base: LogConfig | None = None
    ) -> LogConfig:
        """Apply Kafka-named string ``overrides`` over ``base`` (Kafka's defaults if omitted).

        A ``None`` value leaves the base value. Raises INVALID_CONFIG for unknown names or bad
        values.
        """
        changes: dict[str, Any] = {}
        for name, raw in overrides.items():
            if raw is None:
                continue
            spec = _SPECS.get(name)
            if spec is None:
                raise KafkaError(ErrorCode.INVALID_CONFIG, f"unknown topic config {name!r}")
            attr, parse = spec
            try:
                changes[attr] = parse(raw)
            except (ValueError, TypeError) as exc:
                raise KafkaError(
                    ErrorCode.INVALID_CONFIG, f"invalid value {raw!r} for {name}: {exc}"
                ) from None
        return dataclasses.replace(base or DEFAULT_LOG_CONFIG, **changes)

    def to_kafka(self) -> dict[str, str]:
        """All settings as Kafka names and string values (as DescribeConfigs shows them)."""
        out: dict[str, str] = {}
        for name, (attr, _) in _SPECS.items():
            value = getattr(self, attr)
            out[name] = str(value).lower() if isinstance(value, bool) else str(value)
        return out

    @property
    def delete_enabled(self) -> bool:
        """True when ``cleanup.policy`` includes ``delete`` (time and size retention apply)."""
        return "delete" in self.cleanup_policy.split(",")

    @property
    def compact_enabled(self) -> bool:
        """True when ``cleanup.policy`` includes ``compact`` (the log cleaner applies)."""
        return "compact" in self.cleanup_policy.split(",")

    @property
    def log_append_time(self) -> bool:
        return self.message_timestamp_type == "LogAppendTime"


def _long(minimum: int | None = None, maximum: int = LONG_MAX) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        value = int(str(raw).strip())
        if (minimum is not None and value < minimum) or value > maximum:
            raise ValueError(f"must be in [{minimum}, {maximum}]")
        return value

    return parse


def _int(minimum: int) -> Callable[[str], int]:
    return _long(minimum, 2147483647)


def _bool(raw: str) -> bool:
    text = str(raw).strip().lower()
    if text not in ("true", "false"):
        raise ValueError("must be true or false")
    return text == "true"


def _ratio(raw: str) -> float:
    value = float(raw)
    if not 0.0 <= value <= 1.0:
        raise ValueError("must be in [0, 1]")
    return value


def _one_of(allowed: set[str]) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if raw not in allowed:
            raise ValueError(f"must be one of {sorted(allowed)}")
        return raw

    return parse


def _policy(raw: str) -> str:
    parts = [p.strip() for p in str(raw).split(",") if p.strip()]
    if not parts or any(p not in ("delete", "compact") for p in parts):
        raise ValueError("must be a list of delete and compact")
    return ",".join(parts)


_SPECS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "cleanup.policy": ("cleanup_policy", _policy),
    "compression.type": ("compression_type", _one_of(_COMPRESSION)),
    "delete.retention.ms": ("delete_retention_ms", _long(0)),
    "file.delete.delay.ms": ("file_delete_delay_ms", _long(0)),
    "flush.messages": ("flush_messages", _long(1)),
    "flush.ms": ("flush_ms", _long(0)),
    "index.interval.bytes": ("index_interval_bytes", _int(0)),
    "max.compaction.lag.ms": ("max_compaction_lag_ms", _long(1)),
    "max.message.bytes": ("max_message_bytes", _int(0)),
    "message.timestamp.type": ("message_timestamp_type", _one_of(_TIMESTAMP_TYPES)),
    "message.timestamp.before.max.ms": ("message_timestamp_before_max_ms", _long(0)),
    "message.timestamp.after.max.ms": ("message_timestamp_after_max_ms", _long(0)),
    "message.downconversion.enable": ("message_downconversion_enable", _bool),
    "min.cleanable.dirty.ratio": ("min_cleanable_dirty_ratio", _ratio),
    "min.compaction.lag.ms": ("min_compaction_lag_ms", _long(0)),
    "min.insync.replicas": ("min_insync_replicas", _int(1)),
    "preallocate": ("preallocate", _bool),
    "retention.bytes": ("retention_bytes", _long()),
    "retention.ms": ("retention_ms", _long(-1)),
    "segment.bytes": ("segment_bytes", _int(14)),
    "segment.index.bytes": ("segment_index_bytes", _int(12)),
    "segment.jitter.ms": ("segment_jitter_ms", _long(0)),
    "segment.ms": ("segment_ms", _long(1)),
    "unclean.leader.election.enable": ("unclean_leader_election_enable", _bool),
}

DEFAULT_LOG_CONFIG = LogConfig()


def validate_topic_configs(configs: Mapping[str, str | None]) -> dict[str, str]:
    """Check Kafka-named overrides; return them without ``None`` values or raise INVALID_CONFIG."""
    LogConfig.from_overrides(configs)
    return {k: str(v) for k, v in configs.items() if v is not None}
