"""Ships the repository's default config (``data/*.toml``) inside the wheel as ``bot/data/``,
where ``bot.config.data_file`` finds it in an installed copy; the metadata is pyproject.toml."""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

DATA = Path(__file__).resolve().parent / "data"


class BuildWithData(build_py):
    def run(self) -> None:
        super().run()
        target = Path(self.build_lib) / "bot" / "data"
        target.mkdir(parents=True, exist_ok=True)
        for source in sorted(DATA.glob("*.toml")):
            shutil.copyfile(source, target / source.name)


setup(cmdclass={"build_py": BuildWithData})
