"""The wheel carries the default config (data/*.toml as bot/data/), and an installed copy,
run outside the repository, loads it: no path into a source tree."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT

SOURCES = ("pyproject.toml", "setup.py", "README.md", "bot", "handlers", "data")
# setuptools before 70.1 builds wheels only with the wheel package (the dev extra has it)
CAN_BUILD = importlib.util.find_spec("wheel") is not None or (
    importlib.util.find_spec("setuptools.command.bdist_wheel") is not None
)


@pytest.fixture(scope="module")
def built_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not CAN_BUILD:
        pytest.skip("pip wheel --no-build-isolation needs the wheel package: pip install wheel")
    tree = tmp_path_factory.mktemp("source")
    for name in SOURCES:  # a copy: the build writes build/ and *.egg-info beside the sources
        source = ROOT / name
        if not source.exists():
            continue
        if source.is_dir():
            shutil.copytree(
                source, tree / name, ignore=shutil.ignore_patterns("__pycache__", "*.db*")
            )
        else:
            shutil.copy(source, tree / name)
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(tree), "--no-deps", "--no-build-isolation",
         "--no-index", "-q", "-w", str(out)],
        check=True, capture_output=True, timeout=300, cwd=tree,
    )  # fmt: skip
    (wheel,) = out.glob("release_bot-*.whl")
    return wheel


def test_the_wheel_ships_the_default_config(built_wheel: Path) -> None:
    names = zipfile.ZipFile(built_wheel).namelist()
    for toml in ("services.toml", "simulator.toml"):
        assert f"bot/data/{toml}" in names
        shipped = zipfile.ZipFile(built_wheel).read(f"bot/data/{toml}")
        assert shipped == (ROOT / "data" / toml).read_bytes()


def test_an_installed_copy_finds_its_config_outside_the_repository(
    built_wheel: Path, tmp_path: Path
) -> None:
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", str(built_wheel), "--no-deps", "--no-index",
         "-q", "--target", str(target)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "PYTHONPATH": str(target)}

    def bot(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "bot", *args],
            cwd=elsewhere, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    where = subprocess.run(
        [sys.executable, "-c", "import bot.config as c; print(c.__file__); print(c.DEFAULT_CONFIG)"],
        cwd=elsewhere, env=env, capture_output=True, text=True, timeout=60, check=True,
    ).stdout.split()  # fmt: skip
    assert all(Path(p).is_relative_to(target) for p in where), where
    parsed = bot("parse", "payments-api 2.4.1 risk=medium ticket=CHG-1 changes=x")
    assert parsed.returncode == 0, parsed.stderr
    assert '"service": "payments-api"' in parsed.stdout
    listed = bot("list", "--db", str(tmp_path / "r.db"))  # bootstrap: config and simulator
    assert listed.returncode == 0, listed.stderr
    assert "no releases yet" in listed.stdout
