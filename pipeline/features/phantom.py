"""Small analytic spine phantoms in patient space, for tests and examples.

Not the synthetic-study generator (``pipeline.synth``): a few boxes, ellipses and
cylinders defined in LPS millimetres, sampled onto any grid (axial, sagittal, oblique,
flipped cosines) so that features can be checked for orientation independence.

Layout of one vertebra in its own frame (x left, y posterior, z superior, origin at the
canal centre): body an elliptic cylinder centred 18 mm anterior to the canal; pedicles
either side of the canal; lamina, facets and spinous process behind it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from pipeline import labels as L

BODY_HW, BODY_HD, BODY_H, DISC = 16.0, 12.0, 20.0, 6.0
BODY_CY = -20.0  # body centre y (anterior is -y)
CANAL_R, SAC_R = 11.0, 8.5
CORD_RX, CORD_RY = 4.5, 3.2


@dataclass
class PhantomVertebra:
    """One vertebra of the phantom and its pathology."""

    label: int
    # rigid placement: translation (LPS mm) and rotation about the left axis (kyphosis, deg,
    # positive tilts the top forward) and about the anterior axis (scoliosis, deg)
    shift: tuple[float, float, float] = (0.0, 0.0, 0.0)
    kyphosis_deg: float = 0.0
    scoliosis_deg: float = 0.0
    # anterior wedge collapse: fraction of the anterior height lost (0-1); uniform collapse
    wedge: float = 0.0
    uniform: float = 0.0
    # osseous lesion: "lytic" | "blastic" | "mixed" | None; where: "body", "left_pedicle",
    # "right_pedicle", "posterior" (lamina/spinous), "left_facet", "right_facet"
    lesion: str | None = None
    lesion_where: tuple[str, ...] = ("body",)
    lesion_body_fraction: float = 0.35
    # epidural tumour grade built at this level (None: none)
    escc: str | None = None


@dataclass
class Phantom:
    """A column of vertebrae (labels head to feet) with canal, sac and cord."""

    vertebrae: list[PhantomVertebra] = field(default_factory=list)
    top_z: float = 60.0

    def centre_z(self, i: int) -> float:
        """Canal-centre height of vertebra ``i`` (0 = top)."""
        return self.top_z - i * (BODY_H + DISC)


def default_phantom(first: int = 15, n: int = 5) -> Phantom:
    """``n`` healthy vertebrae starting at VerSe label ``first`` (15 = T8)."""
    return Phantom([PhantomVertebra(first + k) for k in range(n)])


def _rot(kdeg: float, sdeg: float) -> npt.NDArray[np.float64]:
    k, s = np.radians(kdeg), np.radians(sdeg)
    # kyphosis: rotation about +x so that the top (+z) moves anterior (-y)
    rx = np.array([[1, 0, 0], [0, np.cos(k), -np.sin(k)], [0, np.sin(k), np.cos(k)]])
    # scoliosis: rotation about y so that the top moves toward +x (left)
    ry = np.array([[np.cos(s), 0, np.sin(s)], [0, 1, 0], [-np.sin(s), 0, np.cos(s)]])
    return ry @ rx


def render(
    ph: Phantom, shape: tuple[int, int, int], affine: npt.NDArray[np.float64]
) -> dict[str, npt.NDArray[np.float32 | np.int16]]:
    """Sample the phantom on a grid: ``vertebrae``, ``structures``, ``parts``, ``ct``."""
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1).reshape(-1, 3)
    pts = ijk @ affine[:3, :3].T + affine[:3, 3]
    n = len(pts)
    vert = np.zeros(n, np.int16)
    part = np.zeros(n, np.int16)
    struct = np.zeros(n, np.int16)
    ct = np.full(n, 40.0, np.float32)
    for i, v in enumerate(ph.vertebrae):
        c = np.array([0.0, 0.0, ph.centre_z(i)]) + np.asarray(v.shift)
        q = (pts - c) @ _rot(v.kyphosis_deg, v.scoliosis_deg)  # world -> local (R^T p)
        x, y, z = q[:, 0], q[:, 1], q[:, 2]
        # body with collapse: top surface lowered, more anteriorly for a wedge
        ant = np.clip((BODY_CY + BODY_HD - y) / (2 * BODY_HD), 0, 1)  # 0 posterior .. 1 anterior
        top = BODY_H / 2 - BODY_H * (v.uniform + v.wedge * ant)
        in_body = (
            ((x / BODY_HW) ** 2 + ((y - BODY_CY) / BODY_HD) ** 2 <= 1)
            & (z <= top)
            & (z >= -BODY_H / 2)
        )
        hz = np.abs(z) <= 6.0
        ped_l = hz & (x >= 7.0) & (x <= 11.0) & (y >= -10.0) & (y <= 4.0)
        ped_r = hz & (x <= -7.0) & (x >= -11.0) & (y >= -10.0) & (y <= 4.0)
        lamina = hz & (np.abs(x) <= 11.0) & (y > 10.0) & (y <= 14.0) & (x**2 + y**2 > CANAL_R**2)
        spinous = (
            (np.abs(x) <= 2.5) & (y > 14.0) & (y <= 32.0) & (np.abs(z + 0.3 * (y - 14)) <= 5.0)
        )
        facet = (
            (np.abs(z) <= 8.0) & (np.abs(x) > 11.0) & (np.abs(x) <= 17.0) & (y > 4.0) & (y <= 14.0)
        )
        post = (
            lamina
            | spinous
            | facet
            | (hz & (np.abs(x) <= 11.0) & (y > 4.0) & (y <= 10.0) & (x**2 + y**2 > CANAL_R**2))
        )
        for mask, code in (
            (in_body, L.BODY),
            (ped_l, L.PEDICLE_L),
            (ped_r, L.PEDICLE_R),
            (post, L.POSTERIOR),
        ):
            sel = mask & (vert == 0)
            vert[sel] = v.label
            part[sel] = code
        bone = (vert == v.label) & (part > 0)
        ct[bone & (part == L.BODY)] = 220.0
        ct[bone & (part != L.BODY)] = 400.0
        # osseous lesion
        if v.lesion:
            les = np.zeros(n, bool)
            for w in v.lesion_where:
                if w == "body":
                    r = np.sqrt(v.lesion_body_fraction)
                    les |= in_body & (
                        (x / (BODY_HW * r)) ** 2 + ((y - BODY_CY) / (BODY_HD * r)) ** 2 <= 1
                    )
                elif w == "left_pedicle":
                    les |= ped_l
                elif w == "right_pedicle":
                    les |= ped_r
                elif w == "left_facet":
                    les |= facet & (x > 0)
                elif w == "right_facet":
                    les |= facet & (x < 0)
                elif w == "posterior":
                    les |= spinous
            les &= vert == v.label
            if v.lesion == "mixed":
                lyt = les & (x >= 0)
                bla = les & (x < 0)
            elif v.lesion == "lytic":
                lyt, bla = les, np.zeros(n, bool)
            else:
                lyt, bla = np.zeros(n, bool), les
            struct[lyt] = L.LYTIC
            struct[bla] = L.BLASTIC
            ct[lyt] = 30.0
            ct[bla] = 900.0
        # canal contents within this vertebra's slab (to the middle of each disc)
        slab = np.abs(z) <= (BODY_H + DISC) / 2
        _canal(x, y, z, slab, v.escc, struct, ct)
    return {
        "vertebrae": vert.reshape(shape),
        "parts": part.reshape(shape),
        "structures": struct.reshape(shape),
        "ct": ct.reshape(shape),
    }


def _canal(x: Any, y: Any, z: Any, slab: Any, grade: str | None, struct: Any, ct: Any) -> None:
    """Sac, cord and an epidural mass built to a Bilsky grade (anterior mass)."""
    free = slab & (struct == 0)
    r2 = x**2 + y**2
    sac = free & (r2 <= SAC_R**2)
    cord_rx, cord_ry, cord_cy = CORD_RX, CORD_RY, 0.0
    tumour = np.zeros_like(sac)
    inlevel = np.abs(z) <= 6.0  # the mass spans the middle of the body height
    epi = free & (r2 <= CANAL_R**2) & (y < 0) & inlevel & (np.abs(x) <= 6.0)
    if grade == "1a":
        tumour = epi & (r2 > SAC_R**2)
    elif grade == "1b":
        tumour = epi & ((r2 > SAC_R**2) | (x**2 + (y + SAC_R + 1.5) ** 2 <= 5.0**2))  # concave bite
    elif grade == "1c":
        tumour = epi & ((r2 > SAC_R**2) | (y < -CORD_RY - 0.01))
    elif grade in ("2", "3"):
        # cord pushed back and flattened: its anterior surface at y = -1
        cord_ry, cord_cy = 2.0, 1.0
        if grade == "2":
            cord_rx = 5.0
            tumour = epi & ((r2 > SAC_R**2) | (y < cord_cy - cord_ry - 0.01))
        else:
            cord_rx = 6.0
            tumour = (
                free
                & inlevel
                & (r2 <= CANAL_R**2)
                & (((x / cord_rx) ** 2 + ((y - cord_cy) / cord_ry) ** 2) > 1)
            )
    cord_m = slab & (((x / cord_rx) ** 2 + ((y - cord_cy) / cord_ry) ** 2) <= 1) & (struct == 0)
    sel_s = sac & ~tumour & (struct == 0)
    struct[sel_s] = L.SAC
    ct[sel_s] = 10.0
    struct[cord_m & ~tumour] = L.CORD
    ct[cord_m & ~tumour] = 35.0
    t = tumour & (struct == 0) | (tumour & (struct == L.SAC))
    struct[t] = L.EPIDURAL
    ct[t] = 60.0


def grid(
    kind: str,
    spacing: float = 1.0,
    fov: tuple[float, float, float] = (70.0, 80.0, 140.0),
    centre: tuple[float, float, float] = (0.0, 0.0, 8.0),
) -> tuple[tuple[int, int, int], npt.NDArray[np.float64]]:
    """A grid (shape, affine) covering the phantom in one acquisition orientation.

    ``kind``: ``axial`` (i right->left, j anterior->posterior, k feet->head), ``axial_flipped``
    (row and column cosines reversed), ``sagittal`` (i A->P, j S->I, k R->L), ``oblique``
    (axial rotated 20 deg about S and 15 deg about L).
    """
    if kind == "axial":
        d = np.eye(3)
    elif kind == "axial_flipped":
        d = np.diag([-1.0, -1.0, 1.0])
    elif kind == "sagittal":
        d = np.array([[0, 0, 1.0], [1.0, 0, 0], [0, -1.0, 0]])
    elif kind == "oblique":
        a, b = np.radians(20), np.radians(15)
        rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
        rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
        d = rz @ rx
    else:
        raise ValueError(kind)
    # extent along each voxel axis: project the fov box on the axis
    ext = np.abs(d.T) @ np.asarray(fov)
    sh = [int(np.ceil(e / spacing)) + 1 for e in ext]
    shape = (sh[0], sh[1], sh[2])
    aff = np.eye(4)
    aff[:3, :3] = d * spacing
    aff[:3, 3] = np.asarray(centre) - aff[:3, :3] @ ((np.asarray(shape) - 1) / 2)
    return shape, aff
