"""Load a checked DICOM series into a canonical :class:`~pipeline.io.volume.Volume`.

Geometry comes from Image Position/Orientation (Patient) only: slice spacing is the
distance between sorted positions along the slice normal (never SliceThickness), and
the pixel axes follow the direction cosines exactly. Pixel values are rescaled with the
(per-frame) Rescale Slope/Intercept, so CT arrives in Hounsfield units. Compressed
transfer syntaxes are decoded by pydicom's pixel backends (pylibjpeg-openjpeg for
JPEG 2000, pyjpegls for JPEG-LS, GDCM for JPEG Lossless, native RLE).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pydicom
from scipy import ndimage

from pipeline.errors import InputError
from pipeline.io.geometry import native_affine, row_col_normal
from pipeline.io.model import Frame, Series
from pipeline.io.volume import Volume, canonical_axes

log = logging.getLogger(__name__)


def _decode(path: Any) -> tuple[np.ndarray, Any]:
    try:
        ds = pydicom.dcmread(path)
        arr = ds.pixel_array
    except Exception as exc:  # noqa: BLE001 - decoders raise many types
        raise InputError(
            "PIXEL_DATA_UNREADABLE",
            f"cannot decode pixel data of {path.name} ({type(exc).__name__}: {exc})",
        ) from exc
    return np.asarray(arr), ds


def _frame_pixels(frames: list[Frame]) -> Iterator[tuple[np.ndarray, Any]]:
    """Decoded 2-D pixels of each frame, in order, with the data set they came from.

    Multi-frame files stay decoded while their frames are needed (frames of several
    files may interleave along the normal); single-frame files are decoded once each.
    """
    cache: dict[Any, tuple[np.ndarray, Any]] = {}
    for f in frames:
        hit = cache.get(f.path)
        if hit is None:
            hit = _decode(f.path)
            if f.frame_index is not None:
                cache[f.path] = hit
        arr, ds = hit
        if f.frame_index is None:
            img = arr if arr.ndim == 2 else arr[0]
        else:
            img = arr[f.frame_index] if arr.ndim == 3 else arr
        if img.shape != (f.rows, f.columns):
            raise InputError(
                "PIXEL_DATA_UNREADABLE",
                f"{f.path.name}: decoded shape {img.shape} differs from Rows x Columns "
                f"{(f.rows, f.columns)}",
            )
        yield img, ds


def _correct_tilt(stack: np.ndarray, frames: list[Frame], fill: float) -> np.ndarray:
    """Shift each slice in-plane so the sheared (tilted) stack sits on an orthogonal grid.

    Slice ``k`` is displaced in-plane from slice 0 by the in-plane part of its position
    offset. Shifting it back by that many pixels (linear interpolation) puts each voxel of
    the output grid (origin at slice 0, axes row, column, normal) at the intensity
    acquired at that patient position; pixels that leave the field of view get ``fill``.
    """
    f0 = frames[0]
    assert f0.orientation is not None and f0.pixel_spacing is not None
    r, c, _ = row_col_normal(f0.orientation)
    p0 = np.asarray(f0.position)
    out = np.empty_like(stack)
    for k, f in enumerate(frames):
        off = np.asarray(f.position) - p0
        shift_col = float(np.dot(off, r)) / f0.pixel_spacing[1]
        shift_row = float(np.dot(off, c)) / f0.pixel_spacing[0]
        out[k] = ndimage.shift(
            stack[k], (shift_row, shift_col), order=1, mode="constant", cval=fill
        )
    return out


def load_series(series: Series) -> Volume:
    """Decode a geometry-checked series into a canonical volume.

    Parameters
    ----------
    series : Series
        From :func:`pipeline.io.discover`; must have no geometry *errors*.

    Returns
    -------
    Volume
        Canonical orientation (see :mod:`pipeline.io.volume`), float32; CT in HU.
        ``meta`` holds the study / series / frame-of-reference UIDs, the SOP Instance
        UIDs in slice order (``sop_instance_uids``, with ``frame_numbers`` for
        multi-frame sources; ``slice_axis`` is the canonical axis they run along and
        ``slice_order_reversed`` whether index 0 is the last of ``series.frames``),
        description, plane, weighting, kernel, spacing, warnings. Never patient
        name / ID / dates.

    Raises
    ------
    InputError
        With the first error's code (e.g. ``MISSING_SLICES``) when the series failed a
        geometry check, ``PIXEL_DATA_UNREADABLE`` when decoding fails.
    """
    if series.errors:
        e = series.errors[0]
        raise InputError(e.code, f"series {series.key}: {e.message}")
    if series.modality not in ("CT", "MR"):
        raise InputError(
            "UNSUPPORTED_MODALITY",
            f"series {series.key} is {series.modality}; only CT and MR volumes are loaded",
        )
    t0 = time.perf_counter()
    frames = series.frames
    spacing = series.slice_spacing
    if spacing is None:
        raise InputError("NO_GEOMETRY", f"series {series.key}: no slice spacing")
    # Fill a contiguous [slice, row, col] stack (fast row-major writes).
    stack = np.empty((len(frames), frames[0].rows, frames[0].columns), dtype=np.float32)
    ds0 = None
    for k, (f, (img, ds)) in enumerate(zip(frames, _frame_pixels(frames), strict=True)):
        ds0 = ds if ds0 is None else ds0
        stack[k] = img
        if f.rescale is not None:
            slope, intercept = f.rescale
            if slope != 1.0:
                stack[k] *= np.float32(slope)
            if intercept != 0.0:
                stack[k] += np.float32(intercept)
    modality = series.modality
    if modality == "CT" and ds0 is not None and "PixelPaddingValue" in ds0:
        # Padding outside the reconstruction circle becomes air, not -3000 HU.
        slope, intercept = frames[0].rescale or (1.0, 0.0)
        pad = float(ds0.PixelPaddingValue) * slope + intercept
        stack[stack == np.float32(pad)] = -1024.0
    tilted = any(f.code == "GANTRY_TILT" for f in series.findings)
    if tilted:
        stack = _correct_tilt(stack, frames, float(stack.min()))
    # pixel [row, col] of slice k -> array [col, row, k], C-contiguous, copied in blocks
    # of slices (about 1.6x faster than one strided copy); for the usual axial stack
    # this is already the canonical layout and to_canonical copies nothing more.
    data = np.empty((stack.shape[2], stack.shape[1], stack.shape[0]), dtype=np.float32)
    for k0 in range(0, stack.shape[0], 8):
        data[:, :, k0 : k0 + 8] = stack[k0 : k0 + 8].transpose(2, 1, 0)
    del stack
    aff = native_affine(frames, spacing)
    perm, flips = canonical_axes(aff)
    slice_axis = perm.index(2)
    sops = [f.sop_uid for f in frames]
    frame_numbers = [None if f.frame_index is None else f.frame_index + 1 for f in frames]
    if flips[slice_axis]:
        sops.reverse()
        frame_numbers.reverse()
    c = series.classification
    meta: dict[str, Any] = {
        "format": "dicom",
        "modality_source": "dicom",
        "study_uid": series.study_uid,
        "series_uid": series.series_uid,
        "series_key": series.key,
        "frame_of_reference_uid": series.frame_of_reference_uid,
        "sop_instance_uids": sops,
        "frame_numbers": frame_numbers if any(n is not None for n in frame_numbers) else None,
        "slice_axis": slice_axis,
        # sop_instance_uids / frame_numbers are already in canonical order; this says
        # whether that is the reverse of Series.frames (sorted along the slice normal)
        "slice_order_reversed": bool(flips[slice_axis]),
        "series_description": series.description,
        "series_number": series.series_number,
        "plane": c.plane if c else None,
        "weighting": c.weighting if c else None,
        "fat_sat": c.fat_sat if c else None,
        "kernel": series.header.get("kernel"),
        "kernel_class": c.kernel_class if c else None,
        "slice_spacing": spacing,
        "slice_thickness": frames[0].slice_thickness,
        "tilt_corrected_deg": series.tilt_deg if tilted else None,
        "transfer_syntax": series.header.get("transfer_syntax"),
        "manufacturer": series.header.get("manufacturer"),
        "warnings": [f.as_dict() for f in series.findings if f.severity == "warning"],
    }
    vol = Volume(data, aff, modality, meta)  # type: ignore[arg-type]
    log.debug(
        "decoded series %s: %d frames in %.2f s", series.key, len(frames), time.perf_counter() - t0
    )
    return vol.to_canonical()
