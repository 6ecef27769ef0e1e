"""Typed records of the DICOM input stage: frames, series, studies, selections.

These dataclasses are what :func:`pipeline.io.discover`, :func:`pipeline.io.select_series`
and :func:`pipeline.io.open_study` return. They hold no pixel data and no patient
identifiers (name, ID, birth date, study dates are never read into them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from pipeline.io.volume import Volume

Severity = Literal["error", "warning", "info"]


@dataclass(frozen=True)
class Finding:
    """One named geometry / content check result.

    ``severity == "error"`` means the series cannot be loaded as a volume;
    ``"warning"`` means it loads but the user should know (e.g. corrected gantry tilt).
    """

    code: str
    severity: Severity
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"code": self.code, "severity": self.severity, "message": self.message}


@dataclass
class Frame:
    """One 2-D image: a single-frame file, or one frame of a multi-frame file.

    ``frame_index`` is the 0-based frame number inside the file (``None`` for a
    single-frame file). Geometry is in LPS millimetres.
    """

    path: Path
    frame_index: int | None
    sop_uid: str
    position: npt.NDArray[np.float64] | None  # ImagePositionPatient
    orientation: npt.NDArray[np.float64] | None  # ImageOrientationPatient (6,)
    pixel_spacing: tuple[float, float] | None  # (row spacing, column spacing)
    rows: int
    columns: int
    instance_number: int | None = None
    slice_thickness: float | None = None
    rescale: tuple[float, float] | None = None  # (slope, intercept) for this frame
    echo_number: int | None = None
    temporal_index: int | None = None
    stack_id: str | None = None
    image_type: tuple[str, ...] = ()


@dataclass
class Classification:
    """What a series is, with the evidence for each decision."""

    modality: str
    plane: str  # axial | sagittal | coronal | oblique | unknown
    obliquity_deg: float | None = None
    weighting: str | None = None  # MR: T1 | T2 | STIR | PD | FLAIR | DWI | T2STAR | other
    fat_sat: bool = False
    kernel_class: str | None = None  # CT only: soft | bone | lung | other
    localizer: bool = False
    derived: bool = False
    secondary: bool = False
    evidence: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "modality": self.modality,
            "plane": self.plane,
            "obliquity_deg": None if self.obliquity_deg is None else round(self.obliquity_deg, 2),
            "weighting": self.weighting,
            "fat_sat": self.fat_sat,
            "kernel_class": self.kernel_class,
            "localizer": self.localizer,
            "derived": self.derived,
            "secondary": self.secondary,
            "evidence": list(self.evidence),
        }


@dataclass
class Series:
    """One image stack (a DICOM series, or one orientation/stack split out of it).

    Attributes
    ----------
    key : str
        Unique, stable identifier inside a discovery run (the SeriesInstanceUID, with a
        ``#n`` suffix when the series was split, or a fallback key when the UID is empty).
    frames : list of Frame
        The 2-D images, sorted along the slice normal once geometry is checked.
    findings : list of Finding
        Geometry / content checks (see :mod:`pipeline.io.geometry`).
    """

    key: str
    study_uid: str
    series_uid: str
    frame_of_reference_uid: str
    modality: str
    series_number: int | None
    description: str
    frames: list[Frame]
    header: dict[str, Any] = field(default_factory=dict)  # non-identifying header fields
    classification: Classification | None = None
    findings: list[Finding] = field(default_factory=list)
    slice_spacing: float | None = None  # from positions, mm
    tilt_deg: float | None = None
    split_from: str | None = None  # original series key when split

    @property
    def n_frames(self) -> int:
        return len(self.frames)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]

    @property
    def loadable(self) -> bool:
        """Whether the geometry checks allow loading this series as a volume."""
        return not self.errors

    @property
    def files(self) -> list[Path]:
        """Distinct files of this series, in frame order."""
        seen: dict[Path, None] = {}
        for f in self.frames:
            seen.setdefault(f.path, None)
        return list(seen)

    def as_dict(self) -> dict[str, Any]:
        f0 = self.frames[0] if self.frames else None
        return {
            "key": self.key,
            "series_uid": self.series_uid,
            "frame_of_reference_uid": self.frame_of_reference_uid,
            "modality": self.modality,
            "series_number": self.series_number,
            "description": self.description,
            "n_frames": self.n_frames,
            "n_files": len(self.files),
            "rows": f0.rows if f0 else None,
            "columns": f0.columns if f0 else None,
            "pixel_spacing": list(f0.pixel_spacing) if f0 and f0.pixel_spacing else None,
            "slice_spacing": None if self.slice_spacing is None else round(self.slice_spacing, 4),
            "slice_thickness": f0.slice_thickness if f0 else None,
            "tilt_deg": None if self.tilt_deg is None else round(self.tilt_deg, 2),
            "transfer_syntax": self.header.get("transfer_syntax"),
            "kernel": self.header.get("kernel"),
            "split_from": self.split_from,
            "classification": self.classification.as_dict() if self.classification else None,
            "findings": [f.as_dict() for f in self.findings],
            "loadable": self.loadable,
        }


@dataclass
class Study:
    """A study: the series sharing a StudyInstanceUID (or a fallback key)."""

    study_uid: str
    series: list[Series] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"study_uid": self.study_uid, "series": [s.as_dict() for s in self.series]}


@dataclass(frozen=True)
class SkippedFile:
    """A file discovery did not use, and why (no patient data in the reason)."""

    path: Path
    reason: str
    code: str


@dataclass
class Selection:
    """Which series fills which role, and why each series was picked or rejected.

    ``reasons[series_key]`` lists one line per role considered.
    """

    picked: dict[str, Series] = field(default_factory=dict)
    ranked: dict[str, list[Series]] = field(default_factory=dict)  # eligible, best first
    reasons: dict[str, list[str]] = field(default_factory=dict)
    study_uid: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "study_uid": self.study_uid,
            "picked": {role: s.key for role, s in self.picked.items()},
            "reasons": {k: list(v) for k, v in self.reasons.items()},
        }


@dataclass
class LoadedStudy:
    """The volumes of one study, keyed by role, ready for the next stages.

    Attributes
    ----------
    volumes : dict of str to Volume
        Role (``ct_axial``, ``mr_sagittal_t2``, ...) to canonical volume.
    study_uid : str
        StudyInstanceUID (or fallback key; the file name for NIfTI input).
    warnings : list of Finding
        Warnings of the loaded series and of the study choice.
    messages : list of str
        Human-readable log of what was chosen and why.
    selection : Selection or None
        The selection result (``None`` for NIfTI input).
    """

    volumes: dict[str, Volume]
    study_uid: str
    warnings: list[Finding] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    selection: Selection | None = None
    studies: list[Study] = field(default_factory=list)

    @property
    def primary(self) -> Volume:
        """The main volume: CT axial when present, else the first MR role found."""
        for role in (
            "ct_axial",
            "ct",
            "mr_sagittal_t2",
            "mr_sagittal_t1",
            "mr_sagittal_stir",
            "mr_axial_t2",
            "mr",
        ):
            if role in self.volumes:
                return self.volumes[role]
        return next(iter(self.volumes.values()))
