"""Segmentation: the ``Segmenter`` interface and its backends.

``get_segmenter("builtin")`` runs the shipped MONAI model (``models/``);
``get_segmenter("labels", path=...)`` imports label maps made elsewhere (NIfTI, DICOM SEG,
TotalSegmentator output). Both return :class:`SpineSegmentation` on the source grid.
"""

from pipeline.segment.api import get_segmenter
from pipeline.segment.importers import import_labels
from pipeline.segment.types import Segmenter, SpineSegmentation

__all__ = ["Segmenter", "SpineSegmentation", "get_segmenter", "import_labels"]
