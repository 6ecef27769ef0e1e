"""Header-only reading of DICOM files into :class:`~pipeline.io.model.Frame` records.

Only geometry, sequence and identification-of-series fields are kept; patient name,
ID, birth date and study dates are never copied out of the dataset.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from pipeline.io.model import Frame

# SOP classes that are never image volumes (prefix match on the UID).
NON_IMAGE_SOP_PREFIXES: dict[str, str] = {
    "1.2.840.10008.1.3.10": "DICOMDIR (media directory)",
    "1.2.840.10008.5.1.4.1.1.66": "segmentation / raw data / registration object",
    "1.2.840.10008.5.1.4.1.1.88": "structured report",
    "1.2.840.10008.5.1.4.1.1.11": "presentation state",
    "1.2.840.10008.5.1.4.1.1.104": "encapsulated document",
    "1.2.840.10008.5.1.4.1.1.481": "radiotherapy object",
    "1.2.840.10008.5.1.4.1.1.9": "waveform",
    "1.2.840.10008.5.1.4.1.1.67": "real world value mapping",
}
ENHANCED_SOP = {
    "1.2.840.10008.5.1.4.1.1.2.1": "Enhanced CT",
    "1.2.840.10008.5.1.4.1.1.4.1": "Enhanced MR",
    "1.2.840.10008.5.1.4.1.1.2.2": "Legacy Converted Enhanced CT",
    "1.2.840.10008.5.1.4.1.1.4.4": "Legacy Converted Enhanced MR",
}
UNCOMPRESSED_TS = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2"}


class HeaderError(Exception):
    """A file could not be used; ``code`` names why (recorded, never raised to users)."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def _looks_like_raw_dataset(path: Path) -> bool:
    """Whether a file without the 'DICM' preamble starts like a bare DICOM data set."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError:
        return False
    if len(head) < 8:
        return False
    group = int.from_bytes(head[0:2], "little")
    group_be = int.from_bytes(head[0:2], "big")
    return group in (0x0002, 0x0008) or group_be in (0x0002, 0x0008)


def read_header(path: Path) -> tuple[Dataset, int]:
    """Read one file's header (no pixel data).

    Returns
    -------
    ds : Dataset
        The header, without Pixel Data.
    tail : int
        Bytes from the start of the Pixel Data element to the end of the file (0 when
        the file has no pixel data); used to spot truncated files without reading pixels.

    Raises
    ------
    HeaderError
        ``NOT_DICOM`` (no DICOM preamble and no data set at the start),
        ``DICOM_UNREADABLE`` (a header that cannot be parsed, e.g. truncated).
    """
    force = False
    for attempt in range(2):
        try:
            with open(path, "rb") as fh:
                ds = pydicom.dcmread(fh, stop_before_pixels=True, force=force)
                tail = path.stat().st_size - fh.tell()
            break
        except InvalidDicomError:
            if attempt or not _looks_like_raw_dataset(path):
                raise HeaderError("NOT_DICOM", "no DICOM preamble or data set") from None
            force = True  # header-less ("raw") data set: parse it, keep it if clearly DICOM
        except (OSError, EOFError) as exc:
            raise HeaderError(
                "DICOM_UNREADABLE", f"cannot read file ({type(exc).__name__})"
            ) from exc
        except Exception as exc:  # noqa: BLE001 - pydicom raises many types on corrupt headers
            raise HeaderError(
                "DICOM_UNREADABLE", f"corrupt DICOM header ({type(exc).__name__})"
            ) from exc
    if "SOPClassUID" not in ds and "Modality" not in ds and "DirectoryRecordSequence" not in ds:
        if force:
            raise HeaderError("NOT_DICOM", "data set without SOP class or modality")
        raise HeaderError(
            "DICOM_UNREADABLE", "header ends before SOP class and modality (truncated file?)"
        )
    return ds, tail


_TAGS: dict[str, int] = {}


def _raw(ds: Dataset, keyword: str) -> str | None:
    """Text of an ASCII-valued element (UI, CS, DS, IS) without pydicom's conversion.

    Discovery reads ~20 such values per file; skipping pydicom's per-value validation
    roughly halves the per-file cost. Binary VRs (US, FD) and free text that may use
    another character set (descriptions) must not go through here.
    """
    tag = _TAGS.get(keyword)
    if tag is None:
        t = tag_for_keyword(keyword)
        if t is None:
            raise KeyError(keyword)
        tag = _TAGS[keyword] = t
    elem = ds.get_item(tag)
    if elem is None:
        return None
    v = elem.value
    if v is None:
        return None
    if isinstance(v, bytes):
        return v.decode("latin-1").strip(" \x00")
    if isinstance(v, list | tuple | pydicom.multival.MultiValue):
        return "\\".join(str(x) for x in v)
    return str(v).strip()


def _raw_float(ds: Dataset, keyword: str) -> float | None:
    t = _raw(ds, keyword)
    return _float(t.split("\\")[0]) if t else None


def _raw_int(ds: Dataset, keyword: str) -> int | None:
    t = _raw(ds, keyword)
    try:
        return int(float(t.split("\\")[0])) if t else None
    except ValueError:
        return None


def _raw_vec(ds: Dataset, keyword: str, n: int) -> np.ndarray | None:
    t = _raw(ds, keyword)
    return _vec(t.split("\\"), n) if t else None


def _str(ds: Dataset, keyword: str) -> str:
    v = ds.get(keyword, "")
    if v is None:
        return ""
    if isinstance(v, pydicom.multival.MultiValue):
        return "\\".join(str(x) for x in v)
    return str(v).strip()


def _float(v: Any) -> float | None:
    try:
        if v is None or v == "":
            return None
        return float(v)
    except (TypeError, ValueError):
        return None


def _int(v: Any) -> int | None:
    try:
        if v is None or v == "":
            return None
        return int(v)
    except (TypeError, ValueError):
        return None


def _vec(v: Any, n: int) -> np.ndarray | None:
    try:
        if v is None:
            return None
        a = np.array([float(x) for x in v], dtype=np.float64)
    except (TypeError, ValueError):
        return None
    if a.shape != (n,) or not np.all(np.isfinite(a)):
        return None
    return a


def _orientation(a: np.ndarray | None) -> np.ndarray | None:
    """A usable IOP: two unit-length (within 10 %), orthogonal direction cosines."""
    if a is None:
        return None
    r, c = a[:3], a[3:]
    nr, nc = float(np.linalg.norm(r)), float(np.linalg.norm(c))
    if not (0.9 < nr < 1.1 and 0.9 < nc < 1.1) or abs(float(np.dot(r, c))) > 0.01 * nr * nc:
        return None
    return a


def _pixel_spacing(v: Any) -> tuple[float, float] | None:
    a = _vec(v, 2)
    if a is None or np.any(a <= 0):
        return None
    return float(a[0]), float(a[1])


def _first(seq_parent: Dataset | None, seq: str) -> Dataset | None:
    if seq_parent is None:
        return None
    s = seq_parent.get(seq)
    if s is None or len(s) == 0:
        return None
    return s[0]


def series_header(ds: Dataset) -> dict[str, Any]:
    """Non-identifying series-level header fields used to classify and select."""
    tsyntax = ""
    if getattr(ds, "file_meta", None) is not None:
        tsyntax = str(ds.file_meta.get("TransferSyntaxUID", ""))
    shared = _first(ds, "SharedFunctionalGroupsSequence")
    h: dict[str, Any] = {
        "sop_class_uid": _str(ds, "SOPClassUID"),
        "transfer_syntax": tsyntax,
        "manufacturer": _str(ds, "Manufacturer"),
        "series_description": _str(ds, "SeriesDescription"),
        "protocol_name": _str(ds, "ProtocolName"),
        "sequence_name": _str(ds, "SequenceName") or _str(ds, "PulseSequenceName"),
        "scanning_sequence": _str(ds, "ScanningSequence"),
        "sequence_variant": _str(ds, "SequenceVariant"),
        "scan_options": _str(ds, "ScanOptions"),
        "image_type": _str(ds, "ImageType"),
        "acquisition_contrast": _str(ds, "AcquisitionContrast"),
        "kernel": _str(ds, "ConvolutionKernel"),
        "body_part": _str(ds, "BodyPartExamined"),
        "echo_time": _float(ds.get("EchoTime")),
        "repetition_time": _float(ds.get("RepetitionTime")),
        "inversion_time": _float(ds.get("InversionTime")),
        "field_strength": _float(ds.get("MagneticFieldStrength")),
        "photometric": _str(ds, "PhotometricInterpretation"),
        "samples_per_pixel": _int(ds.get("SamplesPerPixel")) or 1,
        "bits_allocated": _int(ds.get("BitsAllocated")),
        "number_of_frames": _int(ds.get("NumberOfFrames")) or 1,
    }
    if not h["acquisition_contrast"]:
        per_frame = ds.get("PerFrameFunctionalGroupsSequence")
        for parent in (shared, per_frame[0] if per_frame else None):
            ftype = _first(parent, "MRImageFrameTypeSequence")
            if ftype is not None and ftype.get("AcquisitionContrast"):
                h["acquisition_contrast"] = _str(ftype, "AcquisitionContrast")
                break
    # Enhanced MR keeps timing in functional groups.
    if shared is not None:
        timing = _first(shared, "MRTimingAndRelatedParametersSequence")
        if timing is not None and h["repetition_time"] is None:
            h["repetition_time"] = _float(timing.get("RepetitionTime"))
        echo = _first(shared, "MREchoSequence")
        if echo is not None and h["echo_time"] is None:
            h["echo_time"] = _float(echo.get("EffectiveEchoTime"))
        mod = _first(shared, "MRModifierSequence")
        if mod is not None and h["inversion_time"] is None:
            ti = mod.get("InversionTimes")
            if ti:
                h["inversion_time"] = _float(ti[0] if isinstance(ti, list | tuple) else ti)
        ctrecon = _first(shared, "CTReconstructionSequence")
        if ctrecon is not None and not h["kernel"]:
            h["kernel"] = _str(ctrecon, "ConvolutionKernel")
    return h


def non_image_reason(ds: Dataset) -> str | None:
    """Why a data set is not an image that can join a volume, or ``None``."""
    sop = _str(ds, "SOPClassUID")
    if not sop and getattr(ds, "file_meta", None) is not None:
        sop = str(ds.file_meta.get("MediaStorageSOPClassUID", "") or "")
    if "DirectoryRecordSequence" in ds:
        return NON_IMAGE_SOP_PREFIXES["1.2.840.10008.1.3.10"]
    for prefix, what in NON_IMAGE_SOP_PREFIXES.items():
        if sop == prefix or sop.startswith(prefix + "."):
            return what
    if "Rows" not in ds or "Columns" not in ds:
        return "no image pixel module (Rows/Columns absent)"
    return None


def frames_from_header(ds: Dataset, path: Path) -> list[Frame]:
    """Split a header into its 2-D frames with per-frame geometry.

    Classic single-frame images give one frame. Multi-frame images take position,
    orientation, spacing and rescale from the per-frame functional groups, falling
    back to the shared groups and then to the top-level attributes.
    """
    rows = _int(ds.get("Rows")) or 0
    cols = _int(ds.get("Columns")) or 0
    sop_uid = _raw(ds, "SOPInstanceUID") or ""
    inst = _raw_int(ds, "InstanceNumber")
    image_type = tuple(x.strip().upper() for x in (_raw(ds, "ImageType") or "").split("\\") if x)
    top_rescale = None
    slope, intercept = _raw_float(ds, "RescaleSlope"), _raw_float(ds, "RescaleIntercept")
    if slope is not None or intercept is not None:
        top_rescale = (slope if slope is not None else 1.0, intercept or 0.0)
    n_frames = _raw_int(ds, "NumberOfFrames") or 1
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    shared = _first(ds, "SharedFunctionalGroupsSequence")

    if n_frames == 1 and per_frame is None:
        return [
            Frame(
                path=path,
                frame_index=None,
                sop_uid=sop_uid,
                position=_raw_vec(ds, "ImagePositionPatient", 3),
                orientation=_orientation(_raw_vec(ds, "ImageOrientationPatient", 6)),
                pixel_spacing=_pixel_spacing((_raw(ds, "PixelSpacing") or "").split("\\")),
                rows=rows,
                columns=cols,
                instance_number=inst,
                slice_thickness=_raw_float(ds, "SliceThickness"),
                rescale=top_rescale,
                echo_number=_raw_int(ds, "EchoNumbers"),
                temporal_index=_raw_int(ds, "TemporalPositionIdentifier"),
                image_type=image_type,
            )
        ]

    def group_item(fg: Dataset | None, seq: str) -> Dataset | None:
        item = _first(fg, seq)
        return item if item is not None else _first(shared, seq)

    frames: list[Frame] = []
    for i in range(n_frames):
        fg = per_frame[i] if per_frame is not None and i < len(per_frame) else None
        pos_item = group_item(fg, "PlanePositionSequence")
        ori_item = group_item(fg, "PlaneOrientationSequence")
        meas = group_item(fg, "PixelMeasuresSequence")
        pvt = group_item(fg, "PixelValueTransformationSequence")
        content = _first(fg, "FrameContentSequence")
        echo = group_item(fg, "MREchoSequence")
        ftype_item = group_item(fg, "MRImageFrameTypeSequence") or group_item(
            fg, "CTImageFrameTypeSequence"
        )
        rescale = top_rescale
        if pvt is not None and ("RescaleSlope" in pvt or "RescaleIntercept" in pvt):
            rescale = (
                _float(pvt.get("RescaleSlope")) or 1.0,
                _float(pvt.get("RescaleIntercept")) or 0.0,
            )
        position = _vec(pos_item.get("ImagePositionPatient"), 3) if pos_item else None
        orientation = (
            _orientation(_vec(ori_item.get("ImageOrientationPatient"), 6)) if ori_item else None
        )
        if position is None:
            position = _vec(ds.get("ImagePositionPatient"), 3) if n_frames == 1 else None
        if orientation is None:
            orientation = _orientation(_vec(ds.get("ImageOrientationPatient"), 6))
        spacing = _pixel_spacing(meas.get("PixelSpacing")) if meas else None
        if spacing is None:
            spacing = _pixel_spacing(ds.get("PixelSpacing"))
        thick = _float(meas.get("SliceThickness")) if meas else None
        ftype = image_type
        if ftype_item is not None and ftype_item.get("FrameType"):
            ftype = tuple(str(x).upper() for x in ftype_item.get("FrameType"))
        frames.append(
            Frame(
                path=path,
                frame_index=i,
                sop_uid=sop_uid,
                position=position,
                orientation=orientation,
                pixel_spacing=spacing,
                rows=rows,
                columns=cols,
                instance_number=inst,
                slice_thickness=thick if thick is not None else _float(ds.get("SliceThickness")),
                rescale=rescale,
                echo_number=None,
                temporal_index=_int(content.get("TemporalPositionIndex")) if content else None,
                stack_id=_str(content, "StackID") or None if content else None,
                image_type=ftype,
            )
        )
        if echo is not None and fg is not None and _first(fg, "MREchoSequence") is not None:
            # Echo time varies per frame (multi-echo): its value in microseconds keys the stack.
            et = _float(echo.get("EffectiveEchoTime"))
            frames[-1].echo_number = None if et is None else int(round(et * 1000))
    return frames


def expected_pixel_bytes(ds: Dataset) -> int | None:
    """Bytes of native (uncompressed) pixel data, or ``None`` for compressed syntaxes."""
    ts = str(getattr(ds, "file_meta", Dataset()).get("TransferSyntaxUID", "1.2.840.10008.1.2"))
    if ts not in UNCOMPRESSED_TS:
        return None
    rows = _int(ds.get("Rows")) or 0
    cols = _int(ds.get("Columns")) or 0
    bits = _int(ds.get("BitsAllocated")) or 0
    spp = _int(ds.get("SamplesPerPixel")) or 1
    nfr = _int(ds.get("NumberOfFrames")) or 1
    return rows * cols * spp * nfr * bits // 8
