"""Populated message objects built from the specs, for round-trip and truncation tests.

`populate` fills every field present at a version with a distinctive value that differs from the
field's default (so a field silently dropped or defaulted by a codec cannot go unnoticed), nested
arrays with two elements, tagged fields included. With ``nulls=True`` every field that is nullable
at that version is None instead.
"""

from __future__ import annotations

import importlib
import random
import uuid
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

from kafkacompat.codegen.spec import FieldSpec, MessageSpec, load_all, module_name
from kafkacompat.codegen.types import default_expr

ROOT = Path(__file__).resolve().parents[2]
SPEC_DIR = ROOT / "protocol_specs"

_INT_RANGES = {
    "int8": (-(2**7), 2**7 - 1),
    "int16": (-(2**15), 2**15 - 1),
    "uint16": (0, 2**16 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "int64": (-(2**63), 2**63 - 1),
}
_TEXT = ["topic", "grüße", "日本語", "a.b-c_d", "x" * 130]


@dataclass(frozen=True)
class Message:
    spec: MessageSpec
    module: ModuleType

    @property
    def id(self) -> str:
        return module_name(self.spec.name)

    def cases(self) -> list[tuple[Message, int]]:
        return [(self, v) for v in self.spec.version_list]


@cache
def all_messages() -> list[Message]:
    found = []
    for spec in load_all(SPEC_DIR):
        module = importlib.import_module(f"kafkacompat.protocol.messages.{module_name(spec.name)}")
        found.append(Message(spec, module))
    return found


def all_cases() -> list[tuple[Message, int]]:
    return [case for m in all_messages() for case in m.cases()]


def case_id(case: object) -> str:
    if isinstance(case, Message):
        return case.id
    return f"v{case}"


class Populator:
    """Builds objects of one message's dataclasses; deterministic for a given seed."""

    def __init__(self, message: Message, version: int, *, nulls: bool = False, seed: int = 0):
        self.message = message
        self.version = version
        self.nulls = nulls
        self.rng = random.Random(f"{message.spec.name}/{version}/{nulls}/{seed}")
        self.commons = {s.name: s for s in message.spec.common_structs}

    def build(self) -> Any:
        return self.struct(self.message.spec.name, self.message.spec.fields)

    def struct(self, name: str, fields: list[FieldSpec]) -> Any:
        cls = getattr(self.message.module, name)
        obj = cls()
        for f in fields:
            if self.version in f.versions:
                setattr(obj, f.name, self.field(f))
        return obj

    def field(self, f: FieldSpec) -> Any:
        if self.nulls and self.version in f.nullable:
            return None
        if f.is_array:
            return [self.element(f) for _ in range(2)]
        value = self.element(f)
        for _ in range(20):  # a value equal to the default would hide a dropped field
            if value != _default_value(self.message.module, f):
                return value
            value = self.element(f)
        raise AssertionError(f"no non-default value for {f.name}")

    def element(self, f: FieldSpec) -> Any:
        type_ = f.element_type
        if f.is_struct:
            fields = f.fields if f.fields is not None else self.commons[type_].fields
            return self.struct(type_, fields)
        return self.scalar(type_)

    def scalar(self, type_: str) -> Any:
        rng = self.rng
        if type_ in _INT_RANGES:
            low, high = _INT_RANGES[type_]
            return rng.choice([low, high, rng.randint(low, high), rng.randint(1, 127)])
        if type_ == "bool":
            return rng.random() < 0.5
        if type_ == "float64":
            return rng.choice([0.5, -1.25e300, 3.141592653589793])
        if type_ == "uuid":
            return uuid.UUID(int=rng.getrandbits(128) | 1)
        if type_ == "string":
            return f"{rng.choice(_TEXT)}-{rng.randint(0, 999)}"
        if type_ in ("bytes", "records"):
            return bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 40)))
        raise AssertionError(type_)


def _default_value(module: ModuleType, f: FieldSpec) -> Any:
    return eval(default_expr(f), vars(module))


def populate(message: Message, version: int, *, nulls: bool = False, seed: int = 0) -> Any:
    return Populator(message, version, nulls=nulls, seed=seed).build()


def populate_everything(message: Message, seed: int = 0) -> Any:
    """Every field of every version set, to check that an encoder writes only its version's."""
    spec = message.spec
    pop = Populator(message, spec.version_list[-1], seed=seed)

    def full(name: str, fields: list[FieldSpec]) -> Any:
        obj = getattr(message.module, name)()
        for f in fields:
            if f.is_struct:
                sub = f.fields if f.fields is not None else pop.commons[f.element_type].fields
                value = full(f.element_type, sub)
                setattr(obj, f.name, [value, full(f.element_type, sub)] if f.is_array else value)
            elif f.is_array:
                setattr(obj, f.name, [pop.scalar(f.element_type) for _ in range(2)])
            else:
                setattr(obj, f.name, pop.scalar(f.type))
        return obj

    return full(spec.name, spec.fields)


def strip_to_version(message: Message, version: int, obj: Any) -> Any:
    """A copy of ``obj`` with every field absent at ``version`` reset to its default."""
    commons = {s.name: s for s in message.spec.common_structs}

    def strip(name: str, fields: list[FieldSpec], value: Any) -> Any:
        out = getattr(message.module, name)()
        for f in fields:
            if version not in f.versions:
                continue
            v = getattr(value, f.name)
            if f.is_struct and v is not None:
                sub = f.fields if f.fields is not None else commons[f.element_type].fields
                v = (
                    [strip(f.element_type, sub, e) for e in v]
                    if f.is_array
                    else strip(f.element_type, sub, v)
                )
            setattr(out, f.name, v)
        return out

    return strip(message.spec.name, message.spec.fields, obj)
