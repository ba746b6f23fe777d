"""The ACL bindings in memory, indexed for the authorizer's lookups: by resource type and exact
name (LITERAL, including the wildcard ``*``) and by prefix (PREFIXED)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from kafkacompat.security.acl_binding import AclBinding
from kafkacompat.security.acls import WILDCARD_RESOURCE, PatternType, ResourceType

__all__ = ["AclIndex"]

_Key = tuple[ResourceType, str]


class AclIndex:
    """A set of bindings; `applicable` finds those whose pattern covers one resource."""

    def __init__(self) -> None:
        self._all: set[AclBinding] = set()
        self._literal: dict[_Key, set[AclBinding]] = {}
        self._prefixed: dict[_Key, set[AclBinding]] = {}
        #: The lengths of the PREFIXED names of each resource type (a prefix lookup tries each).
        self._prefix_lengths: dict[ResourceType, Counter[int]] = {}

    def __len__(self) -> int:
        return len(self._all)

    def __contains__(self, binding: object) -> bool:
        return binding in self._all

    def __iter__(self) -> Iterator[AclBinding]:
        return iter(list(self._all))

    def add(self, binding: AclBinding) -> bool:
        """Add ``binding``; False when it was already there."""
        if binding in self._all:
            return False
        self._all.add(binding)
        key = (binding.resource_type, binding.resource_name)
        if binding.pattern_type is PatternType.PREFIXED:
            self._prefixed.setdefault(key, set()).add(binding)
            lengths = self._prefix_lengths.setdefault(binding.resource_type, Counter())
            lengths[len(binding.resource_name)] += 1
        else:
            self._literal.setdefault(key, set()).add(binding)
        return True

    def remove(self, binding: AclBinding) -> None:
        self._all.discard(binding)
        key = (binding.resource_type, binding.resource_name)
        table = self._prefixed if binding.pattern_type is PatternType.PREFIXED else self._literal
        found = table.get(key)
        if found is None or binding not in found:
            return
        found.discard(binding)
        if not found:
            del table[key]
        if binding.pattern_type is PatternType.PREFIXED:
            lengths = self._prefix_lengths[binding.resource_type]
            lengths[len(binding.resource_name)] -= 1
            if not lengths[len(binding.resource_name)]:
                del lengths[len(binding.resource_name)]

    def applicable(self, resource_type: ResourceType, name: str) -> Iterator[AclBinding]:
        """The bindings whose pattern covers the resource ``name`` of ``resource_type``: the
        literal name, the wildcard ``*`` and every PREFIXED name that starts ``name``."""
        literal = self._literal
        found = literal.get((resource_type, name))
        if found:
            yield from found
        if name != WILDCARD_RESOURCE:
            found = literal.get((resource_type, WILDCARD_RESOURCE))
            if found:
                yield from found
        lengths = self._prefix_lengths.get(resource_type)
        if lengths:
            prefixed = self._prefixed
            for length in lengths:
                if length <= len(name):
                    found = prefixed.get((resource_type, name[:length]))
                    if found:
                        yield from found

    def of_type(self, resource_type: ResourceType) -> Iterator[AclBinding]:
        """Every binding on resources of ``resource_type``."""
        return (b for b in list(self._all) if b.resource_type == resource_type)
