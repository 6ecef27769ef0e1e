"""NIfTI reading and writing for :class:`~pipeline.io.volume.Volume`.

NIfTI stores RAS world coordinates; volumes are LPS, so the first two rows of the
affine are negated on the way in and out. NIfTI carries no modality: the caller gives
it, or :func:`guess_modality` makes a reported guess from the intensities.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import numpy.typing as npt

from pipeline.errors import InputError
from pipeline.io.volume import LPS_TO_RAS, Modality, Volume

NIFTI_SUFFIXES = (".nii", ".nii.gz")


def is_nifti(path: str | Path) -> bool:
    """Whether ``path`` names a NIfTI file by its suffix."""
    return str(path).lower().endswith(NIFTI_SUFFIXES)


def guess_modality(array: npt.NDArray[Any]) -> tuple[Modality, str]:
    """Guess CT or MR from intensities; return the guess and the evidence.

    CT in Hounsfield units has voxels well below zero (air near -1000, fat near -100:
    more than 1 % below -500 or a 1st percentile below -100) and values reaching bone
    (99th percentile > 200); MR magnitudes are essentially non-negative, and normalised
    MR never reaches 200 at the 99th percentile while also going below -100.
    """
    a = np.asarray(array)
    sample = a.ravel()[:: max(1, a.size // 200_000)].astype(np.float32)
    frac_neg = float(np.mean(sample < -500))
    p1, p99 = (float(x) for x in np.percentile(sample, [1, 99]))
    facts = f"{frac_neg:.0%} of voxels below -500, p1 {p1:.0f}, p99 {p99:.0f}"
    if (frac_neg > 0.01 or p1 < -100) and p99 > 200:
        return "CT", f"{facts}: Hounsfield-like"
    return "MR", f"{facts}: not Hounsfield-like"


def read_nifti(path: str | Path, modality: Modality | None = None) -> Volume:
    """Read a NIfTI image into a canonical :class:`Volume`.

    Parameters
    ----------
    path : str or Path
        ``.nii`` or ``.nii.gz`` file.
    modality : {"CT", "MR"}, optional
        The modality; when omitted it is guessed and the guess is recorded in
        ``meta["modality_source"]``.
    """
    p = Path(path)
    try:
        img: Any = nib.load(str(p))
        data = np.asarray(img.dataobj, dtype=np.float32)
    except FileNotFoundError as exc:
        raise InputError("INPUT_NOT_FOUND", f"no such file: {p}") from exc
    except Exception as exc:  # nibabel raises several unrelated types for bad files
        raise InputError(
            "NIFTI_UNREADABLE", f"{p.name} is not a readable NIfTI file ({exc})"
        ) from exc
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise InputError("NIFTI_NOT_3D", f"{p.name} has shape {data.shape}; a 3-D image is needed")
    affine = LPS_TO_RAS @ np.asarray(img.affine, dtype=np.float64)
    if modality is None:
        modality, why = guess_modality(data)
        source = f"guessed: {why}"
    else:
        source = "given"
    vol = Volume(
        data,
        affine,
        modality,
        {"source": str(p.name), "modality_source": source, "format": "nifti"},
    )
    return vol.to_canonical()


def write_nifti(vol: Volume, path: str | Path, dtype: Any = None) -> Path:
    """Write a volume (image or label map) as NIfTI with its exact geometry.

    Integer arrays are written as integer label maps (``dtype`` defaults to the array's).
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    arr = vol.array if dtype is None else vol.array.astype(dtype)
    img = nib.Nifti1Image(arr, LPS_TO_RAS @ vol.affine)
    img.set_qform(img.affine, code=1)
    img.set_sform(img.affine, code=1)
    if np.issubdtype(arr.dtype, np.integer):
        img.header.set_intent("label")
    nib.save(img, str(p))
    return p
