"""DICOM and NIfTI input: discovery, classification, selection, loading, geometry QC.

See :mod:`pipeline.io.volume` for the coordinate conventions and the canonical array
orientation every loader returns.
"""

from pipeline.io.nifti import read_nifti, write_nifti
from pipeline.io.volume import Volume

__all__ = ["Volume", "read_nifti", "write_nifti"]
