"""The import structure: no import loops in ``bot/`` or ``handlers/`` (imports inside functions
and under ``TYPE_CHECKING`` count too), and a domain that imports only itself."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bot", "handlers")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {
        module_name(path): path for package in PACKAGES for path in (ROOT / package).rglob("*.py")
    }


def imports(path: Path, known: set[str], package: str | None = None) -> set[str]:
    """The project modules ``path`` imports, wherever the import statement is; ``package``
    (for relative imports) defaults to the one the file is in."""
    if package is None:
        package = module_name(path) if path.name == "__init__.py" else module_name(path.parent)
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package this file is in
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, *([base] if base else [])])
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                found.add(submodule if submodule in known else base)
    return {name for name in found if name in known}


def graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {name: imports(path, known) - {name} for name, path in found.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return out


def test_the_checker_finds_a_loop_and_its_members() -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(edges) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_checker_reads_every_kind_of_import(tmp_path: Path) -> None:
    known = {"bot.x", "bot.y", "bot.z", "bot.pkg", "bot.pkg.mod"}
    source = tmp_path / "probe.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "import bot.x\n"
        "if TYPE_CHECKING:\n    from bot.y import Thing\n"
        "def later():\n    from bot.z import other\n"
        "from bot.pkg import mod\n"
    )
    assert imports(source, known, "bot") == {"bot.x", "bot.y", "bot.z", "bot.pkg.mod"}


def test_no_import_loops_in_bot_or_handlers() -> None:
    loops = cycles(graph())
    assert loops == [], "import loops: " + "; ".join(" <-> ".join(c) for c in loops)


def test_the_domain_imports_only_the_domain() -> None:
    outward = {
        f"{name} imports {target}"
        for name, targets in graph().items()
        if name.startswith("bot.domain")
        for target in targets
        if not target.startswith("bot.domain")
    }
    assert not outward, sorted(outward)


def test_ports_import_only_the_domain_and_each_other() -> None:
    outward = {
        f"{name} imports {target}"
        for name, targets in graph().items()
        if name.startswith("bot.ports")
        for target in targets
        if not target.startswith(("bot.domain", "bot.ports"))
    }
    assert not outward, sorted(outward)


def test_the_agent_and_the_adapters_stay_below_the_service() -> None:
    upward = {
        f"{name} imports {target}"
        for name, targets in graph().items()
        if name.startswith(("bot.agent", "bot.adapters"))
        for target in targets
        if target.startswith(("bot.service", "bot.bootstrap", "bot.cli", "bot.slack", "handlers"))
    }
    assert not upward, sorted(upward)
