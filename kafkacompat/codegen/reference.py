"""Reading Apache Kafka's JSON message definitions: the reference our specs are checked against.

Only facts are taken (names, types, version ranges, nullability, tags, defaults); descriptions and
comments are dropped. `python -m kafkacompat.codegen.reference REF_DIR OUT_DIR` writes spec files
for the messages a broker serves, which is how `protocol_specs/` was first laid down.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

from kafkacompat.codegen.spec import (
    NO_VERSIONS,
    FieldSpec,
    MessageSpec,
    StructSpec,
    VersionRange,
    camel_to_snake,
    module_name,
)

EXTRA_MESSAGES = (
    "RequestHeader",
    "ResponseHeader",
    "ConsumerProtocolSubscription",
    "ConsumerProtocolAssignment",
)

_LINE_COMMENT = re.compile(r"^\s*//.*$", re.MULTILINE)


def _range(raw: dict[str, Any], key: str) -> VersionRange:
    value = raw.get(key)
    return VersionRange.parse(value) if value is not None else NO_VERSIONS


def _default(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _field(raw: dict[str, Any]) -> FieldSpec:
    flexible = raw.get("flexibleVersions")
    return FieldSpec(
        name=camel_to_snake(raw["name"]),
        type=raw["type"],
        versions=VersionRange.parse(raw["versions"]),
        nullable=_range(raw, "nullableVersions"),
        default=_default(raw.get("default")),
        tag=raw.get("tag"),
        tagged=_range(raw, "taggedVersions"),
        flexible=VersionRange.parse(flexible) if flexible is not None else None,
        fields=[_field(f) for f in raw["fields"]] if "fields" in raw else None,
    )


def parse_reference(text: str) -> MessageSpec:
    """Parse one reference JSON definition into our model."""
    raw = json.loads(_LINE_COMMENT.sub("", text))
    return MessageSpec(
        kind=raw["type"],
        name=raw["name"],
        versions=VersionRange.parse(raw["validVersions"]),
        flexible=VersionRange.parse(raw["flexibleVersions"]),
        api_key=raw.get("apiKey"),
        deprecated=_range(raw, "deprecatedVersions"),
        latest_unstable=bool(raw.get("latestVersionUnstable", False)),
        fields=[_field(f) for f in raw["fields"]],
        common_structs=[
            StructSpec(
                s["name"], [_field(f) for f in s["fields"]], VersionRange.parse(s["versions"])
            )
            for s in raw.get("commonStructs", [])
        ],
    )


def load_reference(path: Path) -> MessageSpec:
    return parse_reference(path.read_text(encoding="utf-8"))


def broker_message_names(ref_dir: Path) -> list[str]:
    """Requests served on the broker listener, their responses, and the extra schemas we use."""
    names: list[str] = []
    for path in sorted(ref_dir.glob("*Request.json")):
        raw = json.loads(_LINE_COMMENT.sub("", path.read_text(encoding="utf-8")))
        if "broker" in raw.get("listeners", []):
            names += [raw["name"], raw["name"].removesuffix("Request") + "Response"]
    return names + list(EXTRA_MESSAGES)


def _format_field(f: FieldSpec, indent: int) -> list[str]:
    parts = [f.name, f.type, str(f.versions)]
    if not f.nullable.empty:
        parts.append(f"nullable={f.nullable}")
    if f.default is not None:
        parts.append("default=" + (f.default or '""'))
    if f.tag is not None:
        parts += [f"tag={f.tag}", f"tagged={f.tagged}"]
    if f.flexible is not None:
        parts.append(f"flexible={f.flexible}")
    lines = [" " * indent + " ".join(parts)]
    for child in f.fields or []:
        lines += _format_field(child, indent + 2)
    return lines


def format_spec(spec: MessageSpec) -> str:
    """Render a spec in our format."""
    head = [spec.kind, spec.name]
    if spec.api_key is not None:
        head.append(f"api_key={spec.api_key}")
    head += [f"versions={spec.versions}", f"flexible={spec.flexible}"]
    if not spec.deprecated.empty:
        head.append(f"deprecated={spec.deprecated}")
    if spec.latest_unstable:
        head.append("unstable")
    lines = [" ".join(head)]
    for f in spec.fields:
        lines += _format_field(f, 0)
    for struct in spec.common_structs:
        lines.append(f"struct {struct.name} versions={struct.versions}")
        for f in struct.fields:
            lines += _format_field(f, 2)
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    ref_dir, out_dir = Path(argv[0]), Path(argv[1])
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in broker_message_names(ref_dir):
        spec = load_reference(ref_dir / f"{name}.json")
        (out_dir / f"{module_name(name)}.spec").write_text(format_spec(spec), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
