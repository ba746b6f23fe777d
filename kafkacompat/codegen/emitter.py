"""What the decoder and encoder writers share: the per-module registry and per-version field facts.

The `Emitter` collects precompiled `struct.Struct` packers and the version functions of one
module; versions whose code comes out identical share one function.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kafkacompat.codegen.spec import FieldSpec, MessageSpec, StructSpec
from kafkacompat.codegen.types import FIXED


@dataclass
class Emitter:
    """Collects the module-level pieces while the version functions are written."""

    spec: MessageSpec
    structs_by_name: dict[str, StructSpec]
    packers: dict[str, str] = field(default_factory=dict)
    functions: list[str] = field(default_factory=list)
    # (kind, struct name, version) -> canonical function name
    canonical: dict[tuple[str, str, int], str] = field(default_factory=dict)
    # (kind, struct name, body with a placeholder name) -> canonical function name
    bodies: dict[tuple[str, str, str], str] = field(default_factory=dict)

    def packer(self, codes: str) -> str:
        name = f"_S_{codes.replace('?', 'o')}"
        self.packers[name] = f'{name} = struct.Struct(">{codes}")'
        return name

    def function_name(self, kind: str, struct_name: str, version: int) -> str:
        """The canonical ``kind`` function of the struct named ``struct_name`` at ``version``."""
        return self.canonical[(kind, struct_name, version)]

    def add(self, kind: str, struct: StructSpec, version: int, body: str) -> None:
        """Register a function body (written with ``{name}``), reusing an identical earlier one."""
        key = (kind, struct.name, body)
        existing = self.bodies.get(key)
        if existing is None:
            top = struct.name == self.spec.name
            existing = f"{kind}_v{version}" if top else f"_{kind}_{struct.name}_v{version}"
            self.bodies[key] = existing
            self.functions.append(body.replace("{name}", existing))
        self.canonical[(kind, struct.name, version)] = existing


class BodyWriter:
    """Base of the decoder and encoder writers: they share one module's `Emitter`."""

    def __init__(self, emit: Emitter) -> None:
        self.emit = emit
        self.spec = emit.spec


def is_flexible(spec: MessageSpec, f: FieldSpec, version: int) -> bool:
    """Whether ``f`` uses compact (flexible) encodings at ``version``."""
    if f.flexible is not None:
        return version in f.flexible
    return version in spec.flexible


def is_tagged(f: FieldSpec, version: int) -> bool:
    return f.tag is not None and version in f.tagged


@dataclass
class FieldLayout:
    """The fields of one struct at one version, in wire order.

    ``steps`` holds runs of adjacent fixed-width fields (lists, merged into one struct) and single
    other fields; ``tagged`` the tagged fields, written in the trailing tagged-field section.
    """

    steps: list[list[FieldSpec] | FieldSpec] = field(default_factory=list)
    tagged: list[FieldSpec] = field(default_factory=list)


def field_layout(struct: StructSpec, version: int) -> FieldLayout:
    """Split ``struct``'s fields present at ``version`` into fixed runs, single fields and tags."""
    layout = FieldLayout()
    run: list[FieldSpec] = []
    for f in struct.fields:
        if version not in f.versions:
            continue
        if is_tagged(f, version):
            layout.tagged.append(f)
        elif f.type in FIXED:
            run.append(f)
        else:
            if run:
                layout.steps.append(run)
                run = []
            layout.steps.append(f)
    if run:
        layout.steps.append(run)
    return layout
