"""sasl.jaas.config as Kafka parses it (StreamTokenizer rules) and the PLAIN users in it."""

from __future__ import annotations

import pytest

from kafkacompat.config import ConfigError
from kafkacompat.security.jaas import (
    PLAIN_LOGIN_MODULE,
    JaasError,
    parse_jaas_config,
    parse_jaas_entry,
    plain_users,
)

KAFKA_EXAMPLE = (
    "org.apache.kafka.common.security.plain.PlainLoginModule required "
    'username="admin" password="admin-secret" '
    'user_admin="admin-secret" user_alice="alice-secret";'
)


def test_the_line_kafka_documents() -> None:
    entry = parse_jaas_entry(KAFKA_EXAMPLE)
    assert entry.login_module == PLAIN_LOGIN_MODULE
    assert entry.control_flag == "required"
    assert dict(entry.options) == {
        "username": "admin",
        "password": "admin-secret",
        "user_admin": "admin-secret",
        "user_alice": "alice-secret",
    }
    assert plain_users([entry]) == {"admin": "admin-secret", "alice": "alice-secret"}


def test_quoting_escapes_comments_and_bare_words() -> None:
    text = (
        "/* block */ org.apache.kafka.common.security.plain.PlainLoginModule REQUIRED\n"
        "  user_a='single \\'q\\' and \\\\ \\t' // to the end of the line\n"
        '  user_b="octal \\101\\0609 end" user_c=bare-word.v2$ user_d="" ;'
    )
    entry = parse_jaas_entry(text)
    assert entry.control_flag == "required"
    assert dict(entry.options) == {
        "user_a": "single 'q' and \\ \t",
        "user_b": "octal A09 end",
        "user_c": "bare-word.v2$",
        "user_d": "",
    }


def test_a_quoted_value_ends_at_the_end_of_its_line() -> None:
    entry = parse_jaas_entry('m required user_x="no closing quote\n ;')
    assert dict(entry.options) == {"user_x": "no closing quote"}


def test_several_entries_and_only_plain_modules_hold_users() -> None:
    entries = parse_jaas_config(
        'other.Module optional user_eve="e"; '
        f'{PLAIN_LOGIN_MODULE} sufficient user_bob="b" user_bob="b2";'
        f'{PLAIN_LOGIN_MODULE} requisite user_bob="ignored" user_carol="c";'
    )
    assert [e.control_flag for e in entries] == ["optional", "sufficient", "requisite"]
    assert plain_users(entries) == {"bob": "b2", "carol": "c"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "Login module not specified in JAAS config"),
        ("  // only a comment", "Login module not specified in JAAS config"),
        ("a.Module", "Login module control flag not specified in JAAS config"),
        ("a.Module 42;", "Login module control flag is not available in the JAAS config"),
        ("a.Module mandatory;", "Invalid login module control flag 'mandatory' in JAAS config"),
        ('a.Module required user_a="x"', "JAAS config entry not terminated by semi-colon"),
        ("a.Module required user_a=8192;", "Value not specified for key 'user_a' in JAAS config"),
        ("a.Module required user_a;", "Value not specified for key 'user_a' in JAAS config"),
        ('a.Module required 7="x";', "Value not specified for key 'null' in JAAS config"),
    ],
)
def test_what_kafka_refuses(text: str, message: str) -> None:
    with pytest.raises(JaasError) as caught:
        parse_jaas_config(text)
    assert str(caught.value) == message
    assert isinstance(caught.value, ConfigError)


def test_a_broker_login_context_has_exactly_one_module() -> None:
    with pytest.raises(
        JaasError, match=r"^JAAS config property contains 2 login modules, should be 1 module$"
    ):
        parse_jaas_entry("a.M required; b.M required;")


def test_errors_never_show_a_secret() -> None:
    with pytest.raises(JaasError) as caught:
        parse_jaas_config('a.Module required user_a="s3cret" user_b')
    assert "s3cret" not in str(caught.value)
    entry = parse_jaas_entry('a.Module required user_a="s3cret";')
    assert "s3cret" not in repr(entry)
