"""Backend selection."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.errors import ConfigError
from pipeline.io.volume import Volume
from pipeline.segment.importers import import_labels
from pipeline.segment.types import Segmenter, SpineSegmentation


class LabelsSegmenter:
    """The ``labels`` backend: imports an existing label source for each study.

    Parameters
    ----------
    path : str or Path
        Label source (NIfTI, TotalSegmentator folder, DICOM SEG), see
        :func:`pipeline.segment.importers.import_labels`.
    class_map : str or mapping, optional
        Class map of a multilabel NIfTI.
    """

    name = "labels"

    def __init__(
        self, path: str | Path, class_map: Any = None, parts: str | Path | None = None
    ) -> None:
        self.path = Path(path)
        self.class_map = class_map
        self.parts = parts

    def segment(self, volume: Volume) -> SpineSegmentation:
        """Import the labels onto ``volume``'s grid."""
        seg: SpineSegmentation = import_labels(self.path, volume, self.class_map, self.parts)
        return seg


def get_segmenter(backend: str = "builtin", device: str = "auto", **kw: Any) -> Segmenter:
    """Return a segmenter.

    Parameters
    ----------
    backend : {"builtin", "labels"}
        ``builtin``: the shipped model (``model=`` names a folder in ``models/``);
        ``labels``: import (``path=``, optional ``class_map=``, ``parts=``).
    device : str
        ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (builtin only).
    """
    if backend == "labels":
        if "path" not in kw:
            raise ConfigError(
                "SEGMENTER_NEEDS_PATH",
                "the labels backend needs path= (label map, folder or DICOM SEG)",
            )
        return LabelsSegmenter(kw["path"], kw.get("class_map"), kw.get("parts"))
    if backend == "builtin":
        from pipeline.segment.builtin import BuiltinSegmenter

        return BuiltinSegmenter.cached(kw.get("model"), device)
    raise ConfigError(
        "UNKNOWN_SEGMENTER", f"unknown segmentation backend {backend!r}; use builtin or labels"
    )
