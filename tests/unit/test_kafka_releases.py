"""The table of Kafka releases' API versions is consistent, and the settings naming a release
and per-API caps are parsed strictly."""

from __future__ import annotations

import json
import re
from itertools import pairwise
from pathlib import Path

import pytest

from kafkacompat.broker.api_versions import (
    MAX_VERSIONS_SETTING,
    check_version_settings,
    parse_max_versions,
    parse_release,
)
from kafkacompat.broker.kafka_releases import ADVERTISED_MIN, RELEASES
from kafkacompat.config import Config, ConfigError
from kafkacompat.protocol.messages import API_MODULES

ROOT = Path(__file__).resolve().parents[2]
SPEC_DIR = ROOT / "protocol_specs"
REF_DIR = ROOT / ".." / "shared" / "kafka-message-specs"

#: The one release that removed old versions (KIP-896).
FOUR_ZERO = "4.0"


def test_releases_are_in_order_and_well_formed() -> None:
    names = list(RELEASES)
    assert names[0] == "0.11" and names[-1] == FOUR_ZERO
    numbers = [tuple(int(part) for part in name.split(".")) for name in names]
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)
    for ranges in RELEASES.values():
        assert all(0 <= low <= high for low, high in ranges.values())
        assert 18 in ranges  # ApiVersions: how a client learns the rest


def test_versions_only_grow_except_where_4_0_removed_them() -> None:
    for (_before, old), (release, new) in pairwise(RELEASES.items()):
        for key, (low, high) in old.items():
            assert key in new, (release, key)
            assert new[key][1] >= high, (release, key)
            if release != FOUR_ZERO:
                assert new[key][0] <= low, (release, key)


def test_every_key_is_a_message_of_our_protocol_specs() -> None:
    for release, ranges in RELEASES.items():
        for key in ranges:
            assert key in API_MODULES, (release, key)
            request, response = API_MODULES[key]
            assert (SPEC_DIR / f"{request}.spec").is_file(), (release, key)
            assert (SPEC_DIR / f"{response}.spec").is_file(), (release, key)


def test_advertised_minimums_are_below_the_accepted_ones() -> None:
    for release, lows in ADVERTISED_MIN.items():
        for key, low in lows.items():
            assert low < RELEASES[release][key][0]
    assert ADVERTISED_MIN == {FOUR_ZERO: {0: 0}}


def _reference_requests() -> dict[int, dict[str, object]]:
    found: dict[int, dict[str, object]] = {}
    for path in REF_DIR.glob("*Request.json"):
        spec = json.loads(re.sub(r"//.*", "", path.read_text()))
        if "apiKey" in spec:
            found[int(spec["apiKey"])] = spec
    return found


@pytest.mark.skipif(not REF_DIR.is_dir(), reason=f"no Kafka message specs at {REF_DIR}")
def test_4_0_against_apache_kafka_message_specs() -> None:
    """The specs of the 4.0 development line mark the versions KIP-896 meant to remove as
    deprecated: 4.0 accepts from the next one, except where the release kept old versions
    (Metadata, FindCoordinator, SaslHandshake, DeleteGroups), kept v3-6 (Produce) or dropped
    an inter-broker version not marked (WriteTxnMarkers v0). Every newest version is served."""
    reference = _reference_requests()
    kept_or_other = {0: 3, 3: 0, 10: 0, 17: 0, 27: 1, 42: 0}
    for key, (low, high) in RELEASES[FOUR_ZERO].items():
        spec = reference[key]
        deprecated = spec.get("deprecatedVersions")
        first = int(str(deprecated).split("-")[-1]) + 1 if deprecated else 0
        assert low == kept_or_other.get(key, first), key
        newest = int(str(spec["validVersions"]).split("-")[-1])
        assert high >= newest - (1 if spec.get("latestVersionUnstable") else 0), key


def test_parse_release() -> None:
    assert parse_release("") is None
    assert parse_release(" 2.8 ") == "2.8"
    for bad in ("2.9", "4", "latest", "2.8.1"):
        with pytest.raises(ConfigError, match="unknown Kafka release"):
            parse_release(bad)


def test_parse_max_versions() -> None:
    assert parse_max_versions("") == {}
    assert parse_max_versions("Fetch=11,Produce=7") == {1: 11, 0: 7}
    assert parse_max_versions("fetch=11, OFFSET_FOR_LEADER_EPOCH=2,offsetForLeaderEpoch=3") == {
        1: 11,
        23: 2,
    }
    assert parse_max_versions("ListOffsets=0,") == {2: 0}
    for bad in ("Fetch", "Fetch=", "Fetch=-1", "Fetch=x", "Nope=3", "=3"):
        with pytest.raises(ConfigError, match=MAX_VERSIONS_SETTING):
            parse_max_versions(bad)


def test_check_version_settings() -> None:
    check_version_settings(Config())
    check_version_settings(Config(settings={MAX_VERSIONS_SETTING: "Metadata=4"}))
    with pytest.raises(ConfigError):
        check_version_settings(Config(settings={"kafkacompat.emulate.kafka.version": "9.9"}))
