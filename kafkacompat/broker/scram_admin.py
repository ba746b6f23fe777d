"""DescribeUserScramCredentials and AlterUserScramCredentials (KIP-554), with the checks and
error messages of Kafka's controller."""

from __future__ import annotations

from kafkacompat.broker.context import RequestContext
from kafkacompat.broker.router import handles
from kafkacompat.errors import ErrorCode
from kafkacompat.protocol.messages.alter_user_scram_credentials_request import (
    API_KEY as ALTER_USER_SCRAM_CREDENTIALS,
)
from kafkacompat.protocol.messages.alter_user_scram_credentials_request import (
    AlterUserScramCredentialsRequest,
    ScramCredentialDeletion,
    ScramCredentialUpsertion,
)
from kafkacompat.protocol.messages.alter_user_scram_credentials_response import (
    AlterUserScramCredentialsResponse,
    AlterUserScramCredentialsResult,
)
from kafkacompat.protocol.messages.describe_user_scram_credentials_request import (
    API_KEY as DESCRIBE_USER_SCRAM_CREDENTIALS,
)
from kafkacompat.protocol.messages.describe_user_scram_credentials_request import (
    DescribeUserScramCredentialsRequest,
)
from kafkacompat.protocol.messages.describe_user_scram_credentials_response import (
    CredentialInfo,
    DescribeUserScramCredentialsResponse,
    DescribeUserScramCredentialsResult,
)
from kafkacompat.security.acls import AclOperation
from kafkacompat.security.scram_credentials import (
    MAX_ITERATIONS,
    ScramCredential,
    ScramCredentialStore,
    ScramMechanism,
    credential_from_salted_password,
    scram_mechanism,
)

__all__ = ["alter_user_scram_credentials", "describe_user_scram_credentials"]

_CLUSTER_DENIED = "Cluster authorization failed."
_ALTERED_TWICE = "A user credential cannot be altered twice in the same request"

#: (error code, message) of a refused change.
_Error = tuple[int, str]


def describe_user_scram_credentials(
    store: ScramCredentialStore, names: list[str] | None
) -> list[DescribeUserScramCredentialsResult]:
    """One result per distinct user asked for (every user with a credential when none is)."""
    known = store.users()
    if not names:
        wanted = {user: False for user in sorted(known)}
    else:
        wanted = {}
        for name in names:
            wanted[name] = name in wanted
    results = []
    for user, twice in wanted.items():
        if twice:
            results.append(
                DescribeUserScramCredentialsResult(
                    user,
                    ErrorCode.DUPLICATE_RESOURCE,
                    "Cannot describe SCRAM credentials for the same user twice in a single "
                    f"request: {user}",
                )
            )
        elif user not in known:
            results.append(
                DescribeUserScramCredentialsResult(
                    user,
                    ErrorCode.RESOURCE_NOT_FOUND,
                    f"Attempt to describe a user credential that does not exist: {user}",
                )
            )
        else:
            infos = [CredentialInfo(m.type, iterations) for m, iterations in known[user]]
            results.append(DescribeUserScramCredentialsResult(user, 0, None, infos))
    return results


@handles(DESCRIBE_USER_SCRAM_CREDENTIALS)
async def handle_describe_user_scram_credentials(
    context: RequestContext, request: DescribeUserScramCredentialsRequest
) -> DescribeUserScramCredentialsResponse:
    names = None if request.users is None else [u.name for u in request.users]
    if not context.authorize_cluster(AclOperation.DESCRIBE):
        denied = ErrorCode.CLUSTER_AUTHORIZATION_FAILED
        return DescribeUserScramCredentialsResponse(
            0,
            denied,
            _CLUSTER_DENIED,
            [DescribeUserScramCredentialsResult(n, denied, _CLUSTER_DENIED) for n in names or []],
        )
    store = context.services.security.scram_credentials
    return DescribeUserScramCredentialsResponse(
        0, 0, None, describe_user_scram_credentials(store, names)
    )


def _check_name_and_mechanism(name: str, mechanism: ScramMechanism | None) -> _Error | None:
    if not name:
        return ErrorCode.UNACCEPTABLE_CREDENTIAL, "Username must not be empty"
    if mechanism is None:
        return ErrorCode.UNSUPPORTED_SASL_MECHANISM, "Unknown SCRAM mechanism"
    return None


