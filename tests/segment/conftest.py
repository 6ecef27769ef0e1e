"""A tiny spine phantom with known labels (for tests; not the synthetic-study generator)."""

from __future__ import annotations

import numpy as np

from pipeline import labels as L
from pipeline.io.volume import Volume


def spine_phantom(
    n_levels: int = 4,
    sacrum: bool = True,
    spacing: float = 2.0,
    lowest: int = 24,
    modality: str = "CT",
) -> tuple[Volume, dict[str, np.ndarray]]:
    """Axial phantom, canonical orientation: bodies stacked along +S with discs between.

    Returns the image and ``{"vertebrae", "structures", "parts"}`` on its grid. The lowest
    vertebra is ``lowest`` (VerSe number), the others follow upwards.
    """
    body_h, disc_h = int(24 / spacing), int(8 / spacing)
    nk = (n_levels * (body_h + disc_h)) + (int(20 / spacing) if sacrum else 0) + 6
    ni, nj = int(100 / spacing), int(100 / spacing)
    ii, jj = np.meshgrid(np.arange(ni), np.arange(nj), indexing="ij")
    xi, yj = (ii - ni / 2) * spacing, (jj - nj / 2) * spacing  # mm from centre (+L, +P)
    vert = np.zeros((ni, nj, nk), np.int16)
    struct = np.zeros_like(vert)
    parts = np.zeros_like(vert)
    body2d = (xi / 20) ** 2 + ((yj + 10) / 14) ** 2 <= 1
    canal2d = xi**2 + (yj - 14) ** 2 <= 7.5**2
    cord2d = xi**2 + (yj - 14) ** 2 <= 4**2
    ped_l = (xi > 8) & (xi < 13) & (yj > 3) & (yj < 24)
    ped_r = (xi < -8) & (xi > -13) & (yj > 3) & (yj < 24)
    post2d = (np.abs(xi) < 14) & (yj >= 22) & (yj < 28) | (
        (np.abs(xi) < 3) & (yj >= 28) & (yj < 40)
    )
    k = 3
    if sacrum:
        s_h = int(20 / spacing)
        vert[:, :, k : k + s_h][body2d] = 26
        k += s_h + disc_h
    for n in range(n_levels):
        level = lowest - n
        sl = slice(k, k + body_h)
        vert[:, :, sl][body2d | ped_l | ped_r | post2d] = level
        parts[:, :, sl][body2d] = L.BODY
        parts[:, :, sl][ped_l] = L.PEDICLE_L
        parts[:, :, sl][ped_r] = L.PEDICLE_R
        parts[:, :, sl][post2d] = L.POSTERIOR
        k += body_h
        if n < n_levels - 1:
            struct[:, :, k : k + disc_h][body2d] = L.DISC
        k += disc_h
    struct[:, :, :][canal2d] = L.SAC
    struct[:, :, :][cord2d] = L.CORD
    img = np.full(vert.shape, 40.0 if modality == "CT" else 200.0, np.float32)
    img[vert > 0] = 700.0 if modality == "CT" else 150.0
    img[struct == L.SAC] = 10.0 if modality == "CT" else 900.0
    img[struct == L.CORD] = 35.0 if modality == "CT" else 500.0
    img[struct == L.DISC] = 90.0 if modality == "CT" else 600.0
    aff = np.diag([spacing, spacing, spacing, 1.0])
    aff[:3, 3] = [-50.0, -80.0, -400.0]
    return Volume(img, aff, modality), {"vertebrae": vert, "structures": struct, "parts": parts}  # type: ignore[arg-type]


import pytest  # noqa: E402


@pytest.fixture
def phantom():
    """The phantom factory (call it with the options of :func:`spine_phantom`)."""
    return spine_phantom
