"""Listener settings as Kafka reads them, and the command line that sets them."""

from __future__ import annotations

from pathlib import Path

import pytest

from kafkacompat.cli import build_parser, config_from_args
from kafkacompat.config import Config, ConfigError, HostPort
from kafkacompat.listeners import Listener, configured_listeners


def test_without_listeners_one_plaintext_listener_on_listen() -> None:
    config = Config(listen=HostPort("0.0.0.0", 9093), advertised=HostPort("kafka", 9093))
    assert configured_listeners(config) == (
        Listener("PLAINTEXT", "PLAINTEXT", HostPort("0.0.0.0", 9093), HostPort("kafka", 9093)),
    )


def test_named_listeners_with_the_protocol_map_and_advertised_addresses() -> None:
    config = Config(
        settings={
            "listeners": "INTERNAL://127.0.0.1:9092,EXTERNAL://:9094,sasl_ssl://127.0.0.1:0",
            "advertised.listeners": "EXTERNAL://kafka.example.com:19094",
            "listener.security.protocol.map": "INTERNAL:PLAINTEXT,EXTERNAL:SSL,SASL_SSL:SASL_SSL",
        }
    )
    found = configured_listeners(config)
    assert found == (
        Listener("INTERNAL", "PLAINTEXT", HostPort("127.0.0.1", 9092)),
        Listener(
            "EXTERNAL", "SSL", HostPort("0.0.0.0", 9094), HostPort("kafka.example.com", 19094)
        ),
        Listener("SASL_SSL", "SASL_SSL", HostPort("127.0.0.1", 0)),
    )
    assert found[1].advertised_for(9094) == HostPort("kafka.example.com", 19094)
    assert found[1].uses_tls and not found[1].uses_sasl
    assert found[2].uses_tls and found[2].uses_sasl
    assert found[0].advertised_for(9092) == HostPort("127.0.0.1", 9092)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"listeners": "CUSTOM://:9092"}, "no security protocol"),
        ({"listeners": "PLAINTEXT://:9092,PLAINTEXT://:9093"}, "appears twice"),
        ({"listeners": "PLAINTEXT://:9092,SSL://:9092"}, "share a port"),
        ({"listeners": "127.0.0.1:9092"}, "expected NAME://HOST:PORT"),
        ({"listeners": "SSL://:9092", "advertised.listeners": "OTHER://x:1"}, "not in listeners"),
        (
            {"listeners": "A://:9092", "listener.security.protocol.map": "A:TLS"},
            "bad listener.security.protocol.map",
        ),
    ],
)
def test_bad_listener_settings(settings: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        configured_listeners(Config(settings=settings))


def test_listener_settings_come_from_a_properties_file(tmp_path: Path) -> None:
    props = tmp_path / "server.properties"
    props.write_text(
        "listeners=PLAINTEXT://127.0.0.1:9092,SASL_SSL://127.0.0.1:9093\n"
        "advertised.listeners=PLAINTEXT://localhost:9092,SASL_SSL://localhost:9093\n"
        "listener.name.sasl_ssl.ssl.keystore.location=/etc/kafka/broker.pem\n"
    )
    args = build_parser().parse_args(["serve", "--config", str(props)])
    config = config_from_args(args)
    names = [(x.name, x.security_protocol, x.advertised) for x in configured_listeners(config)]
    assert names == [
        ("PLAINTEXT", "PLAINTEXT", HostPort("localhost", 9092)),
        ("SASL_SSL", "SASL_SSL", HostPort("localhost", 9093)),
    ]
    assert config.for_listener("SASL_SSL", "ssl.keystore.location") == "/etc/kafka/broker.pem"
    assert config.for_listener("PLAINTEXT", "ssl.keystore.location") == ""


def test_a_single_plaintext_listener_in_a_file_stays_the_listen_address(tmp_path: Path) -> None:
    props = tmp_path / "server.properties"
    props.write_text("listeners=PLAINTEXT://0.0.0.0:9095\n")
    config = config_from_args(build_parser().parse_args(["serve", "--config", str(props)]))
    assert config.listen == HostPort("0.0.0.0", 9095)
    assert config.get_str("listeners") == ""


@pytest.mark.parametrize("how", ["file", "override"])
def test_several_log_dirs_are_several_and_the_first_holds_the_state(
    tmp_path: Path, how: str
) -> None:
    dirs = f"{tmp_path}/d1, {tmp_path}/d2"
    props = tmp_path / "server.properties"
    props.write_text(f"log.dirs={dirs}\n" if how == "file" else "num.partitions=2\n")
    argv = ["serve", "--config", str(props)] + ([] if how == "file" else ["-o", f"log.dirs={dirs}"])
    config = config_from_args(build_parser().parse_args(argv))
    assert config.data_dir == tmp_path / "d1"
    assert config.get_str("log.dirs") == dirs


def test_one_log_dir_in_a_file_is_the_data_directory(tmp_path: Path) -> None:
    props = tmp_path / "server.properties"
    props.write_text(f"log.dirs={tmp_path}/only\n")
    config = config_from_args(build_parser().parse_args(["serve", "--config", str(props)]))
    assert config.data_dir == tmp_path / "only"


def test_secrets_are_not_in_the_config_repr() -> None:
    config = Config(
        settings={
            "sasl.jaas.config": 'PlainLoginModule required user_admin="s3cret-a";',
            "listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config": "x s3cret-b",
            "ssl.key.password": "s3cret-c",
            "ssl.keystore.key": "-----BEGIN PRIVATE KEY----- s3cret-d",
        }
    )
    assert "s3cret" not in repr(config)
    assert repr(config).count("[hidden]") == 4
