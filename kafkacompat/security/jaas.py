"""JAAS configuration text as Kafka reads it from ``sasl.jaas.config``.

One or more entries ``<login module> <control flag> (<option>=<value>)* ;`` tokenized the way
Java's StreamTokenizer does for Kafka: ``//`` and ``/* */`` comments, single- or double-quoted
values with backslash escapes, bare words (letters, digits, ``. - _ $``); a bare number is not a
value. Error messages never quote the text: it holds passwords.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from kafkacompat.config import ConfigError

__all__ = [
    "PLAIN_LOGIN_MODULE",
    "JaasEntry",
    "JaasError",
    "parse_jaas_config",
    "parse_jaas_entry",
    "plain_users",
]

PLAIN_LOGIN_MODULE = "org.apache.kafka.common.security.plain.PlainLoginModule"
CONTROL_FLAGS = ("required", "requisite", "sufficient", "optional")
#: PlainLoginModule's option prefix for the users a broker accepts: ``user_<name>="<password>"``.
USER_PREFIX = "user_"

_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}


class JaasError(ConfigError):
    """JAAS configuration text that Kafka would refuse (the message names no value)."""


@dataclass(frozen=True, slots=True)
class JaasEntry:
    login_module: str
    control_flag: str
    options: Mapping[str, str] = field(repr=False)


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # "word", "quoted", "number" or "char"
    text: str


def _is_word_start(c: str) -> bool:
    """Letters, ``_`` and ``$`` (and, as in Java, every character from U+00A0 on)."""
    return (c.isascii() and c.isalpha()) or c in "_$" or ord(c) >= 0xA0


def _is_word_part(c: str) -> bool:
    return _is_word_start(c) or c in _NUMBER_CHARS


_DIGITS = "0123456789"
_NUMBER_CHARS = _DIGITS + ".-"


def _quoted(text: str, pos: int, quote: str) -> tuple[str, int]:
    """The value of a quoted string starting after its opening quote; it ends at the closing
    quote or at the end of the line, as StreamTokenizer has it."""
    out = []
    while pos < len(text) and text[pos] != quote and text[pos] not in "\r\n":
        c = text[pos]
        pos += 1
        if c == "\\" and pos < len(text):
            c = text[pos]
            pos += 1
            if c in "01234567":
                digits = c
                limit = 3 if c <= "3" else 2
                while len(digits) < limit and pos < len(text) and text[pos] in "01234567":
                    digits += text[pos]
                    pos += 1
                c = chr(int(digits, 8))
            else:
                c = _ESCAPES.get(c, c)
        out.append(c)
    if pos < len(text) and text[pos] == quote:
        pos += 1
    return "".join(out), pos


def _number_end(text: str, pos: int) -> int:
    """Where a number starting at ``pos`` ends (digits and at most one point); ``pos`` itself
    when it is a lone minus sign, which StreamTokenizer returns as a character."""
    end = pos
    if text[pos] == "-":
        if not text[pos + 1 : pos + 2] or text[pos + 1] not in _DIGITS + ".":
            return pos
        end += 1
    seen_point = False
    while end < len(text) and (text[end] in _DIGITS or (text[end] == "." and not seen_point)):
        seen_point = seen_point or text[end] == "."
        end += 1
    return end


def _tokens(text: str) -> Iterator[_Token]:
    pos = 0
    while pos < len(text):
        c = text[pos]
        if c <= " ":
            pos += 1
        elif text.startswith("/*", pos):
            end = text.find("*/", pos + 2)
            pos = len(text) if end < 0 else end + 2
        elif c == "/":  # "//" and a lone "/" (a comment character) both end at the line's end
            while pos < len(text) and text[pos] not in "\r\n":
                pos += 1
        elif c in "\"'":
            value, pos = _quoted(text, pos + 1, c)
            yield _Token("quoted", value)
        elif c in _NUMBER_CHARS:
            end = _number_end(text, pos)
            if end == pos:
                yield _Token("char", c)
                pos += 1
            else:
                yield _Token("number", text[pos:end])
                pos = end
        elif _is_word_start(c):
            end = pos + 1
            while end < len(text) and _is_word_part(text[end]):
                end += 1
            yield _Token("word", text[pos:end])
            pos = end
        else:
            yield _Token("char", c)
            pos += 1


def _value(token: _Token | None) -> str | None:
    """A token's string value (None for numbers and single characters, as in Java)."""
    if token is None or token.kind not in ("word", "quoted"):
        return None
    return token.text


def parse_jaas_config(text: str) -> list[JaasEntry]:
    """Every entry of a JAAS configuration (JaasError when Kafka would refuse it)."""
    tokens = _tokens(text)
    entries = []
    for first in tokens:
        module = _value(first)
        flag_token = next(tokens, None)
        if flag_token is None:
            raise JaasError("Login module control flag not specified in JAAS config")
        flag = _value(flag_token)
        if flag is None:
            raise JaasError("Login module control flag is not available in the JAAS config")
        if flag.lower() not in CONTROL_FLAGS:
            raise JaasError(f"Invalid login module control flag '{flag}' in JAAS config")
        options: dict[str, str] = {}
        terminated = False
        for token in tokens:
            if token.kind == "char" and token.text == ";":
                terminated = True
                break
            key = _value(token)
            equals = next(tokens, None)
            value = _value(next(tokens, None)) if equals == _Token("char", "=") else None
            if key is None or value is None:
                name = "null" if key is None else key
                raise JaasError(f"Value not specified for key '{name}' in JAAS config")
            options[key] = value
        if not terminated:
            raise JaasError("JAAS config entry not terminated by semi-colon")
        if not module:
            raise JaasError("Login module not specified in JAAS config")
        entries.append(JaasEntry(module, flag.lower(), options))
    if not entries:
        raise JaasError("Login module not specified in JAAS config")
    return entries


def parse_jaas_entry(text: str) -> JaasEntry:
    """The one login module of a broker's ``sasl.jaas.config`` (Kafka refuses more or fewer)."""
    entries = parse_jaas_config(text)
    if len(entries) != 1:
        raise JaasError(
            f"JAAS config property contains {len(entries)} login modules, should be 1 module"
        )
    return entries[0]


def plain_users(entries: list[JaasEntry]) -> dict[str, str]:
    """The users PLAIN accepts (name -> password): ``user_<name>`` options of PlainLoginModule
    entries (Kafka looks only there)."""
    users: dict[str, str] = {}
    for entry in entries:
        if entry.login_module != PLAIN_LOGIN_MODULE:
            continue
        for key, value in entry.options.items():
            if key.startswith(USER_PREFIX):
                users.setdefault(key[len(USER_PREFIX) :], value)
    return users
