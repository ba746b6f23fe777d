"""Generate every message module and the registry that indexes them by API key."""

from __future__ import annotations

from pathlib import Path

from kafkacompat.codegen.spec import MessageSpec, load_all, module_name
from kafkacompat.codegen.writer import HEADER, render_module


def render_registry(specs: list[MessageSpec]) -> str:
    """`messages/__init__.py`: request and response modules by API key."""
    apis = sorted(
        (s.api_key, module_name(s.name), module_name(s.name.removesuffix("Request") + "Response"))
        for s in specs
        if s.kind == "request" and s.api_key is not None
    )
    modules = sorted(module_name(s.name) for s in specs)
    lines = [
        HEADER.format(source="*.spec"),
        '"""Generated message codecs, one module per message, indexed by API key."""',
        "",
        "from __future__ import annotations",
        "",
        "from types import ModuleType",
        "",
        "from kafkacompat.protocol.messages import (",
        *[f"    {m}," for m in modules],
        ")",
        "",
        "#: api_key -> (request module, response module)",
        "APIS: dict[int, tuple[ModuleType, ModuleType]] = {",
        *[f"    {key}: ({req}, {resp})," for key, req, resp in apis],
        "}",
        "",
    ]
    return "\n".join(lines)


def render_all(spec_dir: Path) -> dict[str, str]:
    """File name -> source for every generated file."""
    specs = load_all(spec_dir)
    files = {
        f"{module_name(s.name)}.py": render_module(s, f"{module_name(s.name)}.spec") for s in specs
    }
    files["__init__.py"] = render_registry(specs)
    return files


def generate_all(spec_dir: Path, out_dir: Path, *, check: bool = False) -> list[str]:
    """Write (or with ``check`` only compare) the generated files; returns the stale ones."""
    files = render_all(spec_dir)
    stale = []
    for name, source in files.items():
        path = out_dir / name
        if not path.exists() or path.read_text(encoding="utf-8") != source:
            stale.append(name)
            if not check:
                out_dir.mkdir(parents=True, exist_ok=True)
                path.write_text(source, encoding="utf-8")
    known = set(files)
    for path in sorted(out_dir.glob("*.py")):
        if path.name not in known:
            stale.append(path.name)
            if not check:
                path.unlink()
    return stale
