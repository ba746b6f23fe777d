"""The principal of a TLS client certificate: its subject as an RFC 2253 name, mapped by
``ssl.principal.mapping.rules`` as Kafka maps it.

Rules are ``DEFAULT`` (the whole name) or ``RULE:pattern/replacement/[LU]`` (a regular
expression over the name; ``$1`` in the replacement is a group; ``L``/``U`` change case),
tried in order, separated by commas; the first whose pattern matches decides.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from kafkacompat.config import ConfigError

__all__ = ["PrincipalMapper", "subject_name"]

#: RFC 2253's short names for the attributes Python reports by long name.
_SHORT_NAMES = {
    "commonName": "CN",
    "localityName": "L",
    "stateOrProvinceName": "ST",
    "organizationName": "O",
    "organizationalUnitName": "OU",
    "countryName": "C",
    "streetAddress": "STREET",
    "domainComponent": "DC",
    "userId": "UID",
}
_SPECIAL = re.compile(r'([,+"\\<>;])')


def _escape(value: str) -> str:
    value = _SPECIAL.sub(r"\\\1", value)
    if value.startswith(("#", " ")):
        value = "\\" + value
    if value.endswith(" ") and not value.endswith("\\ "):
        value = value[:-1] + "\\ "
    return value


def subject_name(subject: Sequence[Sequence[tuple[str, str]]]) -> str:
    """``ssl.getpeercert()['subject']`` as Java's ``X500Principal.getName()`` writes it: the
    last relative name first, attributes joined by commas (``CN=alice,OU=dev,O=Example``)."""
    parts = []
    for rdn in reversed(subject):
        parts.append("+".join(f"{_SHORT_NAMES.get(k, k)}={_escape(v)}" for k, v in rdn))
    return ",".join(parts)


@dataclass(frozen=True, slots=True)
class _Rule:
    pattern: re.Pattern[str] | None  # None: DEFAULT
    replacement: str = ""
    case: str = ""

    def apply(self, name: str) -> str | None:
        if self.pattern is None:
            return name
        if not self.pattern.fullmatch(name):
            return None
        result = self.pattern.sub(self.replacement, name)
        if self.case == "L":
            return result.lower()
        if self.case == "U":
            return result.upper()
        return result


_RULE = re.compile(r"RULE:((?:\\.|[^/\\])*)/((?:\\.|[^/\\])*)/([LU]?)")


class PrincipalMapper:
    """``ssl.principal.mapping.rules``, parsed once."""

    def __init__(self, rules: str) -> None:
        self.rules = _parse(rules)

    def name(self, distinguished_name: str) -> str:
        """The principal name for a certificate subject (without ``User:``)."""
        for rule in self.rules:
            mapped = rule.apply(distinguished_name)
            if mapped is not None:
                return mapped
        return distinguished_name


def _parse(text: str) -> list[_Rule]:
    rules: list[_Rule] = []
    rest = text.strip()
    while rest:
        if rest.startswith("DEFAULT"):
            rules.append(_Rule(None))
            rest = rest[len("DEFAULT") :]
        else:
            match = _RULE.match(rest)
            if match is None:
                raise ConfigError(f"bad ssl.principal.mapping.rules entry at {rest!r}")
            pattern, replacement, case = match.groups()
            try:
                compiled = re.compile(pattern)
            except re.error as exc:
                raise ConfigError(f"bad pattern in ssl.principal.mapping.rules: {exc}") from None
            rules.append(_Rule(compiled, re.sub(r"\$(\d)", r"\\\1", replacement), case))
            rest = rest[match.end() :]
        rest = rest.strip()
        if rest.startswith(","):
            rest = rest[1:].strip()
        elif rest:
            raise ConfigError(f"bad ssl.principal.mapping.rules entry at {rest!r}")
    return rules or [_Rule(None)]
