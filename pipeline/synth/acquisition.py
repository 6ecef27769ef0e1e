"""Acquisition grids (CT axial, MR sagittal, MR axial) and sampling a world onto them.

A :class:`Series` grid is stored in DICOM order: array index ``i`` runs along the row
direction (columns of the image), ``j`` along the column direction (rows), ``k`` across
slices; the affine maps ``(i, j, k)`` to LPS, so it *is* the DICOM geometry
(``ImageOrientationPatient`` = first two affine columns, ``ImagePositionPatient`` of
slice ``k`` = ``affine @ (0, 0, k, 1)``). Orientation variants (flipped row/column
cosines, reversed slice order, oblique planes) only change the affine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipeline.io.volume import Modality
from pipeline.synth import render
from pipeline.synth.world import World, sample_world


@dataclass
class Series:
    """One acquisition: grid, contrast and acquisition parameters."""

    name: str  # folder name, e.g. "ct_axial", "t2_sag"
    modality: Modality
    contrast: str  # "CT", "T1", "T2", "STIR"
    plane: str  # "axial", "sagittal"
    shape: tuple[int, int, int]
    affine: np.ndarray
    thickness: float
    description: str
    number: int
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def spacing(self) -> np.ndarray:
        """Voxel spacing (i, j, k) in mm."""
        return np.linalg.norm(self.affine[:3, :3], axis=0)


def _rotation(axis: np.ndarray, deg: float) -> np.ndarray:
    a = np.asarray(axis, float) / np.linalg.norm(axis)
    t = np.radians(deg)
    k = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + np.sin(t) * k + (1 - np.cos(t)) * (k @ k)


def make_grid(
    row: np.ndarray,
    col: np.ndarray,
    centre: np.ndarray,
    shape: tuple[int, int, int],
    spacing: tuple[float, float, float],
) -> np.ndarray:
    """Affine of a stack with row/column cosines, centred on ``centre`` (LPS)."""
    row = np.asarray(row, float) / np.linalg.norm(row)
    col = np.asarray(col, float)
    col = col - row * (col @ row)
    col /= np.linalg.norm(col)
    normal = np.cross(row, col)
    aff = np.eye(4)
    aff[:3, 0] = row * spacing[0]
    aff[:3, 1] = col * spacing[1]
    aff[:3, 2] = normal * spacing[2]
    aff[:3, 3] = centre - aff[:3, :3] @ ((np.asarray(shape) - 1) / 2)
    return aff


def _orient(rng: np.random.Generator, row: np.ndarray, col: np.ndarray, orientation: str,
            oblique_axis: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:  # fmt: skip
    """Apply an orientation variant: standard, flipped (row/col/slices) or oblique."""
    reverse = False
    if orientation == "flipped":
        choice = int(rng.integers(0, 3))
        if choice == 0:
            row = -row
        elif choice == 1:
            col = -col
        else:
            reverse = True
    elif orientation == "oblique":
        r = _rotation(oblique_axis, float(rng.uniform(8, 15) * rng.choice([-1, 1])))
        row, col = r @ row, r @ col
    return row, col, reverse


def _finish(aff: np.ndarray, shape: tuple[int, int, int], reverse: bool) -> np.ndarray:
    if reverse:  # slices stored in the opposite order
        aff = aff.copy()
        aff[:3, 3] = aff[:3, 3] + aff[:3, 2] * (shape[2] - 1)
        aff[:3, 2] = -aff[:3, 2]
    return aff


def spine_span(world: World) -> tuple[np.ndarray, np.ndarray, float]:
    """Centre of the run's bodies (LPS), the cranio-caudal unit axis and its length (mm)."""
    lay = world.layout
    cs = np.array([lay.vertebrae[n].centre for n in lay.numbers])
    top, bot = cs[0], cs[-1]
    axis = top - bot
    length = float(np.linalg.norm(axis)) + 2 * lay.vertebrae[lay.numbers[0]].height
    return np.asarray((top + bot) / 2), np.asarray(axis / np.linalg.norm(axis)), length


