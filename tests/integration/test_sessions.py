"""One session per connection, created when it is accepted and handed to each of its requests."""

from __future__ import annotations

from typing import Any

import pytest

from kafkacompat.broker.context import RequestContext
from kafkacompat.protocol.messages.api_versions_request import API_KEY as API_VERSIONS
from kafkacompat.protocol.messages.api_versions_request import ApiVersionsRequest
from kafkacompat.protocol.messages.metadata_request import API_KEY as METADATA
from kafkacompat.protocol.messages.metadata_request import MetadataRequest
from kafkacompat.testing import BrokerThread
from tests.integration.raw import RawClient

pytestmark = pytest.mark.integration


def test_each_connection_has_one_session_for_all_its_requests(broker: BrokerThread) -> None:
    seen: list[tuple[int, str, str | None, str | None]] = []

    def observe(context: RequestContext, request: Any, response: Any, elapsed: float) -> None:
        session = context.session
        seen.append(
            (session.connection_id, session.peer, session.client_id, session.client_software_name)
        )

    broker.running.broker.pipeline.observe_hooks.append(observe)
    with RawClient(broker.port) as first, RawClient(broker.port) as second:
        first.call(API_VERSIONS, 3, ApiVersionsRequest("kafkacompat-test", "1.0"))
        first.call(METADATA, 9, MetadataRequest(topics=[]))
        second.call(METADATA, 9, MetadataRequest(topics=[]))
        first.call(METADATA, 9, MetadataRequest(topics=[]))
        peers = [":".join(map(str, c.sock.getsockname()[:2])) for c in (first, second)]
    ids = [s[0] for s in seen]
    assert ids[0] == ids[1] == ids[3] != ids[2]
    assert [s[1] for s in seen] == [peers[0], peers[0], peers[1], peers[0]]
    assert [s[2] for s in seen] == ["raw-test"] * 4
    # The client software a connection named in ApiVersions stays with its session.
    assert [s[3] for s in seen] == [
        "kafkacompat-test",
        "kafkacompat-test",
        None,
        "kafkacompat-test",
    ]
