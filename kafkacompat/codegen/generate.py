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
        '"""Generated message codecs, one module per message, indexed by API key.',
        "",
        "Modules are imported on first use, so a process pays only for the messages it handles.",
        '"""',
        "",
        "from __future__ import annotations",
        "",
        "import importlib",
        "from collections.abc import Iterator, Mapping",
        "from types import ModuleType",
        "",
        "#: Every generated module.",
        "MODULES = frozenset(",
        "    {",
        *[f'        "{m}",' for m in modules],
        "    }",
        ")",
        "",
        "#: api_key -> (request module name, response module name)",
        "API_MODULES: dict[int, tuple[str, str]] = {",
        *[f'    {key}: ("{req}", "{resp}"),' for key, req, resp in apis],
        "}",
        "",
        "",
        "def load(name: str) -> ModuleType:",
        '    return importlib.import_module(f"{__name__}.{name}")',
        "",
        "",
        "class _Apis(Mapping[int, tuple[ModuleType, ModuleType]]):",
        '    """api_key -> (request module, response module), each pair imported on first access."""',
        "",
        "    def __init__(self) -> None:",
        "        self._loaded: dict[int, tuple[ModuleType, ModuleType]] = {}",
        "",
        "    def __getitem__(self, key: int) -> tuple[ModuleType, ModuleType]:",
        "        pair = self._loaded.get(key)",
        "        if pair is None:",
        "            request, response = API_MODULES[key]",
        "            pair = self._loaded[key] = (load(request), load(response))",
        "        return pair",
        "",
        "    def __contains__(self, key: object) -> bool:",
        "        return key in API_MODULES",
        "",
        "    def __iter__(self) -> Iterator[int]:",
        "        return iter(API_MODULES)",
        "",
        "    def __len__(self) -> int:",
        "        return len(API_MODULES)",
        "",
        "",
        "APIS: Mapping[int, tuple[ModuleType, ModuleType]] = _Apis()",
        "",
        "",
        "def __getattr__(name: str) -> ModuleType:",
        "    if name in MODULES:",
        "        return load(name)",
        '    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")',
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
