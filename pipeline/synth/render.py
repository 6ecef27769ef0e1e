"""Tissue intensities and image degradation: CT (HU), MR T1/T2/STIR, domain-randomised.

Intensity tables are arrays indexed by the tissue codes of
:mod:`pipeline.synth.config`; :func:`~pipeline.synth.world.sample_world` composites
them with partial volume. The degradations here act on the sampled image: a Gaussian
point-spread blur, noise (Gaussian for CT, Rician for MR), a smooth multiplicative bias
field for MR.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from pipeline.synth import config as C

F32 = npt.NDArray[np.float32]

# (mean, per-study jitter sd) per tissue. CT in HU; MR in arbitrary units (0-1000).
_CT = {
    C.AIR: (-1000, 0), C.FAT: (-100, 10), C.MUSCLE: (50, 8), C.VISCERA: (35, 8), C.LUNG: (-840, 30),
    C.BLOOD: (40, 5), C.EPI_FAT: (-90, 10), C.CSF: (8, 4), C.CORD: (32, 4), C.DISC: (85, 10),
    C.CORTICAL: (950, 120), C.TRABECULAR: (230, 50), C.POSTERIOR_BONE: (380, 60),
    C.LYTIC: (40, 10), C.BLASTIC: (850, 120), C.EPIDURAL_TUMOUR: (45, 8),
}  # fmt: skip
_T1 = {
    C.AIR: (0, 0), C.FAT: (900, 40), C.MUSCLE: (330, 30), C.VISCERA: (420, 40), C.LUNG: (25, 5),
    C.BLOOD: (90, 20), C.EPI_FAT: (850, 40), C.CSF: (140, 20), C.CORD: (430, 30), C.DISC: (310, 30),
    C.CORTICAL: (30, 10), C.TRABECULAR: (620, 60), C.POSTERIOR_BONE: (560, 60),
    C.LYTIC: (260, 30), C.BLASTIC: (70, 20), C.EPIDURAL_TUMOUR: (340, 30),
}  # fmt: skip
_T2 = {
    C.AIR: (0, 0), C.FAT: (720, 50), C.MUSCLE: (140, 20), C.VISCERA: (300, 40), C.LUNG: (20, 5),
    C.BLOOD: (80, 20), C.EPI_FAT: (680, 50), C.CSF: (1000, 40), C.CORD: (360, 30), C.DISC: (650, 80),
    C.CORTICAL: (25, 8), C.TRABECULAR: (380, 40), C.POSTERIOR_BONE: (330, 40),
    C.LYTIC: (600, 60), C.BLASTIC: (80, 20), C.EPIDURAL_TUMOUR: (470, 40),
}  # fmt: skip
_STIR = {
    C.AIR: (0, 0), C.FAT: (60, 15), C.MUSCLE: (160, 20), C.VISCERA: (350, 40), C.LUNG: (20, 5),
    C.BLOOD: (80, 20), C.EPI_FAT: (70, 15), C.CSF: (1000, 40), C.CORD: (420, 30), C.DISC: (600, 80),
    C.CORTICAL: (25, 8), C.TRABECULAR: (120, 20), C.POSTERIOR_BONE: (110, 20),
    C.LYTIC: (820, 60), C.BLASTIC: (140, 30), C.EPIDURAL_TUMOUR: (700, 50),
}  # fmt: skip
TABLES = {"CT": _CT, "T1": _T1, "T2": _T2, "STIR": _STIR}

#: Acquisition tags per MR weighting: (TR ms, TE ms, TI ms or None, series description).
MR_SEQUENCES = {
    "T1": (550.0, 10.0, None),
    "T2": (3500.0, 95.0, None),
    "STIR": (4000.0, 45.0, 160.0),
}


def tissue_values(
    contrast: str, rng: np.random.Generator | None = None, *, contrast_agent: bool = False
) -> F32:
    """Intensity per tissue for ``contrast`` ("CT", "T1", "T2", "STIR"), jittered per study."""
    tab = TABLES[contrast]
    out = np.zeros(C.N_TISSUES, np.float32)
    for t, (m, sd) in tab.items():
        out[t] = m + (rng.normal(0, sd) if rng is not None and sd > 0 else 0.0)
    if contrast == "CT" and contrast_agent:
        out[C.BLOOD] = 180 + (rng.normal(0, 30) if rng is not None else 0.0)
    return out


def random_values(rng: np.random.Generator) -> F32:
    """Domain randomisation: an independent random intensity per tissue (SynthSeg-like)."""
    return rng.uniform(0.0, 1.0, C.N_TISSUES).astype(np.float32)


def blur(img: F32, sigma_vox: npt.ArrayLike) -> F32:
    """Separable Gaussian point-spread blur, ``sigma_vox`` per axis in voxels."""
    sig = np.asarray(sigma_vox, dtype=float)
    if np.all(sig < 0.05):
        return img
    return ndimage.gaussian_filter(img, sig, mode="nearest", truncate=3.0).astype(
        np.float32, copy=False
    )


def bias_field(shape: tuple[int, ...], rng: np.random.Generator, strength: float) -> F32:
    """Smooth multiplicative field ``exp(strength * f)`` (``f`` ~ unit sd, low order).

    ``f`` is a sum of random cubic polynomials along each axis plus one cross term,
    evaluated by broadcasting, so it costs a few passes over the volume.
    """
    axes = [np.linspace(-1, 1, n, dtype=np.float32) for n in shape]
    polys = []
    for a in axes:
        c = rng.normal(0, 1, 4) * np.array([0, 0.6, 0.35, 0.2])
        polys.append((c[1] * a + c[2] * (a**2 - 1 / 3) + c[3] * a**3).astype(np.float32))
    f = polys[0][:, None, None] + polys[1][None, :, None] + polys[2][None, None, :]
    f = f + np.float32(rng.normal(0, 0.4)) * axes[0][:, None, None] * axes[2][None, None, :]
    return np.exp(np.float32(strength) * f).astype(np.float32)


def ct_degrade(
    img: F32, spacing: npt.ArrayLike, rng: np.random.Generator, *, noise_hu: float, psf_mm: float
) -> F32:
    """CT: white noise then PSF blur (gives correlated noise); clip to the HU range."""
    sp = np.asarray(spacing, dtype=float)
    noise_sigma = noise_hu * 1.8  # blur removes part of the white-noise variance
    img = img + rng.standard_normal(img.shape, dtype=np.float32) * np.float32(noise_sigma)
    img = blur(img, psf_mm / sp)
    np.clip(img, -1024, 3071, out=img)
    return img


def mr_degrade(
    img: F32,
    spacing: npt.ArrayLike,
    rng: np.random.Generator,
    *,
    snr: float,
    bias: float,
    psf_mm: float,
) -> F32:
    """MR: PSF blur, bias field, Rician noise (``snr`` relative to intensity 1000)."""
    sp = np.asarray(spacing, dtype=float)
    img = blur(img, psf_mm / sp)
    if bias > 0:
        img = img * bias_field(img.shape, rng, bias)
    sd = np.float32(1000.0 / snr)
    n1 = rng.standard_normal(img.shape, dtype=np.float32) * sd
    n2 = rng.standard_normal(img.shape, dtype=np.float32) * sd
    return np.sqrt((img + n1) ** 2 + n2**2).astype(np.float32)


def random_degrade(img: F32, rng: np.random.Generator) -> F32:
    """Domain randomisation of resolution, blur, bias, noise and gamma; output in [0, 1]."""
    # Anisotropic resolution: blur one random axis as a thick slice would.
    sig = rng.uniform(0.0, 0.8, 3)
    if rng.random() < 0.6:
        sig[rng.integers(0, 3)] = rng.uniform(0.8, 2.5)
    img = blur(img, sig)
    if rng.random() < 0.8:
        img = img * bias_field(img.shape, rng, float(rng.uniform(0.05, 0.35)))
    img = img + rng.standard_normal(img.shape, dtype=np.float32) * np.float32(
        rng.uniform(0.0, 0.06)
    )
    lo, hi = np.percentile(img[::4, ::4, ::4], [0.5, 99.5])
    img = np.clip((img - lo) / max(hi - lo, 1e-6), 0, 1)
    gamma = float(np.exp(rng.normal(0, 0.3)))
    return (img**gamma).astype(np.float32)
