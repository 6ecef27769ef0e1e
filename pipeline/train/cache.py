"""Render training pairs once onto the model grid (``.npz`` files) so training is not
generator-bound.

Each case file holds ``image`` (float16, normalised intensity on the model grid), ``ct``
(bool, modality flag), ``sem`` (uint8 semantic classes, :data:`SEMANTIC_CLASSES`),
``level`` (float16 column position of each vertebra voxel, 0 elsewhere) and
``affine`` (model grid, LPS). Sources: the synthetic generator
(:func:`pipeline.synth.make_training_pair`, rendered by several processes with
:func:`build_synthetic_cache`) or labelled NIfTI cases of a user (:func:`build_cache`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from pipeline.errors import InputError
from pipeline.io.nifti import read_nifti
from pipeline.io.volume import Volume
from pipeline.preprocess import normalise_intensity, resample_labels_nearest, resample_to_spacing
from pipeline.segment.model import level_position_map, semantic_from_truth

log = logging.getLogger(__name__)

# Synthetic training studies: 96 x 96 x 112 voxels of 2 mm (19 x 19 x 22 cm, several levels).
SYNTH_SHAPE = (96, 96, 112)


def _as_array(x: Any) -> npt.NDArray[Any]:
    return np.asarray(x.array if isinstance(x, Volume) else x)


def render_case(
    image: Volume, truth: dict[str, Any], spacing: float
) -> dict[str, npt.NDArray[Any]]:
    """One training case on the model grid from an image and its three label maps."""
    sem_src = semantic_from_truth(
        _as_array(truth["vertebrae"]),
        _as_array(truth["structures"]),
        _as_array(truth.get("parts", 0 * _as_array(truth["vertebrae"]))),
    )
    on_model = resample_to_spacing(image, spacing)
    sem = resample_labels_nearest(sem_src, image.affine, on_model.affine, on_model.shape)
    vert = resample_labels_nearest(
        _as_array(truth["vertebrae"]).astype(np.int16),
        image.affine,
        on_model.affine,
        on_model.shape,
    )
    x = normalise_intensity(on_model.array, image.modality).numpy()
    return {
        "image": x.astype(np.float16),
        "ct": np.array(image.modality == "CT"),
        "sem": sem.astype(np.uint8),
        "level": level_position_map(vert).astype(np.float16),
        "affine": on_model.affine,
    }


def synthetic_case(
    seed: int, modalities: list[str], realistic_every: int = 2
) -> tuple[str, str, bool]:
    """Case id, modality and domain-randomisation flag of synthetic seed ``seed``.

    The modality alternates over ``modalities`` by seed; every ``realistic_every``-th pair
    of seeds is a realistic render (CT in HU; MR T1/T2/STIR), the others domain-randomised.
    """
    modality = modalities[seed % len(modalities)]
    dr = (seed // len(modalities)) % realistic_every != realistic_every - 1
    return f"synth-{'dr' if dr else 'real'}-{modality.lower()}-{seed:06d}", modality, dr


def _synthetic_pair(
    seed: int, modality: str, dr: bool, spacing: float, shape: tuple[int, int, int]
) -> tuple[Volume, dict[str, Any]]:
    from pipeline.synth import make_training_pair  # imported late: optional for inference

    return make_training_pair(
        seed,
        modality,  # type: ignore[arg-type]
        domain_randomised=dr,
        spacing_mm=(spacing, spacing, spacing),
        shape=shape,
    )


def _write_case(path: Path, image: Volume, truth: dict[str, Any], spacing: float) -> None:
    case = render_case(*_canonical_pair(image, truth), spacing)
    tmp = path.with_suffix(".part")  # not *.npz: a training run globbing the cache skips it
    with open(tmp, "wb") as fh:
        np.savez_compressed(fh, **case)  # type: ignore[arg-type]
    tmp.replace(path)


def _render_synthetic(job: tuple[Path, int, str, bool, float, tuple[int, int, int]]) -> str:
    path, seed, modality, dr, spacing, shape = job
    _write_case(path, *_synthetic_pair(seed, modality, dr, spacing, shape), spacing)
    return path.stem


def build_synthetic_cache(
    out_dir: str | Path,
    seeds: Iterable[int],
    modalities: list[str],
    spacing: float,
    workers: int = 1,
    progress: Callable[[str], None] | None = None,
    shape: tuple[int, int, int] = SYNTH_SHAPE,
) -> list[Path]:
    """Render synthetic seeds into ``out_dir`` with ``workers`` processes (cases already
    there are kept; each case is rendered from its seed alone, so the result does not
    depend on the number of workers)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    jobs, paths = [], []
    for seed in seeds:
        case_id, modality, dr = synthetic_case(seed, modalities)
        path = out / f"{case_id}.npz"
        paths.append(path)
        if not path.exists():
            jobs.append((path, seed, modality, dr, spacing, shape))
    import contextlib
    import multiprocessing as mp

    parallel = workers > 1 and len(jobs) > 1
    pool_cm = mp.get_context("spawn").Pool(workers, initializer=_one_thread) if parallel else None
    with pool_cm or contextlib.nullcontext() as pool:
        for case_id in (pool.imap_unordered if pool else map)(_render_synthetic, jobs):
            if progress:
                progress(case_id)
    return paths


