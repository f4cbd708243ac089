"""Builds the web console (console/, Vue + Vite) into the wheel, so that `pip install openpacs`
serves it on a machine without Node.js. Runs when a wheel is built (`python -m build`, `pip
install .`), not for an editable install, where `make` builds the console as its sources change."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

BUILT = Path("src/openpacs/web/static/console")


class ConsoleBuildHook(BuildHookInterface):  # type: ignore[type-arg]
    PLUGIN_NAME = "console"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if version == "editable":
            return
        root = Path(self.root)
        sources = root / "console"
        index = root / BUILT / "index.html"
        if sources.is_dir() and not _up_to_date(index, sources):
            _build(sources)
        if not index.is_file():
            raise RuntimeError(f"{index} is missing: the wheel would have no web console")
        # Build output is ignored by git, which hatch follows; name it to ship it.
        build_data["artifacts"].append(f"/{BUILT.as_posix()}/**")


def _up_to_date(index: Path, sources: Path) -> bool:
    if not index.is_file():
        return False
    built = index.stat().st_mtime
    return all(
        path.stat().st_mtime <= built
        for path in sources.rglob("*")
        if path.is_file() and "node_modules" not in path.parts
    )


def _build(sources: Path) -> None:
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError(
            "building the openpacs wheel builds its web console: install Node.js 20.19+ (with "
            "npm) on the build machine; the installed wheel then needs no Node.js"
        )
    if not (sources / "node_modules" / ".package-lock.json").is_file():
        subprocess.run(
            [npm, "ci", "--prefer-offline", "--no-audit", "--no-fund"], cwd=sources, check=True
        )
    subprocess.run([npm, "run", "build"], cwd=sources, check=True)