def ct_axial(world: World, rng: np.random.Generator, *, orientation: str = "standard", matrix: int = 256,
             pixel: float | None = None, slice_mm: float | None = None, max_slices: int = 200,
             centre_level: int | list[int] | None = None, n_slices: int | None = None) -> Series:  # fmt: skip
    """An axial CT stack over the run (0.7-0.9 mm pixels, 1-2 mm slices).

    When ``max_slices`` cannot cover the run, the stack is centred on ``centre_level``
    (default: the run's centre).
    """
    pixel = float(rng.uniform(0.7, 0.9)) if pixel is None else pixel
    if slice_mm is None:  # thin slices where bodies are small (heights must stay measurable)
        small = min(world.layout.numbers) <= 9
        slice_mm = float(rng.choice([1.0, 1.25] if small else [1.0, 1.25, 1.5, 2.0]))
    centre, _, _ = spine_span(world)
    lay = world.layout
    zs = [lay.vertebrae[n].centre[2] for n in lay.numbers]
    zext = max(zs) - min(zs) + lay.vertebrae[lay.numbers[0]].height + 10
    if n_slices is None and zext / slice_mm > max_slices:  # thicker slices before cropping
        slice_mm = next(
            (s for s in (1.25, 1.5, 2.0, 2.5, 3.0) if zext / s <= max_slices and s > slice_mm),
            slice_mm,
        )
    nk = int(min(max_slices, np.ceil(zext / slice_mm))) if n_slices is None else n_slices
    if nk * slice_mm < zext and centre_level is not None:
        levels = [centre_level] if isinstance(centre_level, int) else centre_level
        centre = np.mean([lay.vertebrae[n].centre for n in levels], axis=0)
    centre = centre + np.array([0.0, 25.0, 0.0])  # include the posterior elements
    row, col, rev = _orient(
        rng, np.array([1.0, 0, 0]), np.array([0, 1.0, 0]), orientation, np.array([1.0, 0, 0])
    )
    shape = (matrix, matrix, nk)
    aff = _finish(make_grid(row, col, centre, shape, (pixel, pixel, slice_mm)), shape, rev)
    kvp = float(rng.choice([100.0, 120.0, 140.0]))
    noise = float(rng.uniform(10, 25)) * (120 / kvp)
    return Series("ct_axial", "CT", "CT", "axial", shape, aff, slice_mm, "CT SPINE AXIAL", 2,
                  {"kvp": kvp, "noise_hu": noise, "psf_mm": float(rng.uniform(0.5, 0.8)),
                   "kernel": "STANDARD"})  # fmt: skip


def mr_sagittal(world: World, rng: np.random.Generator, contrast: str = "T2", *, orientation: str = "standard",
                number: int = 3, matrix: int = 320) -> Series:  # fmt: skip
    """A sagittal MR stack (3-4 mm slices) through the canal, covering the run."""
    centre, axis, length = spine_span(world)
    thick = float(rng.choice([3.0, 3.5, 4.0]))
    pixel = float(np.clip((length + 40) / matrix, 0.6, 1.2))
    nk = int(rng.integers(15, 20))
    centre = centre + np.array([0.0, 20.0, 0.0])
    row, col, rev = _orient(
        rng, np.array([0, 1.0, 0]), np.array([0, 0, -1.0]), orientation, np.array([0, 1.0, 0])
    )
    shape = (matrix, matrix, nk)
    aff = _finish(make_grid(row, col, centre, shape, (pixel, pixel, thick)), shape, rev)
    tr, te, ti = render.MR_SEQUENCES[contrast]
    return Series(f"{contrast.lower()}_sag", "MR", contrast, "sagittal", shape, aff, thick, f"{contrast} SAG", number,
                  {"tr": tr, "te": te, "ti": ti, "snr": float(rng.uniform(20, 40)),
                   "bias": float(rng.uniform(0.1, 0.3)), "psf_mm": float(rng.uniform(0.6, 1.0))})  # fmt: skip


