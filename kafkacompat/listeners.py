"""Listeners as Kafka configures them: ``listeners``, ``advertised.listeners`` and
``listener.security.protocol.map``; without ``listeners`` one PLAINTEXT listener on ``--listen``."""

from __future__ import annotations

import re
from dataclasses import dataclass

from kafkacompat.config import Config, ConfigError, HostPort

__all__ = ["SECURITY_PROTOCOLS", "Listener", "configured_listeners"]

SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
_NAME = re.compile(r"^[A-Za-z0-9_]+$")


@dataclass(frozen=True, slots=True)
class Listener:
    """One named listener: where it binds, how it is secured, what clients are told."""

    name: str
    security_protocol: str
    bind: HostPort
    #: The address clients are told to use; None: derived from the bound port.
    advertised: HostPort | None = None

    @property
    def uses_tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol in ("SASL_PLAINTEXT", "SASL_SSL")

    def advertised_for(self, bound_port: int) -> HostPort:
        """The address clients are told to use, given the port actually bound."""
        if self.advertised is not None:
            return self.advertised
        host = self.bind.host
        if host in ("0.0.0.0", "::", ""):
            host = "localhost"
        return HostPort(host, bound_port)


def _protocol_map(text: str) -> dict[str, str]:
    mapping: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, protocol = item.partition(":")
        protocol = protocol.strip().upper()
        if not sep or protocol not in SECURITY_PROTOCOLS:
            raise ConfigError(f"bad listener.security.protocol.map entry {item!r}")
        mapping[name.strip().upper()] = protocol
    return mapping


def _parse_list(text: str, setting: str) -> dict[str, HostPort]:
    """``NAME://HOST:PORT,...`` by upper-case listener name (an empty host: all interfaces)."""
    found: dict[str, HostPort] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, address = item.partition("://")
        name = name.upper()
        if not sep or not _NAME.match(name):
            raise ConfigError(f"bad {setting} entry {item!r} (expected NAME://HOST:PORT)")
        if name in found:
            raise ConfigError(f"listener {name} appears twice in {setting}")
        host, colon, _port = address.rpartition(":")
        if not colon:
            raise ConfigError(f"bad {setting} entry {item!r} (expected NAME://HOST:PORT)")
        found[name] = HostPort.parse(address, default_host=host or "0.0.0.0")
    return found


def configured_listeners(config: Config) -> tuple[Listener, ...]:
    """Every listener of the broker, in the configured order (the first one is reported as the
    broker's address)."""
    listeners_text = config.get_str("listeners")
    if not listeners_text:
        return (Listener("PLAINTEXT", "PLAINTEXT", config.listen, config.advertised),)
    protocols = _protocol_map(config.get_str("listener.security.protocol.map"))
    binds = _parse_list(listeners_text, "listeners")
    advertised = _parse_list(config.get_str("advertised.listeners"), "advertised.listeners")
    for name in advertised:
        if name not in binds:
            raise ConfigError(f"advertised.listeners names {name}, which is not in listeners")
    ports = [b.port for b in binds.values() if b.port != 0]
    if len(ports) != len(set(ports)):
        raise ConfigError(f"two listeners share a port in listeners={listeners_text!r}")
    found = []
    for name, bind in binds.items():
        protocol = protocols.get(name)
        if protocol is None:
            raise ConfigError(
                f"listener {name} has no security protocol in listener.security.protocol.map"
            )
        found.append(Listener(name, protocol, bind, advertised.get(name)))
    return tuple(found)
