"""Typed results of :mod:`pipeline.features` (the ``ImagingFeatures`` stage boundary).

Every feature carries a provenance: ``measured`` (from the image), ``estimated`` (from the
image with a method of known lower reliability, e.g. Bilsky on CT), or ``not_assessable``
(with the reason in ``why``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Provenance = Literal["measured", "estimated", "not_assessable"]


@dataclass
class Finding:
    """One categorical or numeric feature with its provenance."""

    value: Any
    provenance: Provenance = "measured"
    why: str = ""

    @classmethod
    def na(cls, why: str) -> Finding:
        """A feature that could not be assessed, with the reason."""
        return cls(None, "not_assessable", why)


@dataclass
class VertebraFeatures:
    """Features of one vertebra, in patient space."""

    label: int
    level: str
    involved: bool
    location: Finding
    lesion: Finding
    collapse: Finding
    alignment: Finding
    posterolateral: Finding
    measurements: dict[str, float | None] = field(default_factory=dict)
    partly_in_view: bool = False
    provenance: dict[str, str] = field(default_factory=dict)
    why: dict[str, str] = field(default_factory=dict)
    #: LPS centre (mm) of the vertebral body: where this level lies, so that a number can
    #: be checked against a reference by position (VerSe identification), not by name.
    body_centre_lps: tuple[float, float, float] | None = None


@dataclass
class SliceMeasurement:
    """Bilsky measurements on one canal-perpendicular slice."""

    level: str
    offset_mm: float
    grade: str
    tumour_area_mm2: float
    sac_area_mm2: float
    sac_area_ratio: float | None
    sac_solidity: float | None
    sac_indentation_mm: float | None
    sac_deformed: bool
    cord_area_mm2: float
    cord_area_ratio: float | None
    cord_flattening: float | None
    cord_contact: bool
    cord_compressed: bool
    csf_ring_fraction: float | None


@dataclass
class EsccResult:
    """Bilsky grade per level and at the worst level, with the deciding measurements."""

    per_level: dict[str, str]
    worst_level: str | None
    worst_grade: str | None
    provenance: Provenance
    why: str
    worst_slice: SliceMeasurement | None = None
    slices: list[SliceMeasurement] = field(default_factory=list)
    reference: dict[str, float] = field(default_factory=dict)
    # geometry of the worst slice for pictures: LPS origin and in-plane axes (mm)
    worst_plane: dict[str, list[float]] | None = None


@dataclass
class ImagingFeatures:
    """All imaging features of one study."""

    modality: str
    vertebrae: list[VertebraFeatures]
    escc: EsccResult
    involved_levels: list[str]
    segments: list[list[str]]
    messages: list[str] = field(default_factory=list)

    @property
    def levels(self) -> list[str]:
        """Level names found, head to feet."""
        return [v.level for v in self.vertebrae]

    def vertebra(self, level: str) -> VertebraFeatures | None:
        """The features of ``level``, or None."""
        for v in self.vertebrae:
            if v.level == level:
                return v
        return None
