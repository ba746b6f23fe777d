"""The stock clients connecting as their users configure them for TLS and SASL: each produces
messages and reads them back, so a test can assert exactly what came through."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import ssl
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme

KAFKAJS_DIR = Path(__file__).resolve().parents[2] / "compat_tests" / "kafkajs"
TIMEOUT = 30.0


@dataclass(frozen=True)
class TlsFiles:
    """A test CA and PEM files made from it (trustme), as a deployment has them."""

    ca: Path
    #: The broker's key and chain in one file (``ssl.keystore.location``).
    server: Path
    server_key: Path
    server_chain: Path
    #: A client's key + chain (CN=alice, OU=Dev, O=Example), and its parts for librdkafka and kafkajs.
    client: Path
    client_key: Path
    client_cert: Path

    @classmethod
    def make(cls, directory: Path) -> TlsFiles:
        directory.mkdir(parents=True, exist_ok=True)
        ca = trustme.CA(organization_name="kafkacompat test CA")
        server = ca.issue_cert("localhost", "127.0.0.1")
        client = ca.issue_cert(
            "alice@example.com",
            common_name="alice",
            organization_name="Example",
            organization_unit_name="Dev",
        )
        files = cls(
            ca=directory / "ca.pem",
            server=directory / "server.pem",
            server_key=directory / "server.key",
            server_chain=directory / "server-chain.pem",
            client=directory / "client.pem",
            client_key=directory / "client.key",
            client_cert=directory / "client-cert.pem",
        )
        ca.cert_pem.write_to_path(str(files.ca))
        server.private_key_and_cert_chain_pem.write_to_path(str(files.server))
        server.private_key_pem.write_to_path(str(files.server_key))
        files.server_chain.write_bytes(b"".join(b.bytes() for b in server.cert_chain_pems))
        client.private_key_and_cert_chain_pem.write_to_path(str(files.client))
        client.private_key_pem.write_to_path(str(files.client_key))
        files.client_cert.write_bytes(b"".join(b.bytes() for b in client.cert_chain_pems))
        return files

    def broker_settings(self, client_auth: str = "none") -> dict[str, str]:
        return {
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(self.server),
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(self.ca),
            "ssl.client.auth": client_auth,
        }


@dataclass(frozen=True)
class Security:
    """How a client connects: the security protocol, TLS files, SASL mechanism and user."""

    protocol: str = "PLAINTEXT"
    tls: TlsFiles | None = None
    client_certificate: bool = False
    mechanism: str | None = None
    username: str | None = None
    password: str | None = None

    def kafka_python(self) -> dict[str, object]:
        options: dict[str, object] = {"security_protocol": self.protocol}
        if self.tls is not None:
            options["ssl_cafile"] = str(self.tls.ca)
            if self.client_certificate:
                options["ssl_certfile"] = str(self.tls.client)
        if self.mechanism is not None:
            options.update(
                sasl_mechanism=self.mechanism,
                sasl_plain_username=self.username,
                sasl_plain_password=self.password,
            )
        return options

    def aiokafka(self) -> dict[str, object]:
        options: dict[str, object] = {"security_protocol": self.protocol}
        if self.tls is not None:
            context = ssl.create_default_context(cafile=str(self.tls.ca))
            if self.client_certificate:
                context.load_cert_chain(str(self.tls.client))
            options["ssl_context"] = context
        if self.mechanism is not None:
            options.update(
                sasl_mechanism=self.mechanism,
                sasl_plain_username=self.username,
                sasl_plain_password=self.password,
            )
        return options

    def librdkafka(self) -> dict[str, str]:
        """librdkafka's properties (confluent-kafka and kcat)."""
        options = {"security.protocol": self.protocol}
        if self.tls is not None:
            options["ssl.ca.location"] = str(self.tls.ca)
            if self.client_certificate:
                options["ssl.certificate.location"] = str(self.tls.client_cert)
                options["ssl.key.location"] = str(self.tls.client_key)
        if self.mechanism is not None:
            options["sasl.mechanisms"] = self.mechanism
            options["sasl.username"] = self.username or ""
            options["sasl.password"] = self.password or ""
        return options

    def kafkajs(self) -> dict[str, object]:
        options: dict[str, object] = {}
        if self.tls is not None:
            tls: dict[str, str] = {"ca": str(self.tls.ca)}
            if self.client_certificate:
                tls.update(cert=str(self.tls.client_cert), key=str(self.tls.client_key))
            options["ssl"] = tls
        if self.mechanism is not None:
            options["sasl"] = {
                "mechanism": self.mechanism.lower(),
                "username": self.username,
                "password": self.password,
            }
        return options


