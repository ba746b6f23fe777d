"""What a request uses of its client's quotas, read off the request and its response.

Produce counts its request bytes, a consumer's Fetch its response bytes (record data may be a
`RecordSource` not yet read: its ``size`` is counted), everything else its handler time. Some
requests are exempt, as in Kafka: inter-broker ones, follower fetches, SASL authentication, and
the request-time quota of acks=0 produce.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "FETCH",
    "PRODUCE",
    "REQUEST_QUOTA_EXEMPT",
    "empty_throttled_fetch",
    "fetch_response_bytes",
    "is_follower_fetch",
]

PRODUCE = 0
FETCH = 1

#: APIs never counted against the request-time quota: the cluster actions of brokers and
#: controllers (LeaderAndIsr ... AssignReplicasToDirs) and SASL authentication, which Kafka's
#: authenticator answers outside the request handlers.
REQUEST_QUOTA_EXEMPT = frozenset(
    {4, 5, 6, 7, 17, 27, 36, 52, 53, 54, 56, 58, 59, 62, 63, 67, 70, 73}
)

#: Bytes of a fetch response outside its record data: the fixed response fields, per topic
#: (beside its name) and per partition. Kafka counts the whole encoded response; these make the
#: count close to it whatever the version.
_RESPONSE_OVERHEAD = 20
_TOPIC_OVERHEAD = 8
_PARTITION_OVERHEAD = 56


def _records_size(records: object) -> int:
    if records is None:
        return 0
    if isinstance(records, bytes | bytearray | memoryview):
        return len(records)
    size = getattr(records, "size", 0)
    return size if isinstance(size, int) else 0


def fetch_response_bytes(response: Any) -> int:
    """About how many bytes the fetch response takes on the wire, records included."""
    total = _RESPONSE_OVERHEAD
    for topic in response.responses:
        total += _TOPIC_OVERHEAD + max(len(topic.topic), 16)
        for partition in topic.partitions:
            total += _PARTITION_OVERHEAD + _records_size(partition.records)
            aborted = partition.aborted_transactions
            if aborted:
                total += 16 * len(aborted)
    return total


def is_follower_fetch(request: Any) -> bool:
    """Whether a Fetch comes from a replica (exempt from client quotas)."""
    return bool(request.replica_id >= 0 or request.replica_state.replica_id >= 0)


def empty_throttled_fetch(request: Any, response: Any) -> None:
    """Turn a fetch response into the empty one Kafka sends a throttled consumer: no partitions;
    a full fetch also gets no session (the client fetches the same offsets again later)."""
    response.responses = []
    if request.session_epoch <= 0:
        response.session_id = 0
