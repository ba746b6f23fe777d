"""Writes the per-version ``decode`` functions of one message module.

Each function reads only the fields of its version from ``(buf: memoryview, pos: int)`` and returns
the struct and the new position; fields absent from the version take their defaults.
"""

from __future__ import annotations

from kafkacompat.codegen.emitter import BodyWriter, field_layout, is_flexible
from kafkacompat.codegen.spec import FieldSpec, StructSpec
from kafkacompat.codegen.types import FIXED, default_expr


def _scalar_reader(type_: str, flexible: bool, nullable: bool) -> str:
    if type_ == "uuid":
        return "read_uuid"
    if type_ == "records":
        return "read_compact_records" if flexible else "read_records"
    prefix = "read_compact_" if flexible else "read_"
    return prefix + ("nullable_" if nullable else "") + type_


class DecoderWriter(BodyWriter):
    """Generates decode function bodies, registering packers and struct decoders on ``emit``."""

    def _read_value(self, f: FieldSpec, version: int, target: str, indent: str) -> list[str]:
        """Lines that read one (non-fixed-run) value of field ``f`` into ``target``."""
        flexible = is_flexible(self.spec, f, version)
        nullable = version in f.nullable
        if f.is_array:
            return self._read_array(f, version, target, indent, flexible, nullable)
        if f.is_struct:
            fn = self.emit.function_name("decode", f.type, version)
            if nullable:
                return [
                    f"{indent}(marker,) = INT8.unpack_from(buf, pos)",
                    f"{indent}pos += 1",
                    f"{indent}if marker < 0:",
                    f"{indent}    {target} = None",
                    f"{indent}else:",
                    f"{indent}    {target}, pos = {fn}(buf, pos)",
                ]
            return [f"{indent}{target}, pos = {fn}(buf, pos)"]
        if f.type in FIXED:
            code, width = FIXED[f.type]
            packer = self.emit.packer(code)
            return [
                f"{indent}({target},) = {packer}.unpack_from(buf, pos)",
                f"{indent}pos += {width}",
            ]
        reader = _scalar_reader(f.type, flexible, nullable)
        return [f"{indent}{target}, pos = {reader}(buf, pos)"]

    def _read_array(
        self, f: FieldSpec, version: int, target: str, indent: str, flexible: bool, nullable: bool
    ) -> list[str]:
        length_reader = "read_compact_array_length" if flexible else "read_array_length"
        lines = [f"{indent}count, pos = {length_reader}(buf, pos)", f"{indent}if count < 0:"]
        if nullable:
            lines.append(f"{indent}    {target} = None")
        else:
            lines.append(
                f'{indent}    raise ProtocolError("null array in non-nullable field {f.name}")'
            )
        lines.append(f"{indent}else:")
        element = f.element_type
        inner = indent + "    "
        if element in FIXED:
            code, width = FIXED[element]
            lines.append(
                f'{inner}{target}, pos = read_fixed_array(buf, pos, "{code}", {width}, count)'
            )
            return lines
        if f.is_struct:
            call = f"{self.emit.function_name('decode', element, version)}(buf, pos)"
        else:
            call = f"{_scalar_reader(element, flexible, False)}(buf, pos)"
        lines += [
            f"{inner}{target} = []",
            f"{inner}append = {target}.append",
            f"{inner}for _ in range(count):",
            f"{inner}    item, pos = {call}",
            f"{inner}    append(item)",
        ]
        return lines

    def body(self, struct: StructSpec, version: int) -> str:
        """The decode function of ``struct`` at ``version``, named by the placeholder ``{name}``."""
        lines = ["def {name}(buf: memoryview, pos: int) -> tuple[" + struct.name + ", int]:"]
        layout = field_layout(struct, version)
        for step in layout.steps:
            if isinstance(step, list):
                codes = "".join(FIXED[f.type][0] for f in step)
                width = sum(FIXED[f.type][1] for f in step)
                names = ", ".join(f"v_{f.name}" for f in step)
                lines.append(f"    ({names},) = {self.emit.packer(codes)}.unpack_from(buf, pos)")
                lines.append(f"    pos += {width}")
            else:
                lines += self._read_value(step, version, f"v_{step.name}", "    ")
        args = [f"v_{f.name}" if version in f.versions else default_expr(f) for f in struct.fields]
        if not self.spec.flexible.empty:
            if version in self.spec.flexible:
                lines += self._read_tagged(layout.tagged, version)
                args.append("unknown")
            else:
                args.append("None")
        lines.append(f"    return {struct.name}({', '.join(args)}), pos")
        return "\n".join(lines)

    def _read_tagged(self, tagged: list[FieldSpec], version: int) -> list[str]:
        lines = ["    unknown = None"]
        lines += [f"    v_{f.name} = {default_expr(f)}" for f in tagged]
        # Almost every tagged-field section is empty: one zero byte, read without a call.
        loop = [
            "tag_count, pos = read_uvarint(buf, pos)",
            "for _ in range(tag_count):",
            "    tag, pos = read_uvarint(buf, pos)",
            "    size, pos = read_uvarint(buf, pos)",
        ]
        keyword = "if"
        for f in sorted(tagged, key=lambda t: t.tag or 0):
            loop.append(f"    {keyword} tag == {f.tag}:")
            loop.append("        end = pos + size")
            loop += [
                line[4:] for line in self._read_value(f, version, f"v_{f.name}", "            ")
            ]
            loop.append("        pos = end")
            keyword = "elif"
        if tagged:
            loop.append("    else:")
            loop.append("        unknown, pos = read_unknown_tag(buf, pos, tag, size, unknown)")
        else:
            loop.append("    unknown, pos = read_unknown_tag(buf, pos, tag, size, unknown)")
        return [
            *lines,
            "    if buf[pos]:",
            *(f"        {line}" for line in loop),
            "    else:",
            "        pos += 1",
        ]
