"""The README documents every command, and its first screen the two commands that matter."""

from __future__ import annotations

import importlib
import inspect
import re

import pytest
from click import Group

from bot.cli import main
from tests.conftest import ROOT

README = (ROOT / "README.md").read_text()


def commands() -> list[str]:
    assert isinstance(main, Group)
    return sorted(name for name, cmd in main.commands.items() if not cmd.hidden)


@pytest.mark.parametrize("name", commands())
def test_every_command_is_documented(name: str) -> None:
    assert f"release-bot {name}" in README, f"README.md does not document `release-bot {name}`"


def test_first_screen_shows_demo_and_test() -> None:
    first_screen = "\n".join(README.splitlines()[:40])
    assert "make demo" in first_screen
    assert "make test" in first_screen


@pytest.mark.parametrize(
    "spec", ["errors:3x@25", "latency:2x@25", "kpi:-10%@25", "metrics:down@25"]
)
def test_fault_specs_in_the_readme_parse(spec: str) -> None:
    from bot.adapters.sim.faults import parse_fault

    assert spec in README
    parse_fault(spec)


ARCHITECTURE = (ROOT / "ARCHITECTURE.md").read_text()


def test_every_path_architecture_names_exists() -> None:
    named = set(re.findall(r"\b((?:bot|handlers|tests)/[\w/]*(?:\.py)?)", ARCHITECTURE))
    missing = sorted(p for p in named if not (ROOT / p).exists())
    assert not missing, f"ARCHITECTURE.md names paths that do not exist: {missing}"


def _port_classes() -> list[type]:
    for path in sorted((ROOT / "bot" / "ports").glob("*.py")):
        importlib.import_module(f"bot.ports.{path.stem}")
    return [
        cls
        for path in sorted((ROOT / "bot" / "ports").glob("[!_]*.py"))
        for name, cls in vars(importlib.import_module(f"bot.ports.{path.stem}")).items()
        if name.startswith("Abstract") and inspect.isclass(cls)
        and cls.__module__ == f"bot.ports.{path.stem}"
    ]  # fmt: skip


def test_architecture_maps_every_port_to_every_adapter_of_it() -> None:
    for path in [*(ROOT / "bot" / "adapters").rglob("*.py"), ROOT / "bot" / "slack" / "chat.py"]:
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        importlib.import_module(module.removesuffix(".__init__"))
    ports = _port_classes()
    assert len(ports) >= 12
    table = [line for line in ARCHITECTURE.splitlines() if line.startswith("| `")]
    for port in ports:
        row = next((r for r in table if f"`{port.__name__}`" in r), None)
        assert row is not None, f"ARCHITECTURE.md has no row for {port.__name__}"
        adapters = [  # the project's own: not the ports themselves, not the tests' doubles
            c
            for c in _subclasses(port)
            if c.__module__.startswith("bot.") and not c.__module__.startswith("bot.ports")
        ]
        for adapter in adapters:
            where = adapter.__module__.replace(".", "/") + ".py"
            assert f"`{where}`" in row, f"{port.__name__}'s row does not name {where}"


def _subclasses(cls: type) -> set[type]:
    direct = set(cls.__subclasses__())
    return direct.union(*(_subclasses(c) for c in direct))
