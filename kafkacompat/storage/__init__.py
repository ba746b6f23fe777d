"""Synchronous, log-structured storage: partition logs, topic metadata and internal state."""

from kafkacompat.storage.file_slice import FileSlice
from kafkacompat.storage.log_config import DEFAULT_LOG_CONFIG, LogConfig
from kafkacompat.storage.log_manager import LogManager
from kafkacompat.storage.metadata_store import TopicMetadata
from kafkacompat.storage.partition_log import PartitionLog
from kafkacompat.storage.results import (
    AppendResult,
    ReadResult,
    TimestampOffset,
)
from kafkacompat.storage.state_store import Namespace, StateStore

__all__ = [
    "DEFAULT_LOG_CONFIG",
    "AppendResult",
    "FileSlice",
    "LogConfig",
    "LogManager",
    "Namespace",
    "PartitionLog",
    "ReadResult",
    "StateStore",
    "TimestampOffset",
    "TopicMetadata",
]
