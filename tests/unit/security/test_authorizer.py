"""The standard authorizer's decisions: matching, DENY over ALLOW, implied operations, super
users, the no-ACL default, authorizeByResourceType, durability."""

from __future__ import annotations

from pathlib import Path

import pytest

from kafkacompat.config import Config, ConfigError
from kafkacompat.security.acl_binding import AclBinding, AclBindingFilter
from kafkacompat.security.acls import (
    CLUSTER_NAME,
    AclOperation,
    PatternType,
    PermissionType,
    ResourceType,
)
from kafkacompat.security.authorizer import Authorizer, build_authorizer
from kafkacompat.storage.state_store import StateStore

STANDARD = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
Op = AclOperation
T = ResourceType
ALICE = "User:alice"
HOST = "10.0.0.1"


def make(tmp_path: Path, **settings: str | bool) -> Authorizer:
    config = Config(data_dir=tmp_path, settings={"authorizer.class.name": STANDARD, **settings})
    found = build_authorizer(config, StateStore(tmp_path / "state", fsync=False).namespace("acls"))
    assert found is not None
    return found


def acl(
    name: str = "orders",
    op: AclOperation = Op.READ,
    permission: PermissionType = PermissionType.ALLOW,
    *,
    principal: str = ALICE,
    host: str = "*",
    resource: ResourceType = T.TOPIC,
    pattern: PatternType = PatternType.LITERAL,
) -> AclBinding:
    return AclBinding(resource, name, pattern, principal, host, op, permission)


def allowed(auth: Authorizer, op: AclOperation, name: str = "orders", **kw: object) -> bool:
    principal = str(kw.get("principal", ALICE))
    resource = kw.get("resource", T.TOPIC)
    assert isinstance(resource, ResourceType)
    return auth.authorize(principal, str(kw.get("host", HOST)), op, resource, name)


def test_no_authorizer_and_unknown_classes(tmp_path: Path) -> None:
    ns = StateStore(tmp_path, fsync=False).namespace("acls")
    assert build_authorizer(Config(data_dir=tmp_path), ns) is None
    legacy = Config(
        data_dir=tmp_path,
        settings={"authorizer.class.name": "kafka.security.authorizer.AclAuthorizer"},
    )
    assert build_authorizer(legacy, ns) is not None
    with pytest.raises(ConfigError):
        build_authorizer(Config(data_dir=tmp_path, settings={"authorizer.class.name": "x.Y"}), ns)


def test_default_deny_and_literal_allow(tmp_path: Path) -> None:
    auth = make(tmp_path)
    assert not allowed(auth, Op.READ)
    assert auth.create_acls([acl()]) == [None]
    assert allowed(auth, Op.READ)
    assert not allowed(auth, Op.WRITE)
    assert not allowed(auth, Op.READ, "orders2")
    assert not allowed(auth, Op.READ, principal="User:bob")


def test_implied_operations(tmp_path: Path) -> None:
    auth = make(tmp_path)
    auth.create_acls([acl(op=Op.WRITE), acl("cfg", Op.ALTER_CONFIGS)])
    assert allowed(auth, Op.DESCRIBE)
    assert allowed(auth, Op.DESCRIBE_CONFIGS, "cfg")
    assert not allowed(auth, Op.DESCRIBE_CONFIGS)
    assert not allowed(auth, Op.ALTER_CONFIGS)
    auth.create_acls([acl("all", Op.ALL)])
    assert all(allowed(auth, op, "all") for op in (Op.READ, Op.WRITE, Op.DELETE, Op.ALTER))


def test_deny_wins_and_deny_does_not_imply(tmp_path: Path) -> None:
    auth = make(tmp_path)
    auth.create_acls([acl(op=Op.ALL), acl(op=Op.READ, permission=PermissionType.DENY)])
    assert not allowed(auth, Op.READ)
    assert allowed(auth, Op.WRITE)
    # A DENY of READ does not deny DESCRIBE.
    assert allowed(auth, Op.DESCRIBE)
    auth.create_acls([acl("*", Op.ALL, PermissionType.DENY, principal="User:*", host=HOST)])
    assert not allowed(auth, Op.WRITE)
    assert allowed(auth, Op.WRITE, host="10.0.0.2")


def test_wildcards_and_prefixes(tmp_path: Path) -> None:
    auth = make(tmp_path)
    auth.create_acls(
        [
            acl("*", Op.READ, principal="User:*"),
            acl("pay", Op.WRITE, pattern=PatternType.PREFIXED),
            acl("payments-secret", Op.WRITE, PermissionType.DENY, pattern=PatternType.PREFIXED),
            acl("x", Op.WRITE, host="10.9.9.9"),
        ]
    )
    assert allowed(auth, Op.READ, "anything", principal="User:bob")
    assert allowed(auth, Op.WRITE, "payments")
    assert allowed(auth, Op.WRITE, "pay")
    assert not allowed(auth, Op.WRITE, "pa")
    assert not allowed(auth, Op.WRITE, "payments-secret-1")
    assert not allowed(auth, Op.WRITE, "x")
    assert allowed(auth, Op.WRITE, "x", host="10.9.9.9")
    # The literal name "*" is not a prefix pattern.
    assert not allowed(auth, Op.WRITE, "other")


