"""The model of a message spec and the parser of our `protocol_specs/*.spec` format.

A spec file describes one message. Its first line names the message::

    request MetadataRequest api_key=3 versions=0-12 flexible=9+ deprecated=0-3

then one line per field, nested fields indented by two spaces more than their parent::

    topics []MetadataRequestTopic 0+ nullable=1+
      name string 0+ nullable=10+

A field line is ``name type versions`` followed by optional ``nullable=R``, ``default=V``,
``tag=N tagged=R`` and ``flexible=R``. Structs shared by several fields of the message follow the
fields as ``struct Name versions=R`` blocks. Version ranges are ``N+``, ``N-M``, ``N`` or ``none``.
Lines starting with ``#`` are comments.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

PRIMITIVE_TYPES = frozenset(
    {
        "bool",
        "int8",
        "int16",
        "uint16",
        "int32",
        "int64",
        "float64",
        "uuid",
        "string",
        "bytes",
        "records",
    }
)
MESSAGE_KINDS = frozenset({"request", "response", "header", "data"})


@dataclass(frozen=True, slots=True)
class VersionRange:
    """An inclusive range of versions; ``high`` is None when open-ended, and empty for ``none``."""

    low: int
    high: int | None
    empty: bool = False

    @classmethod
    def parse(cls, text: str) -> VersionRange:
        if text == "none":
            return cls(0, -1, empty=True)
        if text.endswith("+"):
            return cls(int(text[:-1]), None)
        if "-" in text:
            low, high = text.split("-", 1)
            return cls(int(low), int(high))
        return cls(int(text), int(text))

    def __contains__(self, version: object) -> bool:
        if self.empty or not isinstance(version, int):
            return False
        return version >= self.low and (self.high is None or version <= self.high)

    def __str__(self) -> str:
        if self.empty:
            return "none"
        if self.high is None:
            return f"{self.low}+"
        if self.high == self.low:
            return str(self.low)
        return f"{self.low}-{self.high}"


NO_VERSIONS = VersionRange(0, -1, empty=True)


@dataclass(slots=True)
class FieldSpec:
    """One field of a struct; ``fields`` is set when the field's struct is defined inline."""

    name: str
    type: str
    versions: VersionRange
    nullable: VersionRange = NO_VERSIONS
    default: str | None = None
    tag: int | None = None
    tagged: VersionRange = NO_VERSIONS
    flexible: VersionRange | None = None
    fields: list[FieldSpec] | None = None

    @property
    def is_array(self) -> bool:
        return self.type.startswith("[]")

    @property
    def element_type(self) -> str:
        return self.type[2:] if self.is_array else self.type

    @property
    def is_struct(self) -> bool:
        return self.element_type not in PRIMITIVE_TYPES


@dataclass(slots=True)
class StructSpec:
    """A named struct: the message itself, an inline struct or a common struct."""

    name: str
    fields: list[FieldSpec]
    versions: VersionRange


@dataclass(slots=True)
class MessageSpec:
    """A whole spec file."""

    kind: str
    name: str
    versions: VersionRange
    flexible: VersionRange
    api_key: int | None = None
    deprecated: VersionRange = NO_VERSIONS
    latest_unstable: bool = False
    fields: list[FieldSpec] = field(default_factory=list)
    common_structs: list[StructSpec] = field(default_factory=list)

    @property
    def version_list(self) -> list[int]:
        assert self.versions.high is not None, "a message has a closed version range"
        return list(range(self.versions.low, self.versions.high + 1))

    def structs(self) -> list[StructSpec]:
        """Every struct of the message, the message itself first, then in definition order."""
        found = [StructSpec(self.name, self.fields, self.versions)]

        def walk(fields: list[FieldSpec]) -> None:
            for f in fields:
                if f.fields is not None:
                    found.append(StructSpec(f.element_type, f.fields, f.versions))
                    walk(f.fields)

        walk(self.fields)
        for common in self.common_structs:
            found.append(common)
            walk(common.fields)
        return found


class SpecSyntaxError(ValueError):
    """A spec file that does not follow the format."""


_NAME = re.compile(r"[a-z][a-z0-9_]*\Z")
_TYPE = re.compile(r"(\[\])?[A-Za-z][A-Za-z0-9]*\Z")


