"""The import structure: no import loops in ``bot/`` or ``handlers/`` (imports inside functions
and under ``TYPE_CHECKING`` count too), and every import going down the layers that
ARCHITECTURE.md draws."""

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
    found = {name for name in found if name in known}
    # Importing a.b.c runs a/__init__.py and a/b/__init__.py first, unless this module is
    # inside them (then they are already running).
    here = module_name(path) if package is None else package
    return found | {
        parent
        for name in found
        for parent in ancestors(name)
        if parent in known and not (here == parent or here.startswith(parent + "."))
    }


def ancestors(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


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
    known = {"bot", "bot.x", "bot.y", "bot.z", "bot.pkg", "bot.pkg.mod", "bot.pkg.sib", "other"}
    source = tmp_path / "probe.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "import bot.x\n"
        "if TYPE_CHECKING:\n    from bot.y import Thing\n"
        "def later():\n    from bot.z import other\n"
        "from bot.pkg import mod\n"
        "from . import sib\n"
        "from .mod import name\n"
        "import other\n"
    )
    # From inside bot.pkg, its own __init__ and bot's are already running.
    assert imports(source, known, "bot.pkg") == {
        "bot.x", "bot.y", "bot.z", "bot.pkg.mod", "bot.pkg.sib", "other"
    }  # fmt: skip
    # From bot: "from . import sib" is a name of bot/__init__.py, and bot.pkg's __init__ runs.
    assert imports(source, known, "bot") == {
        "bot", "bot.x", "bot.y", "bot.z", "bot.pkg", "bot.pkg.mod", "other"
    }  # fmt: skip


def test_no_import_loops_in_bot_or_handlers() -> None:
    loops = cycles(graph())
    assert loops == [], "import loops: " + "; ".join(" <-> ".join(c) for c in loops)


def layers() -> list[tuple[str, list[str]]]:
    """The layers ARCHITECTURE.md draws, top first: (name, module prefixes)."""
    text = (ROOT / "ARCHITECTURE.md").read_text()
    block = text.split("## Layers", 1)[1].split("```text\n", 1)[1].split("```", 1)[0]
    out: list[tuple[str, list[str]]] = []
    for line in block.splitlines():
        name, paths = (
            ("", line.split()) if line.startswith(" ") else (line[:15].strip(), line[15:].split())
        )
        if name:
            out.append((name, []))
        out[-1][1].extend(p.removesuffix("/").removesuffix(".py").replace("/", ".") for p in paths)
    return out


def layer_of(module: str, drawn: list[tuple[str, list[str]]]) -> int | None:
    matches = [
        (len(prefix), i)
        for i, (_, prefixes) in enumerate(drawn)
        for prefix in prefixes
        if module == prefix or module.startswith(prefix + ".")
    ]
    return max(matches)[1] if matches else None


def test_every_module_is_in_a_layer_and_imports_only_down() -> None:
    drawn = layers()
    assert [name for name, _ in drawn][-2:] == ["ports", "domain"]
    edges = graph()
    unplaced = sorted(m for m in edges if m not in PACKAGES and layer_of(m, drawn) is None)
    assert not unplaced, f"in no layer of ARCHITECTURE.md: {unplaced}"
    upward = sorted(
        f"{a} ({drawn[la][0]}) imports {b} ({drawn[lb][0]})"
        for a, targets in edges.items()
        for b in targets
        if (la := layer_of(a, drawn)) is not None
        and (lb := layer_of(b, drawn)) is not None
        and lb < la
    )
    assert not upward, upward


def test_the_agent_and_the_adapters_do_not_import_each_other() -> None:
    across = sorted(
        f"{a} imports {b}"
        for a, targets in graph().items()
        for b in targets
        if (a.startswith("bot.agent") and b.startswith("bot.adapters"))
        or (a.startswith("bot.adapters") and b.startswith("bot.agent"))
    )
    assert not across, across


def test_the_domain_imports_only_the_domain() -> None:
    outward = {
        f"{name} imports {target}"
        for name, targets in graph().items()
        if name.startswith("bot.domain")
        for target in targets
        if not target.startswith("bot.domain")
    }
    assert not outward, sorted(outward)
