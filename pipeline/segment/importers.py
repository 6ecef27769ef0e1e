"""Import label maps made elsewhere and map them onto spinemet's label scheme.

Supported inputs
----------------
* a NIfTI label map with a class map: ``"verse"`` (VerSe numbers, the default),
  ``"total"`` (TotalSegmentator v2 ``total``), ``"total_mr"``, ``"spineps"`` (SPINEPS /
  TPTBox instance or sub-region masks), a ``{value: name}`` mapping, or the label table
  that TotalSegmentator embeds in its multilabel files (read automatically);
* a TotalSegmentator output folder (one file per class, e.g. ``vertebrae_T11.nii.gz``);
* a DICOM SEG file (highdicom), segments mapped by their label / property type;
* spinemet's own label trio (a folder with ``vertebrae.nii.gz``, ``structures.nii.gz``
  and optionally ``parts.nii.gz``, as ``spinemet run`` and ``spinemet synth`` write it).

Every source is resampled (nearest neighbour, exact patient geometry) onto the grid of
the reference volume, so the result can be compared voxel by voxel with the image.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import numpy.typing as npt

from pipeline import labels as L
from pipeline.errors import InputError
from pipeline.io.volume import LPS_TO_RAS, Volume
from pipeline.preprocess.resample import resample_labels_nearest

# Target of one source class: (map name, code); code None on "vertebrae" means
# "a vertebra whose level the source does not give" (numbered afterwards, uncertain).
Target = tuple[str, int | None]

TOTAL_V2: dict[int, str] = {
    25: "sacrum",
    26: "vertebrae_S1",
    **{27 + i: f"vertebrae_L{5 - i}" for i in range(5)},
    **{32 + i: f"vertebrae_T{12 - i}" for i in range(12)},
    **{44 + i: f"vertebrae_C{7 - i}" for i in range(7)},
    79: "spinal_cord",
}
TOTAL_MR: dict[int, str] = {
    18: "sacrum",
    19: "vertebrae",
    20: "intervertebral_discs",
    21: "spinal_cord",
}
CLASS_MAPS: dict[str, dict[int, str]] = {"total": TOTAL_V2, "total_mr": TOTAL_MR}


def target_for_name(name: str) -> Target | None:
    """Map a class or segment name onto our scheme; None when it is not a spine class.

    Examples: ``vertebrae_T11`` / ``T11 vertebra`` -> ("vertebrae", 18), ``sacrum`` ->
    ("vertebrae", 26), ``spinal_cord`` -> ("structures", 2), ``spinal_canal`` /
    ``CSF`` -> ("structures", 1), ``intervertebral_discs`` -> ("structures", 6).
    """
    n = name.strip().lower().replace("-", "_").replace(" ", "_")
    m = re.search(r"(?:^|_)(c[1-7]|t1[0-3]|t[1-9]|l[1-6]|s1?)(?:_|$)", n)
    if "sacrum" in n or (m and m.group(1) in ("s", "s1") and "vertebra" in n):
        return ("vertebrae", 26)
    if m and ("vertebra" in n or re.fullmatch(r"(c[1-7]|t1[0-3]|t[1-9]|l[1-6])", n)):
        return ("vertebrae", L.level_number(m.group(1).upper()))
    if "cord" in n:
        return ("structures", L.CORD)
    if any(k in n for k in ("canal", "csf", "thecal", "dural_sac", "subarachnoid")):
        return ("structures", L.SAC)
    if "disc" in n or n == "ivd":
        return ("structures", L.DISC)
    if "epidural" in n:
        return ("structures", L.EPIDURAL)
    if "lytic" in n:
        return ("structures", L.LYTIC)
    if "blastic" in n or "sclerotic" in n:
        return ("structures", L.BLASTIC)
    if n in ("vertebrae", "vertebra", "vertebral_column", "spine", "bone_vertebra"):
        return ("vertebrae", None)
    return None


def spineps_target(value: int) -> Target | None:
    """SPINEPS / TPTBox codes: vertebrae 1-28, 100+n disc, 200+n endplate, 41-50 sub-regions."""
    if 1 <= value <= 28 and L.is_level(value):
        return ("vertebrae", value)
    if 101 <= value <= 128 or value == 100:
        return ("structures", L.DISC)
    if 201 <= value <= 228:
        return ("vertebrae", value - 200)
    if value == 60:
        return ("structures", L.CORD)
    if value == 61:
        return ("structures", L.SAC)
    if value in (49, 50, 62):
        return ("parts", L.BODY)
    if 41 <= value <= 48:
        return ("parts", L.POSTERIOR)
    return None


def embedded_class_map(img: Any) -> dict[int, str] | None:
    """The ``{value: name}`` label table TotalSegmentator stores in a NIfTI extension."""
    for ext in getattr(img.header, "extensions", []):
        try:
            text = ext.get_content().decode("utf-8", "replace")
        except Exception:  # noqa: BLE001 - foreign extensions: skip
            continue
        pairs = re.findall(r'<Label Key="(\d+)"[^>]*><!\[CDATA\[([^\]]+)\]\]>', text)
        if pairs:
            return {int(k): v for k, v in pairs}
    return None


def _read_label_nifti(path: Path) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.float64], Any]:
    try:
        img: Any = nib.load(str(path))
        arr = np.asarray(img.dataobj)
    except FileNotFoundError as exc:
        raise InputError("INPUT_NOT_FOUND", f"no such file: {path}") from exc
    except Exception as exc:  # noqa: BLE001 - nibabel raises many types
        raise InputError(
            "LABELS_UNREADABLE", f"{path.name} is not a readable NIfTI label map ({exc})"
        ) from exc
    if arr.ndim == 4 and arr.shape[3] == 1:
        arr = arr[..., 0]
    if arr.ndim != 3:
        raise InputError(
            "LABELS_NOT_3D", f"{path.name} has shape {arr.shape}; a 3-D label map is needed"
        )
    if np.issubdtype(arr.dtype, np.floating):
        if not np.allclose(arr, np.rint(arr)):
            raise InputError(
                "LABELS_NOT_INTEGER", f"{path.name} holds non-integer values; not a label map"
            )
    return np.rint(arr).astype(np.int32), LPS_TO_RAS @ np.asarray(img.affine, dtype=np.float64), img


class _Collector:
    """Accumulates source classes onto the three target maps on the reference grid."""

    def __init__(self, reference: Volume) -> None:
        self.ref = reference
        shape = reference.shape
        self.maps = {k: np.zeros(shape, np.int16) for k in ("vertebrae", "structures", "parts")}
        self.unnumbered = np.zeros(shape, bool)
        self.mapped: dict[str, str] = {}
        self.ignored: list[str] = []

    def add(
        self,
        mask_or_labels: npt.NDArray[Any],
        affine: npt.NDArray[np.float64],
        targets: Mapping[int, Target | None],
        names: Mapping[int, str] | None = None,
    ) -> None:
        present = [int(v) for v in np.unique(mask_or_labels) if v != 0]
        wanted = {v: targets.get(v) for v in present}
        for v, t in wanted.items():
            label = names.get(v, str(v)) if names else str(v)
            if t is None:
                self.ignored.append(label)
            else:
                self.mapped[label] = f"{t[0]}:{t[1] if t[1] is not None else 'unnumbered'}"
        keep = [v for v, t in wanted.items() if t is not None]
        if not keep:
            return
        lut = np.zeros(int(max(present)) + 1, np.int32)
        for v in keep:
            lut[v] = v
        src = lut[np.clip(mask_or_labels, 0, None)]
        on_ref = resample_labels_nearest(src, affine, self.ref.affine, self.ref.shape)
        # Sac first, cord after (the cord lies inside the canal); discs and lesions last.
        order = sorted(keep, key=lambda v: (wanted[v][0], wanted[v][1] == L.CORD))  # type: ignore[index]
        for v in order:
            kind, code = wanted[v]  # type: ignore[misc]
            sel = on_ref == v
            if kind == "vertebrae" and code is None:
                self.unnumbered |= sel
            else:
                self.maps[kind][sel] = int(code)  # type: ignore[arg-type]

    def result(self, source: str) -> Any:
        from pipeline.segment.levels import number_unlabelled_vertebrae
        from pipeline.segment.types import SpineSegmentation

        vert = self.maps["vertebrae"]
        confidence: dict[str, float] = {}
        uncertain = False
        warnings: list[str] = []
        if self.unnumbered.any():
            numbered, confidence, uncertain, why = number_unlabelled_vertebrae(
                self.unnumbered & (vert == 0),
                self.ref.affine,
                structures=self.maps["structures"],
                sacrum=vert == 26,
            )
            vert = np.where(numbered > 0, numbered, vert).astype(np.int16)
            warnings.append(why)
        for v in np.unique(vert):
            if v > 0 and L.level_name(int(v)) not in confidence:
                confidence[L.level_name(int(v))] = 1.0
        if not self.maps["parts"].any():
            warnings.append("the imported labels carry no vertebra parts (body/pedicles/posterior)")
        meta = {
            "backend": "labels",
            "source": source,
            "mapped": self.mapped,
            "ignored_classes": sorted(set(self.ignored)),
            "warnings": warnings,
        }

        def vol(a: npt.NDArray[Any], what: str) -> Volume:
            return Volume(
                a.astype(np.int16), self.ref.affine.copy(), self.ref.modality, {"labels": what}
            )

        return SpineSegmentation(
            vol(vert, "vertebrae"),
            vol(self.maps["structures"], "structures"),
            vol(self.maps["parts"], "parts"),
            confidence,
            uncertain,
            meta,
        )


def _class_targets(class_map: Mapping[int, str]) -> dict[int, Target | None]:
    return {int(k): target_for_name(v) for k, v in class_map.items()}


def import_labels(
    path: str | Path,
    reference: Volume,
    class_map: str | Mapping[int, str] | None = None,
    parts: str | Path | None = None,
) -> Any:
    """Import a label source onto ``reference``'s grid as a ``SpineSegmentation``.

    Parameters
    ----------
    path : str or Path
        NIfTI label map, TotalSegmentator output folder, or DICOM SEG file.
    reference : Volume
        The image the labels belong to; the result lies on its grid.
    class_map : str or mapping, optional
        For a multilabel NIfTI: ``"verse"``, ``"total"``, ``"total_mr"``, ``"spineps"``, or
        ``{value: class name}``. Default: the file's embedded table if any, else ``"verse"``.
    parts : str or Path, optional
        A second NIfTI with SPINEPS sub-region codes (body / posterior elements).
    """
    p = Path(path)
    if not p.exists():
        raise InputError("INPUT_NOT_FOUND", f"no such label source: {p}")
    if p.is_dir() and all((p / f"{n}.nii.gz").exists() for n in L.NATIVE_LABELS[:2]):
        return _import_native_trio(p, reference)
    col = _Collector(reference)
    if p.is_dir():
        files = sorted(x for x in p.iterdir() if x.name.endswith((".nii", ".nii.gz")))
        if not files:
            raise InputError("LABELS_EMPTY_FOLDER", f"{p.name} holds no NIfTI files")
        for f in files:
            name = re.sub(r"\.nii(\.gz)?$", "", f.name)
            if target_for_name(name) is None:
                col.ignored.append(name)
                continue
            arr, aff, _ = _read_label_nifti(f)
            col.add((arr > 0).astype(np.int32), aff, {1: target_for_name(name)}, {1: name})
        seg = col.result(str(p.name))
    elif p.name.lower().endswith((".nii", ".nii.gz")):
        arr, aff, img = _read_label_nifti(p)
        targets: dict[int, Target | None]
        names: dict[int, str] | None = None
        if isinstance(class_map, Mapping):
            names = {int(k): str(v) for k, v in class_map.items()}
            targets = _class_targets(names)
        elif class_map in CLASS_MAPS:
            names = CLASS_MAPS[str(class_map)]
            targets = _class_targets(names)
        elif class_map == "spineps":
            targets = {int(v): spineps_target(int(v)) for v in np.unique(arr) if v}
        elif class_map in (None, "verse"):
            embedded = embedded_class_map(img) if class_map is None else None
            if embedded:
                names = embedded
                targets = _class_targets(embedded)
            else:
                targets = {
                    int(v): (("vertebrae", int(v)) if L.is_level(int(v)) else None)
                    for v in np.unique(arr)
                    if v
                }
        else:
            raise InputError(
                "LABELS_UNKNOWN_CLASS_MAP",
                f"unknown class map {class_map!r}; use "
                "verse, total, total_mr, spineps or a {value: name} mapping",
            )
        col.add(arr, aff, targets, names)
        if parts is not None:
            parr, paff, _ = _read_label_nifti(Path(parts))
            col.add(parr, paff, {int(v): spineps_target(int(v)) for v in np.unique(parr) if v})
        seg = col.result(str(p.name))
    else:
        seg = _import_dicom_seg(p, col)
    if not (seg.vertebrae.array.any() or seg.structures.array.any()):
        seg.meta["warnings"].append("no spine class found in the imported labels")
    return seg


def _import_native_trio(folder: Path, reference: Volume) -> Any:
    """spinemet's own maps (already in our codes), resampled onto ``reference``'s grid."""
    from pipeline.segment.types import SpineSegmentation

    maps: dict[str, Volume] = {}
    for name in L.NATIVE_LABELS:
        f = folder / f"{name}.nii.gz"
        arr = np.zeros(reference.shape, np.int16)
        if f.exists():
            src, aff, _ = _read_label_nifti(f)
            arr = resample_labels_nearest(src, aff, reference.affine, reference.shape)
        maps[name] = reference.with_array(arr.astype(np.int16))
    return SpineSegmentation(
        maps["vertebrae"],
        maps["structures"],
        maps["parts"],
        meta={"backend": "labels", "source": folder.name},
    )


def _import_dicom_seg(p: Path, col: _Collector) -> Any:
    import highdicom as hd

    try:
        seg = hd.seg.segread(str(p))
    except Exception as exc:  # noqa: BLE001 - pydicom/highdicom raise many types
        raise InputError(
            "LABELS_UNREADABLE",
            f"{p.name} is neither NIfTI, a folder nor a readable DICOM SEG ({exc})",
        ) from exc
    for number in seg.get_segment_numbers():
        desc = seg.get_segment_description(number)
        name = str(desc.segment_label)
        target = target_for_name(name) or target_for_name(str(desc.segmented_property_type.meaning))
        if target is None:
            col.ignored.append(name)
            continue
        vol = seg.get_volume(segment_numbers=[number], combine_segments=True)
        arr = np.asarray(vol.array)
        if arr.ndim == 4:
            arr = arr[..., 0]
        col.add(
            (arr > 0).astype(np.int32),
            np.asarray(vol.affine, dtype=np.float64),
            {1: target},
            {1: name},
        )
    out = col.result(p.name)
    out.meta["format"] = "dicom-seg"
    return out
