"""Write a synthetic series as a DICOM series (one file per slice) with pydicom.

Geometry comes straight from the series affine (see :mod:`pipeline.synth.acquisition`).
Every UID is a ``2.25.<128-bit integer>`` UID whose integer is a SHA-256 hash of the
seed and the object's role (:func:`synth_uid`). ``pydicom.uid.generate_uid(prefix=None,
...)`` would ignore its entropy sources and return a random UUID-based UID, so it is not
used. No date, time or random value enters a file: the same seed gives the same bytes. Patient identity is synthetic (``SYNTH^<seed>``): no PHI exists.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian

from pipeline.synth.acquisition import Series

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"


def synth_uid(*parts: str) -> UID:
    """Deterministic ``2.25.`` UID (ITU-T X.667 integer form) from ``parts``."""
    digest = hashlib.sha256("\x1f".join(("spinemet-synth", *parts)).encode()).digest()
    return UID("2.25." + str(int.from_bytes(digest[:16], "big")))


#: Fixed implementation UID so file meta is stable across pydicom versions.
IMPLEMENTATION_UID = synth_uid("implementation")


def study_uids(seed: int) -> dict[str, UID]:
    """Study and frame-of-reference UIDs of the synthetic study ``seed``."""
    return {
        "study": synth_uid(str(seed), "study"),
        "frame": synth_uid(str(seed), "frame"),
    }


def _fmt(x: float) -> str:
    """Decimal string (DS) of at most 16 characters."""
    s = f"{x:.6f}".rstrip("0").rstrip(".")
    if s in ("-0", ""):
        s = "0"
    return s[:16]


def write_series(series: Series, image: np.ndarray, out_dir: Path, seed: int) -> list[Path]:
    """Write ``image`` (float, HU for CT) on ``series``'s grid as DICOM files in ``out_dir``.

    CT is stored as unsigned 16-bit with RescaleSlope 1 and RescaleIntercept -1024; MR
    as unsigned 16-bit intensities (no rescale). Returns the written paths in slice order.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    uids = study_uids(seed)
    series_uid = synth_uid(str(seed), "series", series.name)
    aff = series.affine
    sp = series.spacing
    row = aff[:3, 0] / sp[0]
    col = aff[:3, 1] / sp[1]
    is_ct = series.modality == "CT"
    if is_ct:
        stored = np.clip(np.rint(image + 1024), 0, 4095).astype(np.uint16)
    else:
        stored = np.clip(np.rint(image), 0, 65535).astype(np.uint16)
    window_hi = float(np.percentile(stored, 99.5)) if not is_ct else 0.0
    paths = []
    for k in range(series.shape[2]):
        sop_uid = synth_uid(str(seed), series.name, str(k))
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = UID(CT_IMAGE_STORAGE if is_ct else MR_IMAGE_STORAGE)
        meta.MediaStorageSOPInstanceUID = sop_uid
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.ImplementationClassUID = IMPLEMENTATION_UID
        meta.ImplementationVersionName = "SPINEMET_SYNTH"
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID = meta.MediaStorageSOPClassUID
        ds.SOPInstanceUID = sop_uid
        ds.SpecificCharacterSet = "ISO_IR 100"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL" if series.plane == "axial" else "OTHER"]
        ds.StudyDate = "20260101"
        ds.SeriesDate = "20260101"
        ds.StudyTime = "120000"
        ds.AccessionNumber = f"SYN{seed:08d}"[-16:]
        ds.Modality = series.modality
        ds.Manufacturer = "spinemet synthetic"
        ds.ReferringPhysicianName = ""
        ds.StudyDescription = "SYNTHETIC SPINE"
        ds.SeriesDescription = series.description
        ds.PatientName = f"SYNTH^{seed}"
        ds.PatientID = f"SYN{seed:08d}"[-16:]
        ds.PatientBirthDate = ""
        ds.PatientSex = "O"
        ds.BodyPartExamined = "SPINE"
        ds.SliceThickness = _fmt(series.thickness)
        ds.SpacingBetweenSlices = _fmt(sp[2])
        if is_ct:
            ds.KVP = _fmt(series.params.get("kvp", 120.0))
            ds.ConvolutionKernel = series.params.get("kernel", "STANDARD")
        else:
            ds.ScanningSequence = "IR" if series.params.get("ti") else "SE"
            ds.SequenceVariant = "SK"
            ds.ScanOptions = ""
            ds.MRAcquisitionType = "2D"
            ds.RepetitionTime = _fmt(series.params["tr"])
            ds.EchoTime = _fmt(series.params["te"])
            if series.params.get("ti"):
                ds.InversionTime = _fmt(series.params["ti"])
            ds.MagneticFieldStrength = "1.5"
            ds.SequenceName = {"T1": "tse2d1", "T2": "tse2d1", "STIR": "tir2d1"}.get(
                series.contrast, "se"
            )
        ds.StudyInstanceUID = uids["study"]
        ds.SeriesInstanceUID = series_uid
        ds.StudyID = "1"
        ds.SeriesNumber = series.number
        ds.InstanceNumber = k + 1
        ipp = aff[:3, :3] @ np.array([0.0, 0.0, float(k)]) + aff[:3, 3]
        ds.ImagePositionPatient = [_fmt(v) for v in ipp]
        ds.ImageOrientationPatient = [_fmt(v) for v in (*row, *col)]
        ds.FrameOfReferenceUID = uids["frame"]
        ds.PositionReferenceIndicator = ""
        ds.SliceLocation = _fmt(float(ipp @ np.cross(row, col)))
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows = series.shape[1]
        ds.Columns = series.shape[0]
        ds.PixelSpacing = [
            _fmt(sp[1]),
            _fmt(sp[0]),
        ]  # row spacing (along j), column spacing (along i)
        ds.BitsAllocated = 16
        ds.BitsStored = 16 if not is_ct else 12
        ds.HighBit = ds.BitsStored - 1
        ds.PixelRepresentation = 0
        if is_ct:
            ds.RescaleIntercept = "-1024"
            ds.RescaleSlope = "1"
            ds.RescaleType = "HU"
            ds.WindowCenter = "400"
            ds.WindowWidth = "1800"
        else:
            ds.WindowCenter = _fmt(window_hi / 2)
            ds.WindowWidth = _fmt(window_hi)
        ds.PixelData = np.ascontiguousarray(stored[:, :, k].T).tobytes()
        path = out_dir / f"IM{k + 1:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths
