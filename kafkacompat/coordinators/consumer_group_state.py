"""A KIP-848 consumer group's state: members with their epochs, the group epoch, the target
assignment and who owns each partition now.

Plain data plus its invariants. The group epoch grows whenever what the assignor sees changes
(members, subscriptions, the subscribed topics' partitions); the target assignment is computed
for one group epoch (the assignment epoch); each member then reconciles towards its target
(`consumer_group_reconcile`). A partition is owned by at most one member at a time: by the member
it is assigned to, or by the member still to revoke it.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum

from kafkacompat.coordinators.assignors import Assignment

#: The member epochs of a heartbeat that leaves: for good, or (static members) for now.
LEAVE_EPOCH = -1
STATIC_LEAVE_EPOCH = -2


class MemberState(Enum):
    STABLE = "stable"
    #: Waiting for the member to revoke partitions that are no longer its.
    UNREVOKED_PARTITIONS = "unrevoked_partitions"
    #: At its target epoch, waiting for other members to revoke partitions now its.
    UNRELEASED_PARTITIONS = "unreleased_partitions"


class ConsumerGroupState(Enum):
    EMPTY = "Empty"
    ASSIGNING = "Assigning"
    RECONCILING = "Reconciling"
    STABLE = "Stable"
    DEAD = "Dead"


@dataclass(slots=True)
class ClassicMemberMetadata:
    """What a member using the classic protocol (JoinGroup/SyncGroup) inside a consumer group
    joined with: its session timeout and its protocols (name, embedded metadata) by preference."""

    session_timeout_ms: int
    protocols: list[tuple[str, bytes]]

    @property
    def protocol_name(self) -> str:
        """The protocol it is answered with: its preferred one."""
        return self.protocols[0][0]


@dataclass(slots=True)
class ConsumerMember:
    member_id: str
    instance_id: str | None = None
    rack_id: str | None = None
    client_id: str = ""
    client_host: str = ""
    rebalance_timeout_ms: int = 300_000
    subscribed_topic_names: tuple[str, ...] = ()
    subscribed_topic_regex: str | None = None
    server_assignor: str | None = None
    member_epoch: int = 0
    previous_member_epoch: int = 0
    state: MemberState = MemberState.STABLE
    #: What the member has been told it owns.
    assigned: Assignment = field(default_factory=dict)
    #: What it still owns but must revoke.
    pending_revocation: Assignment = field(default_factory=dict)
    #: Timers are never cancelled: a due timer counts only when its deadline is the current one.
    session_deadline: int = -1
    revocation_deadline: int = -1
    #: Set for a member using the classic protocol (None: the consumer protocol).
    classic: ClassicMemberMetadata | None = None
    #: A classic member's deadlines (not stored): to rejoin after REBALANCE_IN_PROGRESS, and to
    #: send SyncGroup after its JoinGroup; -1 when none is running.
    join_deadline: int = -1
    sync_deadline: int = -1

    def subscribes(self, topic: str) -> bool:
        if topic in self.subscribed_topic_names:
            return True
        regex = self.subscribed_topic_regex
        return regex is not None and compiled_regex(regex).fullmatch(topic) is not None


@dataclass(slots=True)
class ConsumerGroup:
    group_id: str
    group_epoch: int = 0
    assignment_epoch: int = 0
    members: dict[str, ConsumerMember] = field(default_factory=dict)
    #: Instance id -> member id of each static member.
    static_members: dict[str, str] = field(default_factory=dict)
    #: Each member's target assignment for the assignment epoch.
    target: dict[str, Assignment] = field(default_factory=dict)
    #: The subscribed topics as last seen: name -> (id, partition count).
    subscribed_topics: dict[str, tuple[uuid.UUID, int]] = field(default_factory=dict)
    #: The member owning each partition (assigned to it or pending its revocation).
    owners: dict[tuple[uuid.UUID, int], str] = field(default_factory=dict)
    assignor_name: str = "uniform"
    state_timestamp: int = -1
    #: What `subscribed_topics` was last matched against (not stored): the topics view (an
    #: immutable mapping: compared by identity) and the subscribed names and regexes.
    topics_seen: (
        tuple[Mapping[str, tuple[uuid.UUID, int]], frozenset[str], frozenset[str]] | None
    ) = None

    @property
    def state(self) -> ConsumerGroupState:
        if not self.members:
            return ConsumerGroupState.EMPTY
        if self.group_epoch > self.assignment_epoch:
            return ConsumerGroupState.ASSIGNING
        for member in self.members.values():
            stable = member.state is MemberState.STABLE
            if not stable or member.member_epoch != self.assignment_epoch:
                return ConsumerGroupState.RECONCILING
        return ConsumerGroupState.STABLE

    def uses_classic_protocol_only(self, except_member: str) -> bool:
        """Whether every member but ``except_member`` (itself using the consumer protocol)
        uses the classic protocol."""
        leaving = self.members.get(except_member)
        if leaving is None or leaving.classic is not None:
            return False
        return all(m.classic is not None for i, m in self.members.items() if i != except_member)

    def supports_classic_protocols(self, protocol_type: str, names: list[str]) -> bool:
        """Whether a classic member with these protocols may join: of the consumer protocol
        type, sharing a protocol with every classic member already in."""
        if protocol_type != "consumer" or not names:
            return False
        classic = [m.classic for m in self.members.values() if m.classic is not None]
        return any(all(any(n == name for n, _ in c.protocols) for c in classic) for name in names)

    def waiting_on_unreleased(self, member: ConsumerMember) -> bool:
        """Whether partitions of the member's target are still owned by another member."""
        if member.state is not MemberState.UNRELEASED_PARTITIONS:
            return False
        for topic, parts in self.target.get(member.member_id, {}).items():
            mine = member.assigned.get(topic, frozenset())
            for p in parts - mine:
                if self.owners.get((topic, p)) not in (None, member.member_id):
                    return True
        return False

    def bump_epoch(self) -> None:
        self.group_epoch += 1

    def add(self, member: ConsumerMember) -> None:
        self.members[member.member_id] = member
        if member.instance_id is not None:
            self.static_members[member.instance_id] = member.member_id

    def remove(self, member_id: str) -> ConsumerMember | None:
        """Drop a member, its target and every partition it owns."""
        member = self.members.pop(member_id, None)
        if member is None:
            return None
        if member.instance_id is not None and self.static_members.get(member.instance_id) == (
            member_id
        ):
            del self.static_members[member.instance_id]
        self.target.pop(member_id, None)
        self.release_all(member_id)
        return member

    def replace(self, old_id: str, new: ConsumerMember) -> None:
        """A static member's new member id takes over the old one's assignment and target."""
        old = self.members.pop(old_id)
        new.member_epoch = old.member_epoch
        new.previous_member_epoch = old.previous_member_epoch
        new.state = old.state
        new.assigned = old.assigned
        new.pending_revocation = old.pending_revocation
        if old_id in self.target:
            self.target[new.member_id] = self.target.pop(old_id)
        for tp, owner in list(self.owners.items()):
            if owner == old_id:
                self.owners[tp] = new.member_id
        self.add(new)

    def release_all(self, member_id: str) -> None:
        for tp in [tp for tp, owner in self.owners.items() if owner == member_id]:
            del self.owners[tp]

    def claim(self, member_id: str, assignment: Assignment) -> None:
        for topic, parts in assignment.items():
            for p in parts:
                self.owners[(topic, p)] = member_id

    def release(self, member_id: str, assignment: Assignment) -> None:
        for topic, parts in assignment.items():
            for p in parts:
                if self.owners.get((topic, p)) == member_id:
                    del self.owners[(topic, p)]

    def topic_names(self) -> dict[uuid.UUID, str]:
        return {tid: name for name, (tid, _) in self.subscribed_topics.items()}


_REGEX_CACHE: dict[str, re.Pattern[str]] = {}


def compiled_regex(regex: str) -> re.Pattern[str]:
    """The compiled subscription regex (RE2/Java syntax as far as Python's ``re`` shares it);
    raises `re.error` when it is not valid."""
    pattern = _REGEX_CACHE.get(regex)
    if pattern is None:
        pattern = re.compile(regex)
        if len(_REGEX_CACHE) < 1024:
            _REGEX_CACHE[regex] = pattern
    return pattern