def _options(tokens: list[str], where: str) -> dict[str, str]:
    options: dict[str, str] = {}
    for token in tokens:
        key, sep, value = token.partition("=")
        if not sep:
            if key == "unstable":
                options[key] = "true"
                continue
            raise SpecSyntaxError(f"{where}: expected key=value, got {token!r}")
        options[key] = value
    return options


def _parse_field(line: str, where: str) -> FieldSpec:
    tokens = line.split()
    if len(tokens) < 3:
        raise SpecSyntaxError(f"{where}: a field needs a name, a type and versions")
    name, type_, versions, *rest = tokens
    if not _NAME.match(name) or not _TYPE.match(type_):
        raise SpecSyntaxError(f"{where}: bad field name or type")
    opts = _options(rest, where)
    unknown = set(opts) - {"nullable", "default", "tag", "tagged", "flexible"}
    if unknown:
        raise SpecSyntaxError(f"{where}: unknown options {sorted(unknown)}")
    default = opts.get("default")
    if default == '""':
        default = ""
    return FieldSpec(
        name=name,
        type=type_,
        versions=VersionRange.parse(versions),
        nullable=VersionRange.parse(opts.get("nullable", "none")),
        default=default,
        tag=int(opts["tag"]) if "tag" in opts else None,
        tagged=VersionRange.parse(opts.get("tagged", "none")),
        flexible=VersionRange.parse(opts["flexible"]) if "flexible" in opts else None,
    )


def parse_spec(text: str, source: str = "<spec>") -> MessageSpec:
    """Parse the text of one spec file."""
    lines = [
        (n, raw.rstrip())
        for n, raw in enumerate(text.splitlines(), 1)
        if raw.strip() and not raw.lstrip().startswith("#")
    ]
    if not lines:
        raise SpecSyntaxError(f"{source}: empty spec")
    n, head = lines[0]
    kind, name, *rest = head.split()
    if kind not in MESSAGE_KINDS:
        raise SpecSyntaxError(f"{source}:{n}: unknown message kind {kind!r}")
    opts = _options(rest, f"{source}:{n}")
    spec = MessageSpec(
        kind=kind,
        name=name,
        versions=VersionRange.parse(opts["versions"]),
        flexible=VersionRange.parse(opts.get("flexible", "none")),
        api_key=int(opts["api_key"]) if "api_key" in opts else None,
        deprecated=VersionRange.parse(opts.get("deprecated", "none")),
        latest_unstable="unstable" in opts,
    )
    # Each stack entry: (indent of its children, list the children go into).
    stack: list[tuple[int, list[FieldSpec]]] = [(0, spec.fields)]
    last: FieldSpec | None = None
    for n, line in lines[1:]:
        where = f"{source}:{n}"
        indent = len(line) - len(line.lstrip(" "))
        body = line.strip()
        if indent == 0 and body.startswith("struct "):
            _, struct_name, *struct_rest = body.split()
            struct_opts = _options(struct_rest, where)
            common = StructSpec(struct_name, [], VersionRange.parse(struct_opts["versions"]))
            spec.common_structs.append(common)
            stack = [(2, common.fields)]
            last = None
            continue
        if last is not None and indent == stack[-1][0] + 2:
            last.fields = []
            stack.append((indent, last.fields))
        while stack and indent < stack[-1][0]:
            stack.pop()
        if not stack or indent != stack[-1][0]:
            raise SpecSyntaxError(f"{where}: unexpected indentation")
        last = _parse_field(body, where)
        stack[-1][1].append(last)
    return spec


def load_spec(path: Path) -> MessageSpec:
    return parse_spec(path.read_text(encoding="utf-8"), str(path))


def load_all(spec_dir: Path) -> list[MessageSpec]:
    """Every spec in a directory, sorted by file name."""
    return [load_spec(p) for p in sorted(spec_dir.glob("*.spec"))]


def module_name(spec_name: str) -> str:
    """``MetadataRequest`` -> ``metadata_request``: the spec file and generated module name."""
    return camel_to_snake(spec_name)


def camel_to_snake(name: str) -> str:
    """Kafka's CamelCase names to snake_case (``IsrNodes`` -> ``isr_nodes``)."""
    step = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", step).lower()