def _check_upsertion(upsertion: ScramCredentialUpsertion) -> _Error | None:
    mechanism = scram_mechanism(upsertion.mechanism)
    error = _check_name_and_mechanism(upsertion.name, mechanism)
    if error is not None:
        return error
    assert mechanism is not None
    if upsertion.iterations < mechanism.min_iterations:
        return ErrorCode.UNACCEPTABLE_CREDENTIAL, "Too few iterations"
    if upsertion.iterations > MAX_ITERATIONS:
        return ErrorCode.UNACCEPTABLE_CREDENTIAL, "Too many iterations"
    return None


def _check_deletion(
    store: ScramCredentialStore, deletion: ScramCredentialDeletion
) -> _Error | None:
    mechanism = scram_mechanism(deletion.mechanism)
    error = _check_name_and_mechanism(deletion.name, mechanism)
    if error is not None:
        return error
    assert mechanism is not None
    if not store.contains(deletion.name, mechanism):
        return (
            ErrorCode.RESOURCE_NOT_FOUND,
            "Attempt to delete a user credential that does not exist",
        )
    return None


def alter_user_scram_credentials(
    store: ScramCredentialStore, request: AlterUserScramCredentialsRequest
) -> list[AlterUserScramCredentialsResult]:
    """Apply the request's valid changes at once; one result per user named. A user named more
    than once in the request is refused altogether (DUPLICATE_RESOURCE)."""
    errors: dict[str, _Error] = {}
    deletions: dict[str, ScramCredentialDeletion] = {}
    upsertions: dict[str, ScramCredentialUpsertion] = {}
    for deletion in request.deletions:
        name = deletion.name
        if name in errors:
            continue
        if deletions.pop(name, None) is not None:
            errors[name] = (ErrorCode.DUPLICATE_RESOURCE, _ALTERED_TWICE)
        elif (error := _check_deletion(store, deletion)) is not None:
            errors[name] = error
        else:
            deletions[name] = deletion
    for upsertion in request.upsertions:
        name = upsertion.name
        if name in errors:
            continue
        if deletions.pop(name, None) is not None or upsertions.pop(name, None) is not None:
            errors[name] = (ErrorCode.DUPLICATE_RESOURCE, _ALTERED_TWICE)
        elif (error := _check_upsertion(upsertion)) is not None:
            errors[name] = error
        else:
            upsertions[name] = upsertion
    removed: list[tuple[str, ScramMechanism]] = []
    for name, deletion in deletions.items():
        mechanism = scram_mechanism(deletion.mechanism)
        assert mechanism is not None
        removed.append((name, mechanism))
    added: list[tuple[str, ScramMechanism, ScramCredential]] = []
    for name, upsertion in upsertions.items():
        mechanism = scram_mechanism(upsertion.mechanism)
        assert mechanism is not None
        credential = credential_from_salted_password(
            mechanism, bytes(upsertion.salt), bytes(upsertion.salted_password), upsertion.iterations
        )
        added.append((name, mechanism, credential))
    store.apply(added, removed)
    results = [AlterUserScramCredentialsResult(name, 0, None) for name in deletions]
    results += [AlterUserScramCredentialsResult(name, 0, None) for name in upsertions]
    results += [AlterUserScramCredentialsResult(n, code, msg) for n, (code, msg) in errors.items()]
    return results


@handles(ALTER_USER_SCRAM_CREDENTIALS)
async def handle_alter_user_scram_credentials(
    context: RequestContext, request: AlterUserScramCredentialsRequest
) -> AlterUserScramCredentialsResponse:
    if not context.authorize_cluster(AclOperation.ALTER):
        denied = ErrorCode.CLUSTER_AUTHORIZATION_FAILED
        names = dict.fromkeys(
            [d.name for d in request.deletions] + [u.name for u in request.upsertions]
        )
        return AlterUserScramCredentialsResponse(
            0, [AlterUserScramCredentialsResult(n, denied, _CLUSTER_DENIED) for n in names]
        )
    store = context.services.security.scram_credentials
    return AlterUserScramCredentialsResponse(0, alter_user_scram_credentials(store, request))