def test_super_users_and_allow_if_no_acl(tmp_path: Path) -> None:
    auth = make(
        tmp_path, **{"super.users": "User:admin; User:ops", "allow.everyone.if.no.acl.found": True}
    )
    auth.create_acls([acl(op=Op.ALL, permission=PermissionType.DENY, principal="User:*")])
    assert allowed(auth, Op.READ, principal="User:ops")
    assert not allowed(auth, Op.READ)
    # No ACL covers "free": allowed; one for someone else covers "guarded": denied.
    assert allowed(auth, Op.READ, "free")
    auth.create_acls([acl("guarded", principal="User:bob")])
    assert not allowed(auth, Op.READ, "guarded")
    assert allowed(auth, Op.READ, "guarded", principal="User:bob")


def test_cluster_and_other_resource_types(tmp_path: Path) -> None:
    auth = make(tmp_path)
    auth.create_acls([acl(CLUSTER_NAME, Op.IDEMPOTENT_WRITE, resource=T.CLUSTER)])
    assert allowed(auth, Op.IDEMPOTENT_WRITE, CLUSTER_NAME, resource=T.CLUSTER)
    assert not allowed(auth, Op.IDEMPOTENT_WRITE, "orders")
    auth.create_acls([acl("grp", Op.READ, resource=T.GROUP)])
    assert allowed(auth, Op.DESCRIBE, "grp", resource=T.GROUP)
    assert auth.authorized_operations(ALICE, HOST, T.GROUP, "grp") == (1 << 3) | (1 << 8)


def test_authorize_any(tmp_path: Path) -> None:
    auth = make(tmp_path)
    assert not auth.authorize_any(ALICE, HOST, Op.WRITE, T.TOPIC)
    auth.create_acls([acl("t1", Op.WRITE)])
    assert auth.authorize_any(ALICE, HOST, Op.WRITE, T.TOPIC)
    auth.create_acls([acl("t", Op.WRITE, PermissionType.DENY, pattern=PatternType.PREFIXED)])
    assert not auth.authorize_any(ALICE, HOST, Op.WRITE, T.TOPIC)
    auth.create_acls([acl("p", Op.WRITE, pattern=PatternType.PREFIXED)])
    assert auth.authorize_any(ALICE, HOST, Op.WRITE, T.TOPIC)
    auth.create_acls([acl("*", Op.WRITE, PermissionType.DENY)])
    assert not auth.authorize_any(ALICE, HOST, Op.WRITE, T.TOPIC)


def test_authorize_any_wildcard_deny_beats_wildcard_allow(tmp_path: Path) -> None:
    auth = make(tmp_path)
    auth.create_acls([acl("*", Op.WRITE, principal="User:*")])
    assert auth.authorize_any(ALICE, HOST, Op.WRITE, T.TOPIC)
    auth.create_acls([acl("*", Op.ALL, PermissionType.DENY)])
    assert not auth.authorize_any(ALICE, HOST, Op.WRITE, T.TOPIC)
    # Another principal's DENY does not count; a super user is always allowed.
    assert auth.authorize_any("User:bob", HOST, Op.WRITE, T.TOPIC)
    admin = make(tmp_path, **{"super.users": "User:admin"})
    assert admin.authorize_any("User:admin", HOST, Op.WRITE, T.TOPIC)


def test_create_validation(tmp_path: Path) -> None:
    auth = make(tmp_path)
    errors = auth.create_acls(
        [
            acl("", Op.READ),
            acl("other", Op.ALTER, resource=T.CLUSTER),
            acl(op=Op.ANY),
            acl(pattern=PatternType.MATCH),
            acl(resource=T.ANY),
            acl(permission=PermissionType.ANY),
            acl(principal="alice"),
            acl(),
            acl(),
        ]
    )
    assert [e is None for e in errors] == [False] * 7 + [True, True]
    assert "CLUSTER" in (errors[1] or "")
    assert len(auth.index) == 1


def test_filters_delete_and_durability(tmp_path: Path) -> None:
    auth = make(tmp_path)
    bindings = [
        acl(),
        acl("*"),
        acl("ord", Op.WRITE, pattern=PatternType.PREFIXED),
        acl("other", principal="User:bob"),
    ]
    auth.create_acls(bindings)
    everything = AclBindingFilter(
        T.ANY, None, PatternType.ANY, None, None, Op.ANY, PermissionType.ANY
    )
    assert sorted(auth.acls(everything), key=str) == sorted(bindings, key=str)
    match = AclBindingFilter(
        T.TOPIC, "orders", PatternType.MATCH, None, None, Op.ANY, PermissionType.ANY
    )
    assert set(auth.acls(match)) == set(bindings[:3])
    literal = AclBindingFilter(
        T.TOPIC, "orders", PatternType.LITERAL, None, None, Op.ANY, PermissionType.ANY
    )
    assert auth.acls(literal) == [bindings[0]]
    bob = AclBindingFilter(
        T.ANY, None, PatternType.ANY, "User:bob", None, Op.ANY, PermissionType.ANY
    )
    assert auth.delete_acls([bob, bob]) == [[bindings[3]], [bindings[3]]]
    reopened = make(tmp_path)
    assert set(reopened.acls(everything)) == set(bindings[:3])
    assert allowed(reopened, Op.WRITE, "orders")


def test_unknown_filters() -> None:
    f = AclBindingFilter(T.UNKNOWN, None, PatternType.ANY, None, None, Op.ANY, PermissionType.ANY)
    assert f.unknown_reason() is not None
    f = AclBindingFilter(T.ANY, None, PatternType.ANY, None, None, Op.UNKNOWN, PermissionType.ANY)
    assert f.unknown_reason() is not None
