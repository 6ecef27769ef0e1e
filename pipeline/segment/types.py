"""The segmentation result type and the backend interface."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from pipeline.io.volume import Volume
from pipeline.labels import level_name


@dataclass
class SpineSegmentation:
    """Label maps of one study, all on the SOURCE volume grid.

    Attributes
    ----------
    vertebrae : Volume
        int16 VerSe numbers (0 background).
    structures : Volume
        int16 structure codes (:mod:`pipeline.labels`: 1 sac/CSF, 2 cord, 3 epidural
        tumour, 4 lytic, 5 blastic, 6 disc).
    parts : Volume
        int16 vertebra part codes (1 body, 2 left pedicle, 3 right pedicle, 4 posterior).
    level_confidence : dict
        Level name -> confidence in [0, 1] that the number given to it is right.
    numbering_uncertain : bool
        True when the level numbers rest on an estimate (no sacrum / C2 anchor,
        partial coverage, transitional anatomy).
    meta : dict
        Backend, model name, device, timings (s), warnings.
    """

    vertebrae: Volume
    structures: Volume
    parts: Volume
    level_confidence: dict[str, float] = field(default_factory=dict)
    numbering_uncertain: bool = False
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def levels(self) -> list[str]:
        """Level names present, head to feet."""
        from pipeline.labels import CRANIOCAUDAL_ORDER

        present = {int(v) for v in np.unique(self.vertebrae.array) if v > 0}
        return [level_name(v) for v in CRANIOCAUDAL_ORDER if v in present]


class Segmenter(Protocol):
    """A segmentation backend: one call per study."""

    name: str

    def segment(self, volume: Volume) -> SpineSegmentation:
        """Segment ``volume``; the result lies on ``volume``'s grid."""
        ...
