"""Imaging features of metastatic spine disease, measured in patient (LPS) space.

Per vertebra: level, involvement, lesion volume and share of the body, lesion quality
(CT), posterolateral involvement, collapse, alignment, SINS location class; per level:
the Bilsky ESCC grade from canal-perpendicular slices; per study: involved levels and
contiguous segments. Every feature carries its provenance (measured / estimated /
not_assessable) and the reason. Tolerances live in ``configs/features.yaml``.
"""

from pipeline.features.extract import contiguous_segments, extract_features, load_config
from pipeline.features.types import (
    EsccResult,
    Finding,
    ImagingFeatures,
    SliceMeasurement,
    VertebraFeatures,
)

__all__ = [
    "EsccResult",
    "Finding",
    "ImagingFeatures",
    "SliceMeasurement",
    "VertebraFeatures",
    "contiguous_segments",
    "extract_features",
    "load_config",
]
