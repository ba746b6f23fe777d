"""A secured test broker's material: a test CA and broker certificate made at start (trustme),
SASL users for PLAIN and SCRAM, ACLs on with a super user, and client settings to match.

`BrokerSecurity` hands a test what its clients need (``ca_file``, users and passwords, ready-made
settings for kafka-python, aiokafka and librdkafka), so users can test their own security
configuration against a real broker.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["BrokerSecurity"]

ADMIN = "admin"


def _default_users() -> dict[str, str]:
    return {ADMIN: "admin-secret", "alice": "alice-secret", "bob": "bob-secret"}


@dataclass
class BrokerSecurity:
    """How a test broker is secured; `prepare` writes the certificates under ``directory``.

    ``protocol`` is the listener's security protocol (SASL_SSL, SASL_PLAINTEXT or SSL);
    ``users`` log in with every mechanism in ``mechanisms``; ``admin`` is a super user; with
    ``acls`` the standard authorizer is on and other users may do only what ACLs allow.
    ``client_auth`` is ``ssl.client.auth`` (``required``: mTLS, client certificates in
    ``client_cert_file``/``client_key_file`` for the principal ``User:CN=client``).
    """

    directory: Path
    protocol: str = "SASL_SSL"
    mechanisms: tuple[str, ...] = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
    users: dict[str, str] = field(default_factory=_default_users)
    acls: bool = True
    client_auth: str = "none"
    ca_file: Path = field(init=False)
    server_file: Path = field(init=False)
    client_cert_file: Path = field(init=False)
    client_key_file: Path = field(init=False)

    def __post_init__(self) -> None:
        self.protocol = self.protocol.upper()
        self.ca_file = self.directory / "ca.pem"
        self.server_file = self.directory / "broker.pem"
        self.client_cert_file = self.directory / "client-cert.pem"
        self.client_key_file = self.directory / "client-key.pem"

    @property
    def uses_tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    @property
    def uses_sasl(self) -> bool:
        return self.protocol in ("SASL_PLAINTEXT", "SASL_SSL")

    def prepare(self) -> BrokerSecurity:
        """Make the test CA, the broker's certificate and a client certificate (once)."""
        if not self.uses_tls or self.ca_file.exists():
            return self
        import trustme  # a test dependency: only needed when a test asks for TLS

        self.directory.mkdir(parents=True, exist_ok=True)
        ca = trustme.CA(organization_name="kafkacompat test CA")
        ca.cert_pem.write_to_path(str(self.ca_file))
        server = ca.issue_cert("localhost", "127.0.0.1")
        server.private_key_and_cert_chain_pem.write_to_path(str(self.server_file))
        client = ca.issue_cert("client", common_name="client", organization_unit_name="test")
        self.client_cert_file.write_bytes(b"".join(p.bytes() for p in client.cert_chain_pems))
        client.private_key_pem.write_to_path(str(self.client_key_file))
        return self

    @property
    def admin(self) -> tuple[str, str]:
        """The super user's name and password."""
        return ADMIN, self.users[ADMIN]

    def broker_settings(self, port: int = 0) -> dict[str, str | bool]:
        """The broker settings (Kafka's names) for one listener on 127.0.0.1:``port``."""
        self.prepare()
        listener = self.protocol.lower()
        settings: dict[str, str | bool] = {
            "listeners": f"{self.protocol}://127.0.0.1:{port}",
        }
        if self.uses_tls:
            settings.update(
                {
                    "ssl.keystore.type": "PEM",
                    "ssl.keystore.location": str(self.server_file),
                    "ssl.truststore.type": "PEM",
                    "ssl.truststore.location": str(self.ca_file),
                    "ssl.client.auth": self.client_auth,
                }
            )
        if self.uses_sasl:
            settings["sasl.enabled.mechanisms"] = ",".join(self.mechanisms)
            if "PLAIN" in self.mechanisms:
                users = " ".join(f'user_{u}="{p}"' for u, p in self.users.items())
                settings[f"listener.name.{listener}.plain.sasl.jaas.config"] = (
                    "org.apache.kafka.common.security.plain.PlainLoginModule required "
                    f'username="{ADMIN}" password="{self.users[ADMIN]}" {users};'
                )
        if self.acls:
            settings["authorizer.class.name"] = (
                "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
            )
            settings["super.users"] = f"User:{ADMIN}"
        return settings

    def scram_users(self) -> Mapping[str, str]:
        """The users to create SCRAM credentials for, with every SCRAM mechanism enabled."""
        if not any(m.startswith("SCRAM-") for m in self.mechanisms):
            return {}
        return dict(self.users)

    def _mechanism(self, mechanism: str | None) -> str:
        if mechanism is not None:
            return mechanism
        return next((m for m in self.mechanisms if m.startswith("SCRAM-")), self.mechanisms[0])

    def kafka_python(self, user: str = ADMIN, mechanism: str | None = None) -> dict[str, object]:
        """Settings for kafka-python's clients (``KafkaProducer(**settings, ...)``)."""
        options: dict[str, object] = {"security_protocol": self.protocol}
        if self.uses_tls:
            options["ssl_cafile"] = str(self.ca_file)
        if self.uses_sasl:
            options.update(
                sasl_mechanism=self._mechanism(mechanism),
                sasl_plain_username=user,
                sasl_plain_password=self.users[user],
            )
        return options

    def aiokafka(self, user: str = ADMIN, mechanism: str | None = None) -> dict[str, object]:
        """Settings for aiokafka's clients."""
        options: dict[str, object] = {"security_protocol": self.protocol}
        if self.uses_tls:
            options["ssl_context"] = ssl.create_default_context(cafile=str(self.ca_file))
        if self.uses_sasl:
            options.update(
                sasl_mechanism=self._mechanism(mechanism),
                sasl_plain_username=user,
                sasl_plain_password=self.users[user],
            )
        return options

    def librdkafka(self, user: str = ADMIN, mechanism: str | None = None) -> dict[str, str]:
        """Properties for confluent-kafka (and kcat's ``-X``)."""
        options = {"security.protocol": self.protocol}
        if self.uses_tls:
            options["ssl.ca.location"] = str(self.ca_file)
        if self.uses_sasl:
            options.update(
                {
                    "sasl.mechanisms": self._mechanism(mechanism),
                    "sasl.username": user,
                    "sasl.password": self.users[user],
                }
            )
        return options
