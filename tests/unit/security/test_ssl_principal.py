"""Certificate subjects as Kafka names them, and ssl.principal.mapping.rules."""

from __future__ import annotations

import pytest

from kafkacompat.config import ConfigError
from kafkacompat.security.ssl_principal import PrincipalMapper, subject_name

SUBJECT = (
    (("countryName", "US"),),
    (("organizationName", "Example, Inc"),),
    (("organizationalUnitName", "Dev"),),
    (("commonName", "alice"),),
)


def test_subject_is_written_as_rfc_2253_last_name_first() -> None:
    assert subject_name(SUBJECT) == "CN=alice,OU=Dev,O=Example\\, Inc,C=US"


def test_multi_valued_names_and_unknown_attributes() -> None:
    subject = ((("commonName", "a"), ("userId", "7")), (("1.2.3.4", " lead"),))
    assert subject_name(subject) == "1.2.3.4=\\ lead,CN=a+UID=7"


@pytest.mark.parametrize(
    ("rules", "expected"),
    [
        ("DEFAULT", "CN=alice,OU=Dev,O=Example\\, Inc,C=US"),
        ("RULE:^CN=(.*?),OU=(.*?),.*$/$1@$2/", "alice@Dev"),
        ("RULE:^CN=(.*?),OU=(.*?),.*$/$1@$2/U", "ALICE@DEV"),
        ("RULE:^CN=bob,.*$/bob/, RULE:^CN=(.*?),.*$/$1/L, DEFAULT", "alice"),
        ("RULE:^CN=bob,.*$/bob/,DEFAULT", "CN=alice,OU=Dev,O=Example\\, Inc,C=US"),
    ],
)
def test_mapping_rules(rules: str, expected: str) -> None:
    assert PrincipalMapper(rules).name(subject_name(SUBJECT)) == expected


@pytest.mark.parametrize("rules", ["RULE:^CN=(.*$/x/", "RULE:a/b/X", "NONSENSE"])
def test_bad_rules_are_refused(rules: str) -> None:
    with pytest.raises(ConfigError):
        PrincipalMapper(rules)
