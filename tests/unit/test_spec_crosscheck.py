"""Our `protocol_specs/` against Apache Kafka's JSON message definitions, message by message and
version by version, plus coverage of the broker listener and freshness of the generated code."""

from __future__ import annotations

from pathlib import Path

import pytest

from kafkacompat.codegen.generate import generate_all
from kafkacompat.codegen.reference import EXTRA_MESSAGES, broker_message_names, load_reference
from kafkacompat.codegen.spec import (
    FieldSpec,
    MessageSpec,
    StructSpec,
    VersionRange,
    load_spec,
    module_name,
)

ROOT = Path(__file__).resolve().parents[2]
SPEC_DIR = ROOT / "protocol_specs"
MESSAGES_DIR = ROOT / "kafkacompat" / "protocol" / "messages"
REF_DIR = ROOT / ".." / "shared" / "kafka-message-specs"

if not REF_DIR.is_dir():
    pytest.skip(
        f"Apache Kafka's message definitions are not at {REF_DIR.resolve()}",
        allow_module_level=True,
    )

SPEC_PATHS = sorted(SPEC_DIR.glob("*.spec"))
#: Field facts compared per version: name, type, nullable, tag, tagged, default, flexible.
FieldFacts = tuple[str, str, bool, int | None, bool, object, bool | None]


def _reference_for(spec_path: Path) -> MessageSpec:
    spec = load_spec(spec_path)
    return load_reference(REF_DIR / f"{spec.name}.json")


def _normal_default(type_: str, default: str | None) -> object:
    """Defaults as values, so ``"-1"``, ``-1`` and ``"0xffffffff"`` spellings compare by meaning."""
    if default is None or default == "null":
        return default
    element = type_.removeprefix("[]")
    if element in ("int8", "int16", "uint16", "int32", "int64"):
        return int(default, 0)
    if element == "bool":
        return default.lower() == "true"
    if element == "float64":
        return float(default)
    return default


def _struct_index(spec: MessageSpec) -> dict[str, StructSpec]:
    return {s.name: s for s in spec.common_structs}


def _facts(spec: MessageSpec, version: int) -> list[tuple[str, FieldFacts]]:
    """Every field present at ``version``, depth first in wire order, keyed by its path."""
    commons = _struct_index(spec)
    out: list[tuple[str, FieldFacts]] = []

    def walk(fields: list[FieldSpec], prefix: str) -> None:
        for f in fields:
            if version not in f.versions:
                continue
            path = f"{prefix}{f.name}"
            flexible = None if f.flexible is None else version in f.flexible
            out.append(
                (
                    path,
                    (
                        f.name,
                        f.type,
                        version in f.nullable,
                        f.tag,
                        version in f.tagged,
                        _normal_default(f.type, f.default),
                        flexible,
                    ),
                )
            )
            if f.fields is not None:
                walk(f.fields, path + ".")
            elif f.is_struct:
                walk(commons[f.element_type].fields, path + ".")

    walk(spec.fields, "")
    return out


def _versions(r: VersionRange, upto: int) -> list[int]:
    return [v for v in range(upto + 1) if v in r]


@pytest.fixture(scope="module")
def ref_names() -> list[str]:
    return broker_message_names(REF_DIR)


def test_every_broker_api_has_a_spec(ref_names: list[str]) -> None:
    have = {p.stem for p in SPEC_PATHS}
    wanted = {module_name(name) for name in ref_names}
    assert wanted - have == set()
    for extra in EXTRA_MESSAGES:
        assert module_name(extra) in have
    # and every request on the broker listener is registered with its response
    assert len([n for n in ref_names if n.endswith("Request") and n not in EXTRA_MESSAGES]) > 50


def test_no_spec_without_a_reference() -> None:
    missing = [p.name for p in SPEC_PATHS if not (REF_DIR / f"{load_spec(p).name}.json").exists()]
    assert missing == []


def test_spec_file_names_match_message_names() -> None:
    assert [p.stem for p in SPEC_PATHS] == [module_name(load_spec(p).name) for p in SPEC_PATHS]


@pytest.mark.parametrize("spec_path", SPEC_PATHS, ids=lambda p: p.stem)
def test_message_header_facts(spec_path: Path) -> None:
    ours = load_spec(spec_path)
    ref = _reference_for(spec_path)
    assert (ours.kind, ours.name, ours.api_key) == (ref.kind, ref.name, ref.api_key)
    assert ours.versions == ref.versions
    high = ours.versions.high
    assert high is not None
    horizon = high + 5  # flexible ranges are open-ended: compare past the last version too
    assert _versions(ours.flexible, horizon) == _versions(ref.flexible, horizon)
    assert _versions(ours.deprecated, horizon) == _versions(ref.deprecated, horizon)
    assert ours.latest_unstable == ref.latest_unstable


@pytest.mark.parametrize("spec_path", SPEC_PATHS, ids=lambda p: p.stem)
def test_common_structs(spec_path: Path) -> None:
    ours = load_spec(spec_path)
    ref = _reference_for(spec_path)
    assert [s.name for s in ours.common_structs] == [s.name for s in ref.common_structs]
    high = ours.versions.high
    assert high is not None
    for mine, theirs in zip(ours.common_structs, ref.common_structs, strict=True):
        assert _versions(mine.versions, high) == _versions(theirs.versions, high), mine.name


@pytest.mark.parametrize("spec_path", SPEC_PATHS, ids=lambda p: p.stem)
def test_fields_at_every_version(spec_path: Path) -> None:
    ours = load_spec(spec_path)
    ref = _reference_for(spec_path)
    for version in ours.version_list:
        mine, theirs = _facts(ours, version), _facts(ref, version)
        assert [p for p, _ in mine] == [p for p, _ in theirs], f"{ours.name} v{version}"
        for (path, a), (_, b) in zip(mine, theirs, strict=True):
            assert a == b, f"{ours.name} v{version} {path}"


@pytest.mark.parametrize("spec_path", SPEC_PATHS, ids=lambda p: p.stem)
def test_struct_names_and_tags_are_consistent(spec_path: Path) -> None:
    """Inline struct names match, and tags are unique per struct, so a tagged section is decodable."""
    ours = load_spec(spec_path)
    ref = _reference_for(spec_path)
    assert [s.name for s in ours.structs()] == [s.name for s in ref.structs()]
    for struct in ours.structs():
        tags = [f.tag for f in struct.fields if f.tag is not None]
        assert len(tags) == len(set(tags)), struct.name
        for f in struct.fields:
            assert (f.tag is None) == f.tagged.empty, f"{struct.name}.{f.name}"


def test_generated_code_is_fresh() -> None:
    assert generate_all(SPEC_DIR, MESSAGES_DIR, check=True) == []


def test_codegen_check_cli_passes() -> None:
    from kafkacompat.codegen.__main__ import main

    assert main(["--check"]) == 0
