"""DICOM and NIfTI input: discovery, classification, selection, loading, geometry QC.

Public API
----------
``discover(path) -> list[Study]``
    Header-only walk of a folder; studies with classified, geometry-checked series.
``discover_all(path) -> Discovery``
    The same plus the files skipped and why.
``select_series(studies, rules=None) -> Selection``
    Role (``ct_axial``, ``mr_sagittal_t2``, ``mr_axial_t2``, ``mr_sagittal_t1``,
    ``mr_sagittal_stir``) to series, with a reason per series
    (rules: ``configs/series_selection.yaml``).
``load_series(series) -> Volume``
    Exact-geometry canonical volume (CT in HU).
``open_study(path, modality=None) -> LoadedStudy``
    All of the above for one study (or a NIfTI file): ``.volumes`` keyed by role.

See :mod:`pipeline.io.volume` for the coordinate conventions and the canonical array
orientation every loader returns, and :mod:`pipeline.io.geometry` for the check codes.
"""

from pipeline.io.dicom_load import load_series
from pipeline.io.discovery import Discovery, discover, discover_all
from pipeline.io.model import (
    Classification,
    Finding,
    Frame,
    LoadedStudy,
    Selection,
    Series,
    SkippedFile,
    Study,
)
from pipeline.io.nifti import read_nifti, write_nifti
from pipeline.io.selection import select_series
from pipeline.io.study import open_study
from pipeline.io.volume import Volume

__all__ = [
    "Classification",
    "Discovery",
    "Finding",
    "Frame",
    "LoadedStudy",
    "Selection",
    "Series",
    "SkippedFile",
    "Study",
    "Volume",
    "discover",
    "discover_all",
    "load_series",
    "open_study",
    "read_nifti",
    "select_series",
    "write_nifti",
]
