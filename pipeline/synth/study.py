"""One synthetic study on disk: DICOM series, NIfTI images, label maps and truth.json.

Layout of ``out``::

    truth.json                         ground truth (schema of pipeline.schema, kind "truth")
    dicom/<series>/IM0001.dcm ...      one folder per series, all in one DICOM study
    nifti/<series>.nii.gz              the same images as NIfTI (float32)
    labels/<series>/vertebrae.nii.gz   VerSe numbers on that series' grid
    labels/<series>/structures.nii.gz  1 sac/CSF 2 cord 3 epidural 4 lytic 5 blastic 6 disc
    labels/<series>/parts.nii.gz       1 body 2 left pedicle 3 right pedicle 4 posterior

Deterministic: one ``numpy.random.default_rng(seed)`` drives everything in a fixed
order, no timestamps are written, and gzip members carry mtime 0.
"""

from __future__ import annotations

import gzip
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from pipeline import __version__
from pipeline.io.volume import LPS_TO_RAS
from pipeline.synth.acquisition import Series, acquire, ct_axial, mr_axial, mr_sagittal
from pipeline.synth.dicom_writer import study_uids, write_series
from pipeline.synth.generator import Plan, StudyOptions, random_world
from pipeline.synth.truth import build_truth
from pipeline.synth.world import World

MODALITIES = ("CT", "MR", "both")
ORIENTATIONS = ("standard", "flipped", "oblique")


@dataclass
class StudyResult:
    """What :func:`generate_study` wrote and built."""

    out: Path
    world: World
    plan: Plan
    series: list[Series]
    truth: dict[str, Any]


def write_nifti_deterministic(
    array: np.ndarray, affine_lps: np.ndarray, path: Path, label: bool = True
) -> None:
    """NIfTI-1 (RAS affine from the LPS one), gzip with mtime 0 so bytes are reproducible."""
    img = nib.Nifti1Image(array, LPS_TO_RAS @ affine_lps)
    img.set_qform(img.affine, code=1)
    img.set_sform(img.affine, code=1)
    if label and np.issubdtype(array.dtype, np.integer):
        img.header.set_intent("label")
    raw = img.to_bytes()
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0, compresslevel=6) as gz:
        gz.write(raw)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue())


def plan_series(
    world: World, plan: Plan, rng: np.random.Generator, modality: str, orientation: str | None, *,
    ct_matrix: int = 256, ct_max_slices: int = 200, mr_matrix: int = 320, extra_mr: bool = False,
    ct_pixel: float | None = None, ct_slice: float | None = None,
) -> list[Series]:  # fmt: skip
    """The acquisitions of a study (orientation ``None``: drawn per series)."""

    def ori() -> str:
        return (
            orientation
            if orientation is not None
            else str(rng.choice(ORIENTATIONS, p=[0.5, 0.25, 0.25]))
        )

    out: list[Series] = []
    key_levels = [
        x for x in (plan.index_level, plan.epidural_level, plan.alignment_level) if x is not None
    ]
    if modality in ("CT", "both"):
        out.append(
            ct_axial(
                world,
                rng,
                orientation=ori(),
                matrix=ct_matrix,
                max_slices=ct_max_slices,
                pixel=ct_pixel,
                slice_mm=ct_slice,
                centre_level=key_levels,
            )  # fmt: skip
        )
    if modality in ("MR", "both"):
        out.append(mr_sagittal(world, rng, "T2", orientation=ori(), number=3, matrix=mr_matrix))
        level = plan.epidural_level if plan.epidural_level is not None else plan.index_level
        out.append(
            mr_axial(
                world, rng, level, "T2", orientation=ori(), number=4, matrix=min(mr_matrix, 256)
            )
        )
        if extra_mr:
            out.append(mr_sagittal(world, rng, "T1", orientation=ori(), number=5, matrix=mr_matrix))
            out.append(
                mr_sagittal(world, rng, "STIR", orientation=ori(), number=6, matrix=mr_matrix)
            )
    return out


def generate_study(
    seed: int,
    out: str | Path | None = None,
    options: StudyOptions | None = None,
    *,
    modality: str = "both",
    orientation: str | None = "standard",
    ct_matrix: int = 256,
    ct_max_slices: int = 200,
    mr_matrix: int = 320,
    extra_mr: bool = False,
    write_dicom: bool = True,
    write_images_nifti: bool = True,
    ct_pixel: float | None = None,
    ct_slice: float | None = None,
) -> StudyResult:
    """Build study ``seed`` and (when ``out`` is given) write it.

    Parameters
    ----------
    seed : int
        Drives everything; the same seed and options give the same bytes.
    options : StudyOptions, optional
        Pathology to include (``None`` fields drawn at random).
    modality : {"CT", "MR", "both"}
        CT axial; MR T2 sagittal + T2 axial; or both.
    orientation : {"standard", "flipped", "oblique"} or None
        Orientation variant of every series; ``None`` draws one per series.
    """
    if modality not in MODALITIES:
        raise ValueError(f"modality must be one of {MODALITIES}")
    rng = np.random.default_rng(seed)
    world, plan = random_world(rng, options)
    series = plan_series(world, plan, rng, modality, orientation, ct_matrix=ct_matrix, ct_max_slices=ct_max_slices,
                         mr_matrix=mr_matrix, extra_mr=extra_mr, ct_pixel=ct_pixel, ct_slice=ct_slice)  # fmt: skip
    uids = study_uids(seed)
    study_info: dict[str, Any] = {
        "seed": int(seed),
        "generator": f"spinemet.synth {__version__}",
        "study_instance_uid": uids["study"],
        "frame_of_reference_uid": uids["frame"],
        "series": [
            {
                "name": s.name,
                "modality": s.modality,
                "contrast": s.contrast,
                "plane": s.plane,
                "description": s.description,
                "shape": list(s.shape),
                "spacing_mm": [round(float(x), 4) for x in s.spacing],
                "slice_thickness_mm": s.thickness,
                "affine_lps": [[round(float(x), 6) for x in r] for r in s.affine],
            }  # fmt: skip
            for s in series
        ],
    }
    truth = build_truth(world, plan, study_info)
    result = StudyResult(Path(out) if out is not None else Path("."), world, plan, series, truth)
    if out is None:
        return result
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    for s in series:
        img, labels = acquire(world, s, rng)
        # Integer values, identical in DICOM and NIfTI: CT in HU (int16), MR as uint16.
        if s.modality == "CT":
            img = np.clip(np.rint(img), -1024, 3071).astype(np.int16)
        else:
            img = np.clip(np.rint(img), 0, 65535).astype(np.uint16)
        if write_dicom:
            write_series(s, img, root / "dicom" / s.name, seed)
        if write_images_nifti:
            write_nifti_deterministic(
                img, s.affine, root / "nifti" / f"{s.name}.nii.gz", label=False
            )
        for key, lab in labels.items():
            write_nifti_deterministic(lab, s.affine, root / "labels" / s.name / f"{key}.nii.gz")
    (root / "truth.json").write_text(json.dumps(truth, indent=1, sort_keys=True) + "\n")
    return result