def values(count: int, tag: str) -> list[bytes]:
    return [f"{tag}-{i}".encode() for i in range(count)]


def round_trip_kafka_python(
    bootstrap: str, topic: str, security: Security, count: int
) -> list[bytes]:
    from kafka import KafkaConsumer, KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", **security.kafka_python())
    try:
        for value in values(count, "kafka-python"):
            producer.send(topic, value)
        producer.flush(timeout=TIMEOUT)
    finally:
        producer.close(timeout=5)
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        consumer_timeout_ms=5000,
        **security.kafka_python(),
    )
    try:
        got = []
        for message in consumer:
            got.append(message.value)
            if len(got) == count:
                break
        return got
    finally:
        consumer.close()


def round_trip_aiokafka(bootstrap: str, topic: str, security: Security, count: int) -> list[bytes]:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    async def run() -> list[bytes]:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", **security.aiokafka())
        await producer.start()
        try:
            for value in values(count, "aiokafka"):
                await producer.send(topic, value)
            await producer.flush()
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(
            topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", **security.aiokafka()
        )
        await consumer.start()
        try:
            got: list[bytes] = []
            while len(got) < count:
                batch = await asyncio.wait_for(consumer.getmany(timeout_ms=1000), TIMEOUT)
                for messages in batch.values():
                    got.extend(m.value for m in messages if m.value is not None)
            return got
        finally:
            await consumer.stop()

    return asyncio.run(run())


def round_trip_confluent(bootstrap: str, topic: str, security: Security, count: int) -> list[bytes]:
    from confluent_kafka import Consumer, Producer

    errors: list[object] = []
    producer = Producer(
        {"bootstrap.servers": bootstrap, "error_cb": errors.append, **security.librdkafka()}
    )
    for value in values(count, "confluent-kafka"):
        producer.produce(topic, value)
    assert producer.flush(TIMEOUT) == 0, f"not delivered; errors: {errors}"
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"{topic}-confluent",
            "auto.offset.reset": "earliest",
            **security.librdkafka(),
        }
    )
    consumer.subscribe([topic])
    try:
        got: list[bytes] = []
        deadline = time.monotonic() + TIMEOUT
        while len(got) < count and time.monotonic() < deadline:
            message = consumer.poll(1.0)
            if message is not None and message.error() is None:
                got.append(message.value())
        return got
    finally:
        consumer.close()


def kcat_path() -> str:
    path = shutil.which("kcat")
    if path is None:
        pytest.skip("kcat is not installed")
    return path


def round_trip_kcat(bootstrap: str, topic: str, security: Security, count: int) -> list[bytes]:
    options = [arg for k, v in security.librdkafka().items() for arg in ("-X", f"{k}={v}")]
    base = [kcat_path(), "-b", bootstrap, "-t", topic, *options]
    lines = b"\n".join(values(count, "kcat")) + b"\n"
    subprocess.run([*base, "-P"], input=lines, check=True, timeout=TIMEOUT, capture_output=True)
    out = subprocess.run(
        [*base, "-C", "-o", "beginning", "-c", str(count), "-e", "-q"],
        check=True,
        timeout=TIMEOUT,
        capture_output=True,
    )
    return out.stdout.splitlines()


def round_trip_kafkajs(bootstrap: str, topic: str, security: Security, count: int) -> list[bytes]:
    node = shutil.which("node")
    if node is None or not (KAFKAJS_DIR / "node_modules" / "kafkajs").exists():
        pytest.skip("node or kafkajs is not installed (cd compat_tests/kafkajs && npm ci)")
    script = Path(__file__).with_name("kafkajs_round_trip.js")
    config = {"bootstrap": bootstrap, "topic": topic, "count": count, **security.kafkajs()}
    env = {**os.environ, "NODE_PATH": str(KAFKAJS_DIR / "node_modules")}
    out = subprocess.run(
        [node, str(script), json.dumps(config)],
        check=False,
        timeout=TIMEOUT + 15,
        capture_output=True,
        env=env,
    )
    if out.returncode != 0:
        raise RuntimeError(f"kafkajs failed: {out.stderr.decode(errors='replace')[-2000:]}")
    return [v.encode() for v in json.loads(out.stdout.decode().strip().splitlines()[-1])]


ROUND_TRIPS = {
    "kafka-python": round_trip_kafka_python,
    "aiokafka": round_trip_aiokafka,
    "confluent-kafka": round_trip_confluent,
    "kcat": round_trip_kcat,
    "kafkajs": round_trip_kafkajs,
}
