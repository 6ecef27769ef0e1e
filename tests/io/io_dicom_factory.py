"""Write small synthetic DICOM series for tests (pydicom Dataset -> files)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, MRImageStorage, generate_uid


def unit(v: Any) -> np.ndarray:
    a = np.asarray(v, dtype=np.float64)
    return a / np.linalg.norm(a)


def write_series(
    folder: Path,
    pixels: np.ndarray,
    *,
    row_dir: Any = (1, 0, 0),
    col_dir: Any = (0, 1, 0),
    origin: Any = (0.0, 0.0, 0.0),
    pixel_spacing: tuple[float, float] = (1.0, 1.0),
    step: Any = None,
    modality: str = "CT",
    positions: list[Any] | None = None,
    study_uid: str | None = None,
    series_uid: str | None = None,
    for_uid: str | None = None,
    names: str = "uid",
    rescale: tuple[float, float] | None = None,
    **tags: Any,
) -> list[Path]:
    """Write ``pixels[k, row, col]`` as one single-frame file per slice.

    ``step`` is the LPS displacement between consecutive slices (default: the slice
    normal times 2 mm). ``positions`` overrides the image positions outright. Files
    are named by SOP UID (``names="uid"``, no extension) or ``IM<k>.dcm``.
    """
    folder.mkdir(parents=True, exist_ok=True)
    r = unit(row_dir)
    c = unit(col_dir)
    n = np.cross(r, c)
    step = n * 2.0 if step is None else np.asarray(step, dtype=np.float64)
    study_uid = generate_uid() if study_uid is None else study_uid
    series_uid = generate_uid() if series_uid is None else series_uid
    for_uid = generate_uid() if for_uid is None else for_uid
    out = []
    nk, rows, cols = pixels.shape
    for k in range(nk):
        ds = Dataset()
        sop = generate_uid()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = (
            CTImageStorage if modality == "CT" else MRImageStorage
        )
        ds.file_meta.MediaStorageSOPInstanceUID = sop
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
        ds.SOPInstanceUID = sop
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.FrameOfReferenceUID = for_uid
        ds.Modality = modality
        ds.PatientName = "Synthetic^Test"
        ds.PatientID = "SYN0001"
        ds.SeriesNumber = 1
        ds.InstanceNumber = k + 1
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        pos = np.asarray(origin, dtype=np.float64) + k * step
        if positions is not None:
            pos = np.asarray(positions[k], dtype=np.float64)
        ds.ImagePositionPatient = [f"{x:.6f}" for x in pos]
        ds.ImageOrientationPatient = [f"{x:.8f}" for x in (*r, *c)]
        ds.PixelSpacing = [f"{pixel_spacing[0]:.6f}", f"{pixel_spacing[1]:.6f}"]
        ds.SliceThickness = "5.0"
        ds.Rows, ds.Columns = rows, cols
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 1
        if modality == "CT" or rescale is not None:
            slope, intercept = rescale or (1.0, -1024.0)
            ds.RescaleSlope = f"{slope:g}"
            ds.RescaleIntercept = f"{intercept:g}"
        for key, val in tags.items():
            setattr(ds, key, val)
        ds.PixelData = np.ascontiguousarray(pixels[k].astype(np.int16)).tobytes()
        name = sop if names == "uid" else f"IM{k:04d}.dcm"
        path = folder / name
        ds.save_as(path, enforce_file_format=True)
        out.append(path)
    return out


def series_with_point(
    folder: Path,
    target_lps: Any,
    *,
    row_dir: Any,
    col_dir: Any,
    shape: tuple[int, int, int] = (7, 9, 11),
    at: tuple[int, int, int] = (3, 4, 6),
    pixel_spacing: tuple[float, float] = (0.8, 1.1),
    spacing: float = 2.5,
    modality: str = "CT",
    **kw: Any,
) -> list[Path]:
    """A series whose single bright pixel (k, row, col) = ``at`` sits at ``target_lps``."""
    r, c = unit(row_dir), unit(col_dir)
    step = np.cross(r, c) * spacing
    k, row, col = at
    origin = (
        np.asarray(target_lps, dtype=np.float64)
        - col * pixel_spacing[1] * r
        - row * pixel_spacing[0] * c
        - k * step
    )
    px = np.zeros(shape, dtype=np.int16)
    px[k, row, col] = 3000
    return write_series(
        folder,
        px,
        row_dir=r,
        col_dir=c,
        origin=origin,
        pixel_spacing=pixel_spacing,
        step=step,
        modality=modality,
        **kw,
    )
