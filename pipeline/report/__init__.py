"""Study outputs: ``report.json`` (validated), ``report.html`` (self-contained), ``run.json``.

``build_report`` assembles the versioned report document (:mod:`pipeline.schema`);
``render_html`` makes the offline page with its key images (``sagittal_png``,
``axial_png``); ``build_run_info`` records versions, configuration hash, device and
per-stage timings.
"""

from pipeline.report.build import (
    RESEARCH_NOTICE,
    build_report,
    imaging_subscore,
    pick_index_vertebra,
)
from pipeline.report.html import render_html
from pipeline.report.images import axial_png, sagittal_png
from pipeline.report.runinfo import build_run_info, config_hash, versions

__all__ = [
    "RESEARCH_NOTICE",
    "axial_png",
    "build_report",
    "build_run_info",
    "config_hash",
    "imaging_subscore",
    "pick_index_vertebra",
    "render_html",
    "sagittal_png",
    "versions",
]
