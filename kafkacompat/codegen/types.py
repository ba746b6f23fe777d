"""How each spec type maps to Python: annotations, defaults, struct codes and wire readers."""

from __future__ import annotations

from kafkacompat.codegen.spec import FieldSpec

#: Fixed-width types: struct format code and width in bytes.
FIXED = {
    "bool": ("?", 1),
    "int8": ("b", 1),
    "int16": ("h", 2),
    "uint16": ("H", 2),
    "int32": ("i", 4),
    "int64": ("q", 8),
    "float64": ("d", 8),
}

_SCALAR_ANNOTATIONS = {
    "bool": "bool",
    "int8": "int",
    "int16": "int",
    "uint16": "int",
    "int32": "int",
    "int64": "int",
    "float64": "float",
    "uuid": "uuid.UUID",
    "string": "str",
    "bytes": "bytes",
    "records": "memoryview | bytes",
}


def is_nullable_anywhere(f: FieldSpec) -> bool:
    return not f.nullable.empty or f.default == "null"


def annotation(f: FieldSpec, *, record_source: bool = False) -> str:
    """The field's type; ``record_source``: records may also be a `RecordSource` (responses)."""
    element = _SCALAR_ANNOTATIONS.get(f.element_type, f.element_type)
    if record_source and f.element_type == "records":
        element += " | RecordSource"
    text = f"list[{element}]" if f.is_array else element
    if is_nullable_anywhere(f) or f.type == "records":
        text += " | None"
    return text


def _scalar_default(type_: str, default: str | None) -> str:
    if default == "null":
        return "None"
    if type_ in ("int8", "int16", "uint16", "int32", "int64"):
        return str(int(default, 0)) if default else "0"
    if type_ == "bool":
        return "True" if default == "true" else "False"
    if type_ == "float64":
        return repr(float(default)) if default else "0.0"
    if type_ == "string":
        return repr(default or "")
    if type_ == "bytes":
        return 'b""'
    if type_ == "records":
        return "None"
    if type_ == "uuid":
        return "ZERO_UUID"
    raise ValueError(f"no default for type {type_}")


def default_expr(f: FieldSpec) -> str:
    """A Python expression for the field's default value (a fresh object for mutable ones)."""
    if f.is_array:
        return "None" if f.default == "null" else "[]"
    if f.is_struct:
        return "None" if f.default == "null" else f"{f.type}()"
    return _scalar_default(f.type, f.default)


def dataclass_default(f: FieldSpec) -> str:
    """The default as written in a dataclass field declaration."""
    expr = default_expr(f)
    if expr == "[]":
        return "field(default_factory=list)"
    if expr.endswith("()"):
        return f"field(default_factory={expr[:-2]})"
    return expr
