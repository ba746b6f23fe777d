"""A group's durable form: `Group` to `StoredGroup` for writing, and back at start-up."""

from __future__ import annotations

from kafkacompat.coordinators.group import Group, GroupState, Member
from kafkacompat.coordinators.group_offsets import StoredGroup, StoredMember


def stored_group(group: Group) -> StoredGroup:
    """What is written for ``group``: its generation, leader, protocol and members."""
    return StoredGroup(
        protocol_type=group.protocol_type,
        generation_id=group.generation_id,
        protocol_name=group.protocol_name,
        leader_id=group.leader_id,
        state_timestamp=group.state_timestamp,
        members=[
            StoredMember(
                m.member_id,
                m.group_instance_id,
                m.client_id,
                m.client_host,
                m.rebalance_timeout_ms,
                m.session_timeout_ms,
                m.protocols,
                m.assignment,
            )
            for m in group.members.values()
        ],
    )


def restored_group(group_id: str, stored: StoredGroup) -> Group:
    """The stored group: Stable in its last generation if it had members, else Empty."""
    group = Group(group_id, state_timestamp=stored.state_timestamp)
    group.protocol_type = stored.protocol_type
    group.generation_id = stored.generation_id
    for sm in stored.members:
        group.add(
            Member(
                sm.member_id,
                sm.group_instance_id,
                sm.client_id,
                sm.client_host,
                sm.rebalance_timeout_ms,
                sm.session_timeout_ms,
                stored.protocol_type or "",
                sm.protocols,
                sm.assignment,
            )
        )
    if group.members:
        group.protocol_name = stored.protocol_name
        group.leader_id = stored.leader_id if stored.leader_id in group.members else None
        group.leader_id = group.leader_id or next(iter(group.members))
        group.state = GroupState.STABLE
    return group
