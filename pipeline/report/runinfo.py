"""``run.json``: how a report was made (versions, configuration hash, device, timings).

Kept apart from ``report.json`` so that the report's content stays identical between
runs of the same input and configuration.
"""

from __future__ import annotations

import hashlib
import json
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from pipeline import __version__
from pipeline.paths import config_dir

PACKAGES = ("numpy", "scipy", "torch", "monai", "pydicom", "SimpleITK", "nibabel", "highdicom")


def versions() -> dict[str, str]:
    """Versions of spinemet, Python and the main libraries."""
    out = {
        "spinemet": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
    }
    for p in PACKAGES:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            out[p] = "not installed"
    return out


def config_hash(extra: dict[str, Any] | None = None, files: list[Path] | None = None) -> str:
    """SHA-256 over the YAML configuration files and any extra settings (sorted JSON)."""
    h = hashlib.sha256()
    for f in sorted(files if files is not None else config_dir().glob("*.yaml")):
        h.update(f.name.encode())
        h.update(Path(f).read_bytes())
    h.update(json.dumps(extra or {}, sort_keys=True, default=str).encode())
    return h.hexdigest()


def build_run_info(
    *,
    input_path: str,
    options: dict[str, Any],
    device: str,
    timings: dict[str, float],
    outputs: list[str],
    segmenter_meta: dict[str, Any] | None = None,
    status: str = "ok",
    report_sha256: str | None = None,
) -> dict[str, Any]:
    """The ``run.json`` document."""
    return {
        "spinemet_run": 1,
        "status": status,
        "input": input_path,
        "options": options,
        "versions": versions(),
        "config_sha256": config_hash(options),
        "device": device,
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
        "total_s": round(sum(timings.values()), 3),
        "segmenter": segmenter_meta or {},
        "outputs": outputs,
        "report_sha256": report_sha256,
    }
