"""Writes the per-version ``encode`` functions of one message module.

Each function appends only the fields of its version to ``out: bytearray``; tagged fields are
written when they differ from their default, together with any unknown tagged fields kept on decode.
"""

from __future__ import annotations

from kafkacompat.codegen.emitter import BodyWriter, field_layout, is_flexible
from kafkacompat.codegen.spec import FieldSpec, StructSpec
from kafkacompat.codegen.types import FIXED, default_expr


def _scalar_writer(type_: str, flexible: bool) -> str:
    if type_ == "uuid":
        return "write_uuid"
    if type_ == "string":
        return "write_compact_string" if flexible else "write_string"
    if type_ == "records":
        return "write_compact_records" if flexible else "write_records"
    return "write_compact_bytes" if flexible else "write_bytes"


class EncoderWriter(BodyWriter):
    """Generates encode function bodies, registering packers and struct encoders on ``emit``."""

    def _write_value(self, f: FieldSpec, version: int, value: str, indent: str) -> list[str]:
        flexible = is_flexible(self.spec, f, version)
        nullable = version in f.nullable
        if f.is_array:
            return self._write_array(f, version, value, indent, flexible)
        if f.is_struct:
            fn = self.emit.function_name("encode", f.type, version)
            if nullable:
                return [
                    f"{indent}if {value} is None:",
                    f'{indent}    out += b"\\xff"',
                    f"{indent}else:",
                    f'{indent}    out += b"\\x01"',
                    f"{indent}    {fn}({value}, out)",
                ]
            return [f"{indent}{fn}({value}, out)"]
        if f.type in FIXED:
            packer = self.emit.packer(FIXED[f.type][0])
            return [f"{indent}out += {packer}.pack({value})"]
        return [f"{indent}{_scalar_writer(f.type, flexible)}(out, {value})"]

    def _write_array(
        self, f: FieldSpec, version: int, value: str, indent: str, flexible: bool
    ) -> list[str]:
        length_writer = "write_compact_array_length" if flexible else "write_array_length"
        lines = [
            f"{indent}items = {value}",
            f"{indent}if items is None:",
            f"{indent}    {length_writer}(out, -1)",
            f"{indent}else:",
            f"{indent}    {length_writer}(out, len(items))",
        ]
        inner = indent + "    "
        element = f.element_type
        if element in FIXED:
            lines.append(f'{inner}write_fixed_array(out, "{FIXED[element][0]}", items)')
        elif f.is_struct:
            fn = self.emit.function_name("encode", element, version)
            lines += [f"{inner}for item in items:", f"{inner}    {fn}(item, out)"]
        else:
            writer = _scalar_writer(element, flexible)
            lines += [f"{inner}for item in items:", f"{inner}    {writer}(out, item)"]
        return lines

    def body(self, struct: StructSpec, version: int) -> str:
        """The encode function of ``struct`` at ``version``, named by the placeholder ``{name}``."""
        lines = ["def {name}(obj: " + struct.name + ", out: bytearray) -> None:"]
        layout = field_layout(struct, version)
        for step in layout.steps:
            if isinstance(step, list):
                codes = "".join(FIXED[f.type][0] for f in step)
                args = ", ".join(f"obj.{f.name}" for f in step)
                lines.append(f"    out += {self.emit.packer(codes)}.pack({args})")
            else:
                lines += self._write_value(step, version, f"obj.{step.name}", "    ")
        if version in self.spec.flexible:
            lines += self._write_tagged(layout.tagged, version)
        if len(lines) == 1:
            lines.append("    pass")
        return "\n".join(lines)

    def _write_tagged(self, tagged: list[FieldSpec], version: int) -> list[str]:
        if not tagged:
            return [
                "    if obj.unknown_tagged_fields:",
                "        write_tagged_fields(out, list(obj.unknown_tagged_fields))",
                "    else:",
                "        out.append(0)",
            ]
        lines = ["    tagged = list(obj.unknown_tagged_fields or ())"]
        for f in tagged:
            lines += [
                f"    if obj.{f.name} != {default_expr(f)}:",
                "        outer = out",
                "        out = bytearray()",
            ]
            lines += self._write_value(f, version, f"obj.{f.name}", "        ")
            lines += [f"        tagged.append(({f.tag}, bytes(out)))", "        out = outer"]
        lines.append("    write_tagged_fields(out, tagged)")
        return lines
