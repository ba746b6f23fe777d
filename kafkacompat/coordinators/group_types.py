"""Group types, and what the coordinator asks of each group-type state machine.

Groups share one id space and each has a type: ``classic`` (JoinGroup/SyncGroup/Heartbeat) or
KIP-848's ``consumer`` (ConsumerGroupHeartbeat), each a sibling module implementing
`GroupTypeModule`, registered in `GroupCoordinator.group_types`; the coordinator asks every module
there for Describe/List/DeleteGroups, routes due timers by their key's owner (the group type), and
asks a group's own module to validate offset commits and deletes and to say how its offsets age.
"""

from __future__ import annotations

from typing import Protocol

from kafkacompat.coordinators.group import GroupDescription
from kafkacompat.coordinators.group_timers import TimerKey
from kafkacompat.coordinators.offset_manager import ExpiryRule
from kafkacompat.errors import ErrorCode

CLASSIC = "classic"
CONSUMER = "consumer"


class GroupTypeModule(Protocol):
    """The state machine of one group type; each group id asked about is one it holds."""

    #: The type's name: its key in the coordinator's type table and the owner of its timers.
    group_type: str

    def has_group(self, group_id: str) -> bool: ...

    def group_ids(self) -> list[str]: ...

    def describe_group(self, group_id: str) -> GroupDescription: ...

    def list_groups(self) -> list[tuple[str, str, str]]:
        """(group id, protocol type, state) of every live group of this type."""
        ...

    def delete_group(self, group_id: str) -> ErrorCode:
        """DeleteGroups for one group: it goes, with its offsets, only when it allows."""
        ...

    def on_timer(self, deadline: int, key: TimerKey, now: int) -> None:
        """A due timer this type scheduled (``key.owner`` is its type); stale ones are ignored."""
        ...

    def validate_offset_commit(
        self,
        group_id: str,
        member_id: str,
        group_instance_id: str | None,
        generation_id: int,
        now: int,
    ) -> ErrorCode:
        """Whether this member may commit offsets now (a commit may count as a heartbeat)."""
        ...

    def validate_offset_delete(self, group_id: str) -> tuple[ErrorCode, frozenset[str]]:
        """Whether offsets may be deleted, and the topics whose offsets must stay."""
        ...

    def offset_expiry(self, group_id: str) -> ExpiryRule | None:
        """How the group's offsets age now; None while none of them may expire."""
        ...

    def delete_if_empty(self, group_id: str) -> None:
        """Remove a group left without offsets, if it has no members either."""
        ...
