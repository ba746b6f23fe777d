"""Broker configuration: one frozen `Config`, with broker settings under Kafka's own names."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType

#: Broker settings this broker understands: Kafka's name -> Kafka's default (its type is the
#: default's type). Values given as text (command line, properties file) are parsed to that type.
BROKER_DEFAULTS: Mapping[str, int | bool | str] = MappingProxyType(
    {
        "socket.request.max.bytes": 104857600,
        "auto.create.topics.enable": True,
        "num.partitions": 1,
        "default.replication.factor": 1,
        # A cluster on etcd (empty: a single broker): etcd://HOST:PORT[,HOST:PORT...][/PREFIX].
        "metadata.store.url": "",
        "broker.session.timeout.ms": 9000,
        "broker.heartbeat.interval.ms": 2000,
        "broker.rack": "",
        # Replication (a cluster): Kafka's names and defaults.
        "replica.lag.time.max.ms": 30000,
        "replica.fetch.wait.max.ms": 500,
        "replica.fetch.min.bytes": 1,
        "replica.fetch.max.bytes": 1048576,
        "replica.fetch.response.max.bytes": 10485760,
        "replica.fetch.backoff.ms": 1000,
        "num.replica.fetchers": 1,
        "replica.high.watermark.checkpoint.interval.ms": 5000,
        # Leader elections (a cluster's controller), Kafka's names and defaults.
        "unclean.leader.election.enable": False,
        "auto.leader.rebalance.enable": True,
        "leader.imbalance.check.interval.seconds": 300,
        "leader.imbalance.per.broker.percentage": 10,
        "controlled.shutdown.enable": True,
        "delete.topic.enable": True,
        "message.max.bytes": 1048588,
        # Where partition logs are kept, comma-separated (empty: the data directory); the first
        # also keeps topic metadata and state.
        "log.dirs": "",
        "log.retention.ms": 604800000,
        "log.retention.bytes": -1,
        "log.retention.check.interval.ms": 300000,
        "log.segment.bytes": 1073741824,
        "log.roll.ms": 604800000,
        "log.index.interval.bytes": 4096,
        "log.index.size.max.bytes": 10485760,
        # Not a Kafka setting: the most segment files held open at once across all logs (least
        # recently used closed first, reopened on demand); capped at a quarter of the soft
        # RLIMIT_NOFILE so connections and short-lived files keep the rest.
        "log.open.files.max": 1024,
        "log.flush.interval.messages": 9223372036854775807,
        "log.flush.interval.ms": 9223372036854775807,
        "log.message.timestamp.type": "CreateTime",
        # Kafka 4.0's defaults (KIP-1030 made "after" one hour); the topic defaults follow them.
        "log.message.timestamp.before.max.ms": 9223372036854775807,
        "log.message.timestamp.after.max.ms": 3600000,
        "log.cleanup.policy": "delete",
        "compression.type": "producer",
        "min.insync.replicas": 1,
        "group.initial.rebalance.delay.ms": 3000,
        "group.min.session.timeout.ms": 6000,
        "group.max.session.timeout.ms": 1800000,
        "offsets.retention.minutes": 10080,
        # The internal topics (created on first use, as Kafka does): partitions and replicas,
        # the replicas capped at the live brokers.
        "offsets.topic.num.partitions": 50,
        "offsets.topic.replication.factor": 3,
        "transaction.state.log.num.partitions": 50,
        "transaction.state.log.replication.factor": 3,
        "offsets.retention.check.interval.ms": 600000,
        "offset.metadata.max.bytes": 4096,
        # KIP-848 consumer groups (group.protocol=consumer), Kafka 4.0's names and defaults;
        # the assignors are named ("uniform", "range") or by Kafka's class names, first default.
        "group.consumer.session.timeout.ms": 45000,
        "group.consumer.min.session.timeout.ms": 45000,
        "group.consumer.max.session.timeout.ms": 60000,
        "group.consumer.heartbeat.interval.ms": 5000,
        "group.consumer.min.heartbeat.interval.ms": 5000,
        "group.consumer.max.heartbeat.interval.ms": 15000,
        "group.consumer.max.size": 2147483647,
        "group.consumer.assignors": "uniform,range",
        "group.consumer.migration.policy": "bidirectional",
        "producer.id.expiration.ms": 86400000,
        "transaction.max.timeout.ms": 900000,
        "transactional.id.expiration.ms": 604800000,
        "transaction.remove.expired.transaction.cleanup.interval.ms": 3600000,
        "connections.max.idle.ms": 600000,
        # Not Kafka settings (its KIP-578 proposed the first): the most partitions this broker
        # hosts, and how long a response may wait for a client that does not read it before
        # the connection is closed.
        "max.broker.partitions": 100000,
        # The log cleaner (compaction) and the topic defaults it supplies, with Kafka's names.
        "log.cleaner.enable": True,
        "log.cleaner.threads": 1,
        "log.cleaner.backoff.ms": 15000,
        "log.cleaner.dedupe.buffer.size": 134217728,
        "log.cleaner.delete.retention.ms": 86400000,
        "log.cleaner.min.compaction.lag.ms": 0,
        "log.cleaner.max.compaction.lag.ms": 9223372036854775807,
        "log.cleaner.min.cleanable.ratio": "0.5",
        "connections.send.timeout.ms": 30000,
        "max.incremental.fetch.session.cache.slots": 1000,
        # Not Kafka settings: serve only the API versions of this Kafka release ("2.8"; empty:
        # every version served), and cap single APIs ("Fetch=11,Produce=7", Kafka's API names).
        "kafkacompat.emulate.kafka.version": "",
        "kafkacompat.api.max.versions": "",
        # Listeners and security, with Kafka's names and defaults. ``listeners`` empty: one
        # PLAINTEXT listener on --listen. Settings may also be given per listener as
        # ``listener.name.<listener>.<setting>`` (see `Config.for_listener`).
        "listeners": "",
        "advertised.listeners": "",
        "listener.security.protocol.map": (
            "PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL"
        ),
        "ssl.keystore.type": "JKS",
        "ssl.keystore.location": "",
        "ssl.keystore.key": "",
        "ssl.keystore.certificate.chain": "",
        "ssl.keystore.password": "",
        "ssl.key.password": "",
        "ssl.truststore.type": "JKS",
        "ssl.truststore.location": "",
        "ssl.truststore.certificates": "",
        "ssl.truststore.password": "",
        "ssl.client.auth": "none",
        "ssl.protocol": "TLSv1.3",
        "ssl.enabled.protocols": "TLSv1.2,TLSv1.3",
        "ssl.cipher.suites": "",
        "ssl.principal.mapping.rules": "DEFAULT",
        "ssl.endpoint.identification.algorithm": "https",
        "sasl.enabled.mechanisms": "GSSAPI",
        "sasl.jaas.config": "",
        "sasl.mechanism.inter.broker.protocol": "GSSAPI",
        "connection.failed.authentication.delay.ms": 100,
        "connections.max.reauth.ms": 0,
        "authorizer.class.name": "",
        "super.users": "",
        "allow.everyone.if.no.acl.found": False,
        "quota.window.num": 11,
        "quota.window.size.seconds": 1,
        # Not Kafka settings: the operations HTTP listener (kafkacompat.ops). ``http.listener``
        # is HOST:PORT serving /metrics, /healthz, /readyz and the web console (empty: off;
        # --dev: 127.0.0.1 on a free port); at most ``metrics.max.partitions`` partitions get
        # series of their own; the console changes topics and group offsets only with
        # ``http.console.write.enable`` and HTTP basic auth as a SASL PLAIN or SCRAM user.
        "http.listener": "",
        "metrics.max.partitions": 10000,
        "http.console.write.enable": False,
        # Fault injection over HTTP (/faults; `kafkacompat faults`), for tests in any language:
        # off unless set (--dev leaves it off), behind basic auth when the broker has SASL users.
        "http.faults.enable": False,
    }
)

#: Settings whose values are secrets: never logged, masked wherever a config is shown.
SECRET_SUFFIXES = (".password", ".jaas.config", "ssl.keystore.key")

#: The prefix of per-listener settings: ``listener.name.<listener>.<setting>``, where the
#: setting may start with a lower-case SASL mechanism (``plain.sasl.jaas.config``).
LISTENER_PREFIX = "listener.name."


def is_secret(name: str) -> bool:
    return name.endswith(SECRET_SUFFIXES)


#: What `--dev` changes, for tests and local development: a consumer group forms at once (no
#: initial rebalance delay), segments are small, and the log is never fsynced explicitly (the
#: flush settings are stated even where they equal the defaults, so `--dev` always means it);
#: the operations HTTP listener runs on a free loopback port.
DEV_OVERRIDES: Mapping[str, int | bool | str] = MappingProxyType(
    {
        "group.initial.rebalance.delay.ms": 0,
        "log.segment.bytes": 16 * 1024 * 1024,
        "log.flush.interval.messages": 9223372036854775807,
        "log.flush.interval.ms": 9223372036854775807,
        "http.listener": "127.0.0.1:0",
    }
)

DEFAULT_PORT = 9092


class ConfigError(ValueError):
    """A setting with an unknown name or a value of the wrong type."""


def _base_setting(name: str) -> str:
    """The broker setting a per-listener name stands for (``listener.name.x.ssl.key.password``
    -> ``ssl.key.password``; ``listener.name.x.plain.sasl.jaas.config`` -> ``sasl.jaas.config``)."""
    if not name.startswith(LISTENER_PREFIX):
        return name
    _listener, _, rest = name[len(LISTENER_PREFIX) :].partition(".")
    if rest in BROKER_DEFAULTS:
        return rest
    _mechanism, _, after = rest.partition(".")
    return after if after == "sasl.jaas.config" else rest


def parse_setting(name: str, text: str) -> int | bool | str:
    """Parse a setting given as text to the type of its default."""
    name = _base_setting(name)
    if name not in BROKER_DEFAULTS:
        raise ConfigError(f"unknown broker setting {name!r}")
    default = BROKER_DEFAULTS[name]
    if isinstance(default, bool):
        lowered = text.strip().lower()
        if lowered not in ("true", "false"):
            raise ConfigError(f"{name} must be true or false, got {text!r}")
        return lowered == "true"
    if isinstance(default, int):
        try:
            return int(text.strip())
        except ValueError:
            raise ConfigError(f"{name} must be an integer, got {text!r}") from None
    return text.strip()


def read_properties(path: Path) -> dict[str, str]:
    """A Java-style properties file (`key=value` lines, `#`/`!` comments) as a dict."""
    settings: dict[str, str] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line[0] in "#!":
            continue
        key, sep, value = line.partition("=")
        if not sep:
            key, _, value = line.partition(":")
        settings[key.strip()] = value.strip()
    return settings


@dataclass(frozen=True, slots=True)
class HostPort:
    host: str
    port: int

    @classmethod
    def parse(cls, text: str, default_host: str = "127.0.0.1") -> HostPort:
        """`HOST:PORT`, `:PORT`, `[::1]:PORT` or a bare `PORT`; a `PLAINTEXT://` prefix is allowed."""
        text = text.removeprefix("PLAINTEXT://")
        host, sep, port = text.rpartition(":")
        if not sep:
            host, port = "", text
        host = host.strip("[]") or default_host
        try:
            number = int(port)
        except ValueError:
            raise ConfigError(f"bad listener address {text!r}") from None
        if not 0 <= number <= 65535:
            raise ConfigError(f"port out of range in {text!r}")
        return cls(host, number)

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Config:
    """Everything a broker is started with."""

    listen: HostPort = HostPort("127.0.0.1", DEFAULT_PORT)
    advertised: HostPort | None = None
    data_dir: Path = Path("kafkacompat-data")
    node_id: int = 1
    cluster_id: str | None = None
    settings: Mapping[str, int | bool | str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, value in self.settings.items():
            base = _base_setting(name)
            if base not in BROKER_DEFAULTS:
                raise ConfigError(f"unknown broker setting {name!r}")
            if type(value) is not type(BROKER_DEFAULTS[base]):
                raise ConfigError(f"{name} must be {type(BROKER_DEFAULTS[base]).__name__}")

    def __repr__(self) -> str:
        shown = {k: ("[hidden]" if is_secret(k) else v) for k, v in self.settings.items()}
        return (
            f"Config(listen={self.listen}, advertised={self.advertised}, "
            f"data_dir={str(self.data_dir)!r}, node_id={self.node_id}, "
            f"cluster_id={self.cluster_id!r}, settings={shown!r})"
        )

    def get(self, name: str) -> int | bool | str:
        return self.settings.get(name, BROKER_DEFAULTS[name])

    def for_listener(self, listener: str, name: str, mechanism: str | None = None) -> str:
        """A string setting as one listener sees it: Kafka's lookup order is
        ``listener.name.<listener>.<mechanism>.<name>`` (mechanism lower-case, for the JAAS
        config), then ``listener.name.<listener>.<name>``, then the broker-wide ``name``."""
        prefix = f"{LISTENER_PREFIX}{listener.lower()}."
        if mechanism is not None:
            value = self.settings.get(f"{prefix}{mechanism.lower()}.{name}")
            if value is not None:
                return str(value)
        value = self.settings.get(prefix + name)
        if value is not None:
            return str(value)
        return self.get_str(name)

    def get_int(self, name: str) -> int:
        value = self.get(name)
        assert isinstance(value, int)
        return value

    def get_bool(self, name: str) -> bool:
        value = self.get(name)
        assert isinstance(value, bool)
        return value

    def get_str(self, name: str) -> str:
        value = self.get(name)
        assert isinstance(value, str)
        return value

    def with_settings(self, **changes: object) -> Config:
        return replace(self, **changes)  # type: ignore[arg-type]
