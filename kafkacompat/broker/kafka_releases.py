"""Facts: the API versions each Apache Kafka release serves, by API key.

For 0.11 to 3.9 a broker in ZooKeeper mode (the mode those releases ran by default); for 4.0 a
KRaft broker, the only mode it has. The ranges are those a broker accepts; where a release
advertises in ApiVersions a lower minimum than it accepts, `ADVERTISED_MIN` says so. APIs only
brokers and controllers send each other (LeaderAndIsr, StopReplica, UpdateMetadata,
ControlledShutdown, AlterPartition, Envelope, AllocateProducerIds) are left out: a single broker
has no peer to serve them to, and protocol_specs/ holds no schema for them. KIP-848's
ConsumerGroupHeartbeat and ConsumerGroupDescribe (68, 69) were early access in 3.7-3.9, served
only when opted in: they are listed from 4.0, where they are served by default.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

__all__ = ["ADVERTISED_MIN", "RELEASES", "VersionRange"]

#: ``(lowest, highest)`` version of one API.
VersionRange = tuple[int, int]

#: Release by release, the APIs whose ``KEY=MIN-MAX`` range changed from the release before (the
#: first release lists every API; no API was ever dropped).
_CHANGES: tuple[tuple[str, str], ...] = (
    (
        "0.11",
        "0=0-3 1=0-5 2=0-2 3=0-4 8=0-3 9=0-3 10=0-1 11=0-2 12=0-1 13=0-1 14=0-1 15=0-1 16=0-1 "
        "17=0-0 18=0-1 19=0-2 20=0-1 21=0-0 22=0-0 23=0-0 24=0-0 25=0-0 26=0-0 27=0-0 28=0-0 "
        "29=0-0 30=0-0 31=0-0 32=0-0 33=0-0",
    ),
    ("1.0", "0=0-5 1=0-6 3=0-5 17=0-1 34=0-0 35=0-0 36=0-0 37=0-0"),
    ("1.1", "1=0-7 32=0-1 38=0-0 39=0-0 40=0-0 41=0-0 42=0-0"),
    (
        "2.0",
        "0=0-6 1=0-8 2=0-3 3=0-6 8=0-4 9=0-4 10=0-2 11=0-3 12=0-2 13=0-2 14=0-2 15=0-2 16=0-2 "
        "18=0-2 19=0-3 20=0-2 21=0-1 22=0-1 23=0-1 24=0-1 25=0-1 26=0-1 28=0-1 29=0-1 30=0-1 "
        "31=0-1 32=0-2 33=0-1 34=0-1 35=0-1 37=0-1 38=0-1 39=0-1 40=0-1 41=0-1 42=0-1",
    ),
    ("2.1", "0=0-7 1=0-10 2=0-4 3=0-7 8=0-6 9=0-5 20=0-3 23=0-2 28=0-2"),
    ("2.2", "2=0-5 11=0-4 36=0-1 43=0-0"),
    ("2.3", "1=0-11 3=0-8 8=0-7 11=0-5 12=0-3 14=0-3 15=0-3 23=0-3 44=0-0"),
    (
        "2.4",
        "0=0-8 3=0-9 8=0-8 9=0-6 10=0-3 11=0-6 12=0-4 13=0-4 14=0-4 15=0-5 16=0-3 18=0-3 "
        "19=0-5 20=0-4 22=0-2 38=0-2 42=0-2 43=0-2 44=0-1 45=0-0 46=0-0 47=0-0",
    ),
    (
        "2.5",
        "9=0-7 11=0-7 14=0-5 22=0-3 28=0-3 29=0-2 30=0-2 31=0-2 36=0-2 37=0-2 39=0-2 40=0-2 41=0-2",
    ),
    ("2.6", "16=0-4 21=0-2 32=0-3 35=0-2 48=0-0 49=0-0"),
    ("2.7", "1=0-12 19=0-6 20=0-5 22=0-4 24=0-2 25=0-2 26=0-2 37=0-3 50=0-0 51=0-0 57=0-0"),
    (
        "2.8",
        "0=0-9 2=0-6 3=0-11 19=0-7 20=0-6 23=0-4 24=0-3 25=0-3 26=0-3 27=0-1 32=0-4 33=0-2 "
        "34=0-2 48=0-1 49=0-1 60=0-0 61=0-0",
    ),
    ("3.0", "2=0-7 9=0-8 10=0-4 65=0-0 66=0-0"),
    ("3.1", "1=0-13 3=0-12"),
    ("3.2", "11=0-9 13=0-5 35=0-3"),
    ("3.3", "29=0-3 30=0-3 31=0-3 35=0-4 38=0-3 41=0-3 57=0-1"),
    ("3.4", ""),
    ("3.5", "1=0-15 2=0-8"),
    ("3.6", "24=0-4"),
    ("3.7", "0=0-10 1=0-16 8=0-9 9=0-9 60=0-1"),
    ("3.8", "0=0-11 10=0-5 16=0-5 22=0-5 24=0-5 25=0-4 26=0-4 28=0-4 66=0-1"),
    ("3.9", "1=0-17 2=0-9 10=0-6 18=0-4"),
    (
        "4.0",
        "0=3-12 1=4-17 2=1-10 3=0-13 8=2-9 9=1-9 11=2-9 15=0-6 19=2-7 20=1-6 23=2-4 26=0-5 "
        "27=1-1 28=0-5 29=1-3 30=1-3 31=1-3 32=1-4 34=1-2 35=1-4 38=1-3 39=1-2 40=1-2 41=1-3 "
        "55=0-2 57=0-2 60=0-2 64=0-0 68=0-1 69=0-1 74=0-0 75=0-0 80=0-0 81=0-0",
    ),
)

#: Kafka 4.0 accepts Produce v3 and up only (KIP-896) yet advertises v0 as its lowest, because
#: librdkafka fails compressed produce to a broker not advertising Produce v0 (KAFKA-18659);
#: requests at v0-2 are refused like any unsupported version.
ADVERTISED_MIN: Mapping[str, Mapping[int, int]] = MappingProxyType({"4.0": {0: 0}})


def _build() -> dict[str, Mapping[int, VersionRange]]:
    releases: dict[str, Mapping[int, VersionRange]] = {}
    current: dict[int, VersionRange] = {}
    for release, text in _CHANGES:
        for item in text.split():
            key, _, versions = item.partition("=")
            low, _, high = versions.partition("-")
            current[int(key)] = (int(low), int(high))
        releases[release] = MappingProxyType(dict(sorted(current.items())))
    return releases


#: Release name (``"0.11"``, ``"2.8"``, ``"4.0"``) -> API key -> the versions it accepts, oldest
#: release first.
RELEASES: Mapping[str, Mapping[int, VersionRange]] = MappingProxyType(_build())