def mr_axial(world: World, rng: np.random.Generator, level: int, contrast: str = "T2", *,
             orientation: str = "standard", number: int = 4, matrix: int = 256, n_levels: int = 2) -> Series:  # fmt: skip
    """An axial MR stack perpendicular to the spine at ``level`` (3-4 mm slices, +-n levels)."""
    lay = world.layout
    v = lay.vertebrae[level]
    thick = float(rng.choice([3.0, 3.5, 4.0]))
    pixel = float(rng.uniform(0.6, 0.8))
    i = lay.numbers.index(level)
    ends = [
        lay.vertebrae[lay.numbers[max(0, i - n_levels)]].centre,
        lay.vertebrae[lay.numbers[min(len(lay.numbers) - 1, i + n_levels)]].centre,
    ]
    span = float(np.linalg.norm(ends[0] - ends[1])) + 10
    nk = int(min(40, np.ceil(span / thick)))
    row, col = v.frame[:, 0], v.frame[:, 1]  # perpendicular to the spine at the level
    row, col, rev = _orient(rng, row, col, orientation, v.frame[:, 0])
    centre = lay.curve.points[
        int(round((sum(lay.segment_s[level]) / 2 - lay.curve.s[0]) / lay.curve.ds))
    ]
    centre = centre - v.frame[:, 1] * 15
    shape = (matrix, matrix, nk)
    aff = _finish(make_grid(row, col, centre, shape, (pixel, pixel, thick)), shape, rev)
    tr, te, ti = render.MR_SEQUENCES[contrast]
    return Series(f"{contrast.lower()}_ax", "MR", contrast, "axial", shape, aff, thick, f"{contrast} AX", number,
                  {"tr": tr, "te": te, "ti": ti, "snr": float(rng.uniform(20, 40)),
                   "bias": float(rng.uniform(0.1, 0.3)), "psf_mm": float(rng.uniform(0.5, 0.8))})  # fmt: skip


def acquire(
    world: World, series: Series, rng: np.random.Generator
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Render ``series``: image (float32; HU for CT) and label maps on its grid.

    Thick slices are integrated over the slice profile (sub-slices averaged); labels
    are sampled at the slice centre.
    """
    contrast_agent = world.soft.contrast and series.modality == "CT"
    values = render.tissue_values(series.contrast, rng, contrast_agent=contrast_agent)
    sp = series.spacing
    n_sub = 3 if series.thickness >= 2.5 and series.modality == "MR" else 1
    h = float(np.mean(sp[:2]))
    if n_sub == 1:
        imgs, labels = sample_world(world, series.shape, series.affine, [values], h=h)
        img = imgs[0]
    else:
        acc = np.zeros(series.shape, np.float32)
        labels = {}
        for s in range(n_sub):
            off = (s + 0.5) / n_sub - 0.5  # in slice units (thickness ~ spacing here)
            aff = series.affine.copy()
            aff[:3, 3] = aff[:3, 3] + aff[:3, 2] * off * series.thickness / sp[2]
            imgs, lab = sample_world(
                world, series.shape, aff, [values], h=h, labels=(s == n_sub // 2 and n_sub % 2 == 1)
            )
            acc += imgs[0]
            if lab:
                labels = lab
        img = (acc / n_sub).astype(np.float32)
        if not labels:
            _, labels = sample_world(world, series.shape, series.affine, [values], h=h)
    if series.modality == "CT":
        img = render.ct_degrade(
            img, sp, rng, noise_hu=series.params["noise_hu"], psf_mm=series.params["psf_mm"]
        )
    else:
        img = render.mr_degrade(
            img,
            sp,
            rng,
            snr=series.params["snr"],
            bias=series.params["bias"],
            psf_mm=series.params["psf_mm"],
        )
    return img, labels


def acquire_labels(world: World, series: Series) -> dict[str, np.ndarray]:
    """Only the label maps of ``series`` (no image): fast path for verification."""
    _, labels = sample_world(
        world, series.shape, series.affine, [], h=float(np.mean(series.spacing[:2]))
    )
    return labels
