"""The app's version: from the installed package's metadata (the .deb), or pyproject.toml in a checkout."""

from __future__ import annotations

import functools
import tomllib
from importlib import metadata
from pathlib import Path


@functools.cache
def app_version() -> str:
    try:
        return metadata.version("tessera")
    except metadata.PackageNotFoundError:
        pass
    try:
        pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
        return tomllib.loads(pyproject.read_text())["project"]["version"]
    except (OSError, KeyError, ValueError):
        return "dev"
