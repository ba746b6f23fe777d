"""Client quotas: durable definitions, byte-rate and request-rate enforcement (STUB)."""

from __future__ import annotations

from typing import Any

from kafkacompat.config import Config
from kafkacompat.storage.state_store import Namespace

__all__ = ["QuotaManager"]


class QuotaManager:
    def __init__(self, config: Config, namespace: Namespace) -> None:
        self.config = config
        self.namespace = namespace
        #: Whether any quota is defined: when False the pipeline skips `throttle_ms`.
        self.active = False

    def throttle_ms(
        self,
        principal: str,
        client_id: str | None,
        api_key: int,
        request: Any,
        response: Any,
        request_bytes: int,
        elapsed: float,
    ) -> int:
        """Record one request's use and return how long its connection is to be throttled."""
        return 0
