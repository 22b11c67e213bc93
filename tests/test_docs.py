"""The README documents every command, and its first screen the two commands that matter."""

from __future__ import annotations

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
