"""A listener's TLS context from Kafka's ``ssl.*`` settings, with PEM key material.

Kafka's names and meanings: ``ssl.keystore.location`` is a PEM file with the private key and
the certificate chain, or ``ssl.keystore.key`` and ``ssl.keystore.certificate.chain`` hold the
PEM text itself; ``ssl.key.password`` decrypts an encrypted key; ``ssl.truststore.location`` /
``ssl.truststore.certificates`` are the CAs that client certificates must chain to;
``ssl.client.auth`` is none, requested or required. Each may be set per listener
(``listener.name.<listener>.ssl.*``).
"""

from __future__ import annotations

import os
import ssl
import tempfile
from collections.abc import Callable
from pathlib import Path

from kafkacompat.config import Config, ConfigError

__all__ = ["tls_context"]

_CLIENT_AUTH = {
    "none": ssl.CERT_NONE,
    "requested": ssl.CERT_OPTIONAL,
    "required": ssl.CERT_REQUIRED,
}
_PROTOCOLS = {
    "TLSv1.2": ssl.TLSVersion.TLSv1_2,
    "TLSv1.3": ssl.TLSVersion.TLSv1_3,
}


def tls_context(config: Config, listener: str) -> ssl.SSLContext:
    """The server-side context of ``listener``; ConfigError names what is missing or wrong."""

    def setting(name: str) -> str:
        return config.for_listener(listener, name).strip()

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _set_protocols(context, setting("ssl.enabled.protocols"))
    _load_keystore(context, listener, setting)
    _load_truststore(context, setting)
    client_auth = setting("ssl.client.auth").lower()
    if client_auth not in _CLIENT_AUTH:
        raise ConfigError(
            f"ssl.client.auth must be none, requested or required, got {client_auth!r}"
        )
    context.verify_mode = _CLIENT_AUTH[client_auth]
    if client_auth != "none" and not (
        setting("ssl.truststore.location") or setting("ssl.truststore.certificates")
    ):
        raise ConfigError(
            f"listener {listener}: ssl.client.auth={client_auth} needs a truststore "
            "(ssl.truststore.location or ssl.truststore.certificates)"
        )
    ciphers = setting("ssl.cipher.suites")
    if ciphers:
        _set_ciphers(context, ciphers)
    return context


def _set_protocols(context: ssl.SSLContext, text: str) -> None:
    wanted = [p.strip() for p in text.split(",") if p.strip()]
    unknown = [p for p in wanted if p not in _PROTOCOLS]
    if unknown or not wanted:
        raise ConfigError(
            f"ssl.enabled.protocols: {', '.join(unknown) or 'none given'} "
            f"(supported: {', '.join(_PROTOCOLS)})"
        )
    versions = sorted(_PROTOCOLS[p] for p in wanted)
    context.minimum_version = versions[0]
    context.maximum_version = versions[-1]


def _load_keystore(context: ssl.SSLContext, listener: str, get: Callable[[str], str]) -> None:
    kind = get("ssl.keystore.type").upper()
    location = get("ssl.keystore.location")
    key_text = get("ssl.keystore.key")
    chain_text = get("ssl.keystore.certificate.chain")
    password = get("ssl.key.password") or None
    if not (location or key_text):
        raise ConfigError(
            f"listener {listener} uses TLS but has no key: set ssl.keystore.type=PEM and "
            "ssl.keystore.location (or ssl.keystore.key and ssl.keystore.certificate.chain)"
        )
    if kind != "PEM":
        raise ConfigError(
            f"ssl.keystore.type={kind}: kafkacompat reads PEM key material only "
            "(set ssl.keystore.type=PEM)"
        )
    try:
        if location:
            context.load_cert_chain(location, password=password)
            return
        if not chain_text:
            raise ConfigError("ssl.keystore.key needs ssl.keystore.certificate.chain")
        with _private_file(chain_text) as chain, _private_file(key_text) as key:
            context.load_cert_chain(chain, key, password=password)
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(
            f"listener {listener}: cannot load the TLS key and chain: {exc}"
        ) from None


def _load_truststore(context: ssl.SSLContext, get: Callable[[str], str]) -> None:
    location = get("ssl.truststore.location")
    certificates = get("ssl.truststore.certificates")
    if not (location or certificates):
        return
    if get("ssl.truststore.type").upper() != "PEM":
        raise ConfigError("kafkacompat reads PEM truststores only (set ssl.truststore.type=PEM)")
    try:
        if location:
            context.load_verify_locations(cafile=location)
        if certificates:
            context.load_verify_locations(cadata=certificates)
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(f"cannot load the TLS truststore: {exc}") from None


def _set_ciphers(context: ssl.SSLContext, text: str) -> None:
    """Kafka names suites as IANA does (TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256); OpenSSL's names
    are accepted too. TLS 1.3 suites cannot be restricted here and are left as they are."""
    names = [_openssl_name(n.strip()) for n in text.split(",") if n.strip()]
    names = [n for n in names if n]
    if not names:
        return
    try:
        context.set_ciphers(":".join(names))
    except ssl.SSLError:
        raise ConfigError(f"ssl.cipher.suites: no usable suite in {text!r}") from None


def _openssl_name(name: str) -> str:
    if not name.startswith("TLS_"):
        return name
    if "_WITH_" not in name:
        return ""  # a TLS 1.3 suite
    exchange, _, cipher = name[4:].partition("_WITH_")
    cipher = (
        cipher.replace("AES_128_GCM", "AES128-GCM")
        .replace("AES_256_GCM", "AES256-GCM")
        .replace("AES_128_CBC", "AES128")
        .replace("AES_256_CBC", "AES256")
        .replace("CHACHA20_POLY1305_SHA256", "CHACHA20-POLY1305")
    )
    return f"{exchange}-{cipher}".replace("_", "-")


class _private_file:
    """PEM text in a file only this process can read, removed once loaded."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.path = ""

    def __enter__(self) -> str:
        fd, self.path = tempfile.mkstemp(suffix=".pem")
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(self.text)
        return self.path

    def __exit__(self, *exc: object) -> None:
        Path(self.path).unlink(missing_ok=True)
