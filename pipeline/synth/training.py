"""Fast in-memory image / label pairs for training segmentation models.

:func:`make_training_pair` draws a random spine with random pathology, samples it on a
canonical (L, P, S) grid around a random point of the spine and renders either a
realistic CT / MR contrast or, by default, a domain-randomised image (random intensity
per tissue, random resolution, blur, bias field, noise and gamma, as SynthSeg does).
"""

from __future__ import annotations

import numpy as np

from pipeline.io.volume import Modality, Volume
from pipeline.synth import render
from pipeline.synth.anatomy import level_run
from pipeline.synth.generator import REGIONS, StudyOptions, random_world
from pipeline.synth.world import sample_world


def _training_levels(rng: np.random.Generator) -> tuple[str, list[int]]:
    region = str(rng.choice(list(REGIONS)))
    first, last = REGIONS[region]
    # Occasionally extend the run to the skull base or sacrum for variety.
    if region == "cervical" and rng.random() < 0.5:
        first = 1
    numbers = level_run(first, last)
    return region, numbers


def make_training_pair(
    seed: int,
    modality: Modality = "CT",
    *,
    domain_randomised: bool = True,
    spacing_mm: tuple[float, float, float] = (1.5, 1.5, 1.5),
    shape: tuple[int, int, int] | None = None,
) -> tuple[Volume, dict[str, Volume]]:
    """One random synthetic image and its label maps, on the same canonical grid.

    Parameters
    ----------
    seed : int
        Everything is drawn from ``numpy.random.default_rng(seed)``: same seed, same pair.
    modality : {"CT", "MR"}
        Realistic contrast when ``domain_randomised`` is False (CT in HU; MR T1, T2 or
        STIR at random); recorded on the returned volumes either way.
    domain_randomised : bool
        Random intensity per tissue and random resolution / blur / bias / noise / gamma;
        image scaled to [0, 1].
    spacing_mm : tuple of float
        Voxel size (i, j, k) in mm.
    shape : tuple of int, optional
        Grid shape; default ``(128, 128, 128)``.

    Returns
    -------
    image : Volume
        float32 image; canonical orientation (axis 0 -> L, 1 -> P, 2 -> S).
    labels : dict of Volume
        ``"vertebrae"`` (int16, VerSe numbers), ``"structures"`` (uint8: 1 thecal sac / CSF,
        2 cord, 3 epidural tumour, 4 lytic, 5 blastic, 6 disc) and ``"parts"`` (uint8:
        1 body, 2 left pedicle, 3 right pedicle, 4 posterior elements), see
        :mod:`pipeline.labels`.
    """
    rng = np.random.default_rng(seed)
    shape = shape or (128, 128, 128)
    region, numbers = _training_levels(rng)
    world, plan = random_world(rng, StudyOptions(region=region), numbers=numbers)
    lay = world.layout
    # Centre the field of view on a random point of the run, near the canal.
    s = float(rng.uniform(lay.curve.s[0] + 150, lay.curve.s[-1] - 150))
    i = int(round((s - lay.curve.s[0]) / lay.curve.ds))
    centre = lay.curve.points[i] - lay.curve.frames[i][:, 1] * rng.uniform(0, 30)
    centre = centre + rng.normal(0, 8, 3)
    sp = np.asarray(spacing_mm, dtype=float)
    affine = np.eye(4)
    affine[:3, :3] = np.diag(sp)
    affine[:3, 3] = centre - sp * (np.asarray(shape) - 1) / 2
    if domain_randomised:
        values = render.random_values(rng)
        contrast = "random"
    else:
        contrast = "CT" if modality == "CT" else str(rng.choice(["T1", "T2", "STIR"]))
        values = render.tissue_values(contrast, rng, contrast_agent=world.soft.contrast)
    images, labels = sample_world(world, shape, affine, [values])
    img = images[0]
    if domain_randomised:
        img = render.random_degrade(img, rng)
    elif contrast == "CT":
        img = render.ct_degrade(
            img, sp, rng, noise_hu=float(rng.uniform(8, 30)), psf_mm=float(rng.uniform(0.4, 0.9))
        )
    else:
        img = render.mr_degrade(img, sp, rng, snr=float(rng.uniform(15, 40)), bias=float(rng.uniform(0.05, 0.3)),
                                psf_mm=float(rng.uniform(0.5, 1.0)))  # fmt: skip
    meta = {"source": f"synthetic seed {seed}", "contrast": contrast, "plan": plan.as_dict()}
    vol = Volume(img.astype(np.float32), affine, modality, meta)
    lab = {k: vol.with_array(v) for k, v in labels.items()}
    return vol, lab