def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)


def nifti_source(folder: str | Path) -> Iterable[tuple[str, Volume, dict[str, Any]]]:
    """Yield labelled cases from ``<case>_image.nii.gz`` + ``<case>_vertebrae.nii.gz``
    (+ optional ``_structures`` / ``_parts``) files, the layout spinemet itself writes.
    The image modality comes from a ``_ct`` / ``_mr`` suffix of the case name, else a guess.
    """
    import nibabel as nib

    folder = Path(folder)
    for img_path in sorted(folder.glob("*_image.nii*")):
        case = re.sub(r"_image\.nii(\.gz)?$", "", img_path.name)
        mod = (
            "CT" if case.lower().endswith("_ct") else "MR" if case.lower().endswith("_mr") else None
        )
        image = read_nifti(img_path, mod)  # type: ignore[arg-type]
        truth: dict[str, Any] = {}
        for key in ("vertebrae", "structures", "parts"):
            cands = list(folder.glob(f"{case}_{key}.nii*"))
            if not cands:
                if key == "vertebrae":
                    raise InputError("TRAIN_CASE_INCOMPLETE", f"{case}: no {key} label map")
                truth[key] = np.zeros(image.shape, np.int16)
                continue
            lab: Any = nib.load(str(cands[0]))
            from pipeline.io.volume import LPS_TO_RAS

            arr = np.rint(np.asarray(lab.dataobj)).astype(np.int16)
            truth[key] = resample_labels_nearest(
                arr, LPS_TO_RAS @ lab.affine, image.affine, image.shape
            )
        yield f"nifti-{case}", image, truth


def _canonical_pair(image: Volume, truth: dict[str, Any]) -> tuple[Volume, dict[str, Any]]:
    """Bring image and labels to the canonical array order together (the model sees
    canonical arrays at inference, so it must train on them)."""
    can = image.to_canonical()
    if np.allclose(can.affine, image.affine):
        return image, truth
    out = {
        k: Volume(_as_array(v), image.affine, image.modality).to_canonical().array
        for k, v in truth.items()
        if k in ("vertebrae", "structures", "parts")
    }
    return can, out


def build_cache(
    out_dir: str | Path,
    source: Iterable[tuple[str, Volume, dict[str, Any]]],
    spacing: float,
    progress: Callable[[str], None] | None = None,
) -> list[Path]:
    """Render every case of ``source`` into ``out_dir`` (skipping files already there)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for case_id, image, truth in source:
        path = out / f"{case_id}.npz"
        if not path.exists():
            _write_case(path, image, truth, spacing)
        written.append(path)
        if progress:
            progress(case_id)
    return written


def load_case(path: str | Path) -> dict[str, npt.NDArray[Any]]:
    """Read one cached case."""
    with np.load(path) as z:
        return {k: z[k] for k in z.files}
