"""Incremental reconciliation of one member towards its target assignment (KIP-848).

A member moves to a new target in steps, each answered in a heartbeat:

1. partitions it owns that are no longer its are revoked first: it keeps its epoch and is told
   only the partitions it keeps (``UNREVOKED_PARTITIONS``) until a heartbeat shows it owns none
   of the revoked ones;
2. then it moves to the target epoch and is given the new partitions no other member owns any
   longer; the others follow once their owners revoke them (``UNRELEASED_PARTITIONS``);
3. once it has its whole target it is ``STABLE``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from kafkacompat.coordinators.assignors import Assignment
from kafkacompat.coordinators.consumer_group_state import ConsumerGroup, ConsumerMember, MemberState

__all__ = ["owns_any", "reconcile"]


def _minus(a: Assignment, b: Assignment) -> Assignment:
    out = {t: parts - b.get(t, frozenset()) for t, parts in a.items()}
    return {t: parts for t, parts in out.items() if parts}


def _intersect(a: Assignment, b: Assignment) -> Assignment:
    out = {t: parts & b.get(t, frozenset()) for t, parts in a.items()}
    return {t: parts for t, parts in out.items() if parts}


def _union(a: Assignment, b: Assignment) -> Assignment:
    out = dict(a)
    for t, parts in b.items():
        out[t] = out.get(t, frozenset()) | parts
    return out


def owns_any(owned: Iterable[tuple[uuid.UUID, Iterable[int]]], revoked: Assignment) -> bool:
    """Whether the partitions a member reports owning include any of ``revoked``."""
    for topic, parts in owned:
        pending = revoked.get(topic)
        if pending and not pending.isdisjoint(parts):
            return True
    return False


def reconcile(
    group: ConsumerGroup,
    member: ConsumerMember,
    owned: list[tuple[uuid.UUID, list[int]]] | None,
    now: int,
) -> None:
    """Advance ``member`` towards its target as far as it may go now.

    ``owned`` is what the member's heartbeat says it owns (None: not sent, nothing new).
    """
    if member.state is MemberState.UNREVOKED_PARTITIONS:
        if owned is None or owns_any(owned, member.pending_revocation):
            return
        group.release(member.member_id, member.pending_revocation)
        member.pending_revocation = {}
        member.revocation_deadline = -1
        member.state = MemberState.STABLE
    target = group.target.get(member.member_id, {})
    at_target = member.member_epoch == group.assignment_epoch and target == member.assigned
    if member.state is MemberState.STABLE and at_target:
        return
    revoke = _minus(member.assigned, target)
    if revoke:
        member.assigned = _intersect(member.assigned, target)
        member.pending_revocation = revoke
        member.state = MemberState.UNREVOKED_PARTITIONS
        member.revocation_deadline = now + member.rebalance_timeout_ms
        return
    wanted = _minus(target, member.assigned)
    free: dict[uuid.UUID, frozenset[int]] = {}
    for topic, parts in wanted.items():
        mine = frozenset(
            p for p in parts if group.owners.get((topic, p)) in (None, member.member_id)
        )
        if mine:
            free[topic] = mine
    member.assigned = _union(member.assigned, free)
    group.claim(member.member_id, free)
    if member.member_epoch != group.assignment_epoch:
        member.previous_member_epoch = member.member_epoch
        member.member_epoch = group.assignment_epoch
    unreleased = _minus(wanted, free)
    member.state = MemberState.UNRELEASED_PARTITIONS if unreleased else MemberState.STABLE
