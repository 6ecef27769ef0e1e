"""Where the project's configuration files and models live.

spinemet is installed from its source tree (``pip install -e .``, see README), so
``configs/`` and ``models/`` are read from the project root. ``SPINEMET_CONFIG_DIR`` and
``SPINEMET_MODELS_DIR`` override them (e.g. for a site's own rules or weights).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from pipeline.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def config_dir() -> Path:
    """Return the directory holding the YAML configuration files."""
    return Path(os.environ.get("SPINEMET_CONFIG_DIR", PROJECT_ROOT / "configs"))


def models_dir() -> Path:
    """Return the directory holding model folders (weights + card)."""
    return Path(os.environ.get("SPINEMET_MODELS_DIR", PROJECT_ROOT / "models"))


def load_yaml(path: str | Path) -> Any:
    """Read a YAML file, raising ``ConfigError`` with the path on any failure."""
    p = Path(path)
    if not p.is_absolute() and not p.exists():
        p = config_dir() / p
    try:
        with open(p, encoding="utf-8") as fh:
            return yaml.safe_load(fh)
    except FileNotFoundError as exc:
        raise ConfigError("CONFIG_NOT_FOUND", f"configuration file not found: {p}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError("CONFIG_INVALID", f"{p} is not valid YAML: {exc}") from exc
