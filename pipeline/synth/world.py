"""The continuous synthetic world and its sampling onto any voxel grid.

A :class:`World` is a set of analytic shapes in LPS millimetres (approximate signed
distance functions, negative inside). :func:`sample_world` evaluates them at the voxel
centres of any grid (any affine: axial, sagittal, oblique, flipped) and returns

* label maps by nearest sampling (a voxel carries a label when its centre is inside),
  so the truth on every grid is the same continuous object; and
* one composited image per tissue-value table: each shape is painted over the previous
  ones with a partial-volume occupancy ``clip(0.5 - sdf / h, 0, 1)`` (``h`` ~ voxel
  size), which gives partial volume without supersampling.

Painting order (later wins): body wall and organs, muscles, canal (epidural fat), thecal
sac, cord, epidural tumour, discs, vertebrae (cortex, marrow), osseous lesions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from pipeline.labels import (
    BLASTIC,
    BODY,
    CORD,
    DISC,
    EPIDURAL,
    LYTIC,
    PEDICLE_L,
    PEDICLE_R,
    POSTERIOR,
    SAC,
)
from pipeline.synth import config as C
from pipeline.synth.anatomy import SpineLayout, VertebraGeom
from pipeline.synth.pathology import Epidural, Lesion, extent, severity

F32 = npt.NDArray[Any]


@dataclass
class SoftTissue:
    """Body habitus parameters (mm)."""

    habitus: float = 1.0  # scales the body outline
    fat: float = 15.0  # subcutaneous fat thickness
    muscle: float = 10.0  # body-wall muscle thickness
    contrast: bool = False  # CT contrast in the aorta


@dataclass
class World:
    """Everything needed to sample a synthetic study on any grid."""

    layout: SpineLayout
    lesions: list[Lesion] = field(default_factory=list)
    epidurals: list[Epidural] = field(default_factory=list)
    soft: SoftTissue = field(default_factory=SoftTissue)
    cortex: float = 1.0  # cortical shell thickness (mm)
    _tables: dict[str, npt.NDArray[np.float32]] | None = None

    def tables(self) -> dict[str, npt.NDArray[np.float32]]:
        """Per-curve-sample region parameters (gathered by arc-length index)."""
        if self._tables is None:
            self._tables = _region_tables(self)
        return self._tables


# ----------------------------------------------------------------------------- SDFs
def ell2(x: F32, y: F32, a: float | F32, b: float | F32) -> F32:
    """Approximate SDF of an axis-aligned ellipse with half-axes ``a``, ``b``."""
    r = np.sqrt((x / a) ** 2 + (y / b) ** 2)
    return (r - 1.0) * np.minimum(a, b)


def ell3(q: F32, c: tuple[float, ...], r: tuple[float, ...]) -> F32:
    """Approximate SDF of an axis-aligned ellipsoid (local coordinates ``q`` (...,3))."""
    s = np.sqrt(
        ((q[..., 0] - c[0]) / r[0]) ** 2
        + ((q[..., 1] - c[1]) / r[1]) ** 2
        + ((q[..., 2] - c[2]) / r[2]) ** 2
    )
    return (s - 1.0) * min(r)


def capsule(q: F32, a: tuple[float, float, float], b: tuple[float, float, float], r: float) -> F32:
    """SDF of a capsule (segment ``a``-``b`` with radius ``r``)."""
    av, bv = np.asarray(a, np.float32), np.asarray(b, np.float32)
    ab = bv - av
    pa = q - av
    t = np.clip((pa @ ab) / float(ab @ ab), 0.0, 1.0)
    d = pa - t[..., None] * ab
    return np.sqrt(np.einsum("...k,...k->...", d, d)) - r


# -------------------------------------------------------------------- region tables
def _smoothstep(x: np.ndarray, a: float, b: float) -> np.ndarray:
    t = np.clip((x - a) / (b - a), 0, 1)
    return t * t * (3 - 2 * t)


def _region_tables(world: World) -> dict[str, npt.NDArray[np.float32]]:
    lay = world.layout
    ss = lay.curve.s
    caudal = list(reversed(lay.numbers))
    cs = np.array([sum(lay.segment_s[n]) / 2 for n in caudal])
    nums = np.array(caudal, float)
    nums = np.where(nums == 28, 19.5, np.where(nums == 25, 24.5, nums))
    if len(cs) > 1:
        slope = (nums[-1] - nums[0]) / (cs[-1] - cs[0])
    else:
        slope = -1.0 / 30
    lvl = np.interp(ss, cs, nums)
    lvl = np.where(ss < cs[0], nums[0] + (ss - cs[0]) * slope, lvl)
    lvl = np.where(ss > cs[-1], nums[-1] + (ss - cs[-1]) * slope, lvl)
    lvl = np.clip(lvl, 1, 30)
    canal = np.array([[float(np.interp(v, sorted(C.CANAL_TABLE), [C.CANAL_TABLE[k][j] for k in sorted(C.CANAL_TABLE)]))
                       for j in range(6)] for v in lvl])  # fmt: skip
    sc = lay.scale
    body = np.array([[float(np.interp(v, sorted(C.BODY_TABLE), [C.BODY_TABLE[k][j] for k in sorted(C.BODY_TABLE)]))
                      for j in range(3)] for v in lvl]) * sc  # fmt: skip
    neck = 1 - _smoothstep(lvl, 7.0, 9.0)
    thorax = _smoothstep(lvl, 7.5, 9.0) * (1 - _smoothstep(lvl, 19.0, 20.5))
    lumbar = _smoothstep(lvl, 19.5, 21.0)
    hab = world.soft.habitus
    t: dict[str, np.ndarray] = {
        "lvl": lvl,
        "canal_lat": canal[:, 0] * sc,
        "canal_ap": canal[:, 1] * sc,
        "sac_lat": canal[:, 2] * sc,
        "sac_ap": canal[:, 3] * sc,
        "cord_lat": canal[:, 4] * sc,
        "cord_ap": canal[:, 5] * sc,
        "body_w": body[:, 1] / 2,
        "body_d": body[:, 2] / 2,
        "out_a": (55 * neck + 150 * (1 - neck)) * hab,
        "out_b": (50 * neck + 105 * thorax + 110 * lumbar) * hab,
        "out_post": 45 * neck + 60 * thorax + 70 * lumbar,
        "thorax": thorax,
        # lung bases fade over T10-T12 (liver and spleen below them at T11/T12)
        "lung": _smoothstep(lvl, 7.5, 9.0) * (1 - _smoothstep(lvl, 16.5, 19.0)),
        "lumbar": lumbar,
        "neck": neck,
    }
    # Cord radius taper at the conus (20 mm).
    taper = np.sqrt(np.clip((ss - lay.conus_s) / 20.0, 0, 1))
    t["cord_lat"] = t["cord_lat"] * taper
    t["cord_ap"] = t["cord_ap"] * taper
    return {k: np.asarray(v, dtype=np.float32) for k, v in t.items()}


# -------------------------------------------------------------------------- painter
class _Painter:
    """Composites tissues into images and writes labels (later paints win)."""

    def __init__(self, shape: tuple[int, ...], values: list[np.ndarray], h: float, labels: bool):
        self.images = [np.full(shape, v[C.AIR], dtype=np.float32) for v in values]
        self.values = values
        self.h = h
        self.labels = labels
        if labels:
            self.vert = np.zeros(shape, np.int16)
            self.struct = np.zeros(shape, np.uint8)
            self.parts = np.zeros(shape, np.uint8)

    def paint(
        self,
        box: tuple[slice, ...],
        sdf: F32,
        tissue: int,
        *,
        vert: int | None = None,
        struct: int | None = None,
        part: int | None = None,
        mask: npt.NDArray[np.bool_] | None = None,
    ) -> None:
        occ = np.clip(0.5 - sdf / self.h, 0.0, 1.0)
        if mask is not None:
            occ = occ * mask
        if not occ.any():
            return
        for img, vals in zip(self.images, self.values, strict=True):
            sub = img[box]
            sub += (vals[tissue] - sub) * occ
        if self.labels:
            inside = sdf < 0
            if mask is not None:
                inside &= mask
            if vert is not None:
                self.vert[box][inside] = vert
            if struct is not None:
                self.struct[box][inside] = struct
            if part is not None:
                self.parts[box][inside] = part


# ------------------------------------------------------------------------ sampling
def grid_points(affine: np.ndarray, box: tuple[slice, slice, slice]) -> F32:
    """LPS coordinates (float32, shape (ni, nj, nk, 3)) of the voxel centres in ``box``."""
    ii, jj, kk = np.meshgrid(
        *(np.arange(s.start, s.stop, dtype=np.float32) for s in box), indexing="ij", copy=False
    )
    a = affine.astype(np.float32)
    return np.stack(
        [a[r, 0] * ii + a[r, 1] * jj + a[r, 2] * kk + a[r, 3] for r in range(3)], axis=-1
    )


def _box_of(
    affine: np.ndarray,
    shape: tuple[int, int, int],
    corners_lps: np.ndarray,
    within: tuple[slice, ...],
) -> tuple[slice, slice, slice] | None:
    """Index box (clipped to ``within``) covering LPS points ``corners_lps`` (N, 3)."""
    idx = (corners_lps - affine[:3, 3]) @ np.linalg.inv(affine[:3, :3]).T
    lo = np.floor(idx.min(axis=0)).astype(int) - 1
    hi = np.ceil(idx.max(axis=0)).astype(int) + 2
    out = []
    for d in range(3):
        a = max(lo[d], within[d].start)
        b = min(hi[d], within[d].stop, shape[d])
        if b <= a:
            return None
        out.append(slice(int(a), int(b)))
    return (out[0], out[1], out[2])


def _vertebra_extent(v: VertebraGeom) -> tuple[np.ndarray, np.ndarray]:
    xm = v.canal_lat + 0.4 * v.width + 32 * v.scale + 6
    y0, y1 = -v.depth - 2, v.canal_y + v.canal_ap + 45 * v.scale
    zm = v.height / 2 + 30 * v.scale
    return np.array([-xm, y0, -zm]), np.array([xm, y1, zm])


def _corners(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    return np.array(
        [[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])]
    )


def sample_world(
    world: World,
    shape: tuple[int, int, int],
    affine: np.ndarray,
    values: list[np.ndarray],
    *,
    labels: bool = True,
    h: float | None = None,
    chunk_voxels: int = 1_500_000,
) -> tuple[list[F32], dict[str, np.ndarray]]:
    """Evaluate ``world`` on a grid.

    Parameters
    ----------
    shape, affine
        The grid: voxel index -> LPS mm.
    values
        One array of length ``N_TISSUES`` per image to composite (tissue -> intensity).
    labels
        Also return label maps ``{"vertebrae", "structures", "parts"}``.
    h
        Partial-volume transition width (mm); default the mean voxel spacing.

    Returns
    -------
    images, label maps
    """
    affine = np.asarray(affine, dtype=np.float64)
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    h = float(np.clip(np.mean(spacing), 0.3, 4.0)) if h is None else h
    p = _Painter(shape, [np.asarray(v, np.float32) for v in values], h, labels)
    plane = shape[0] * shape[1]
    step = max(1, chunk_voxels // max(plane, 1))
    for k0 in range(0, shape[2], step):
        chunk = (slice(0, shape[0]), slice(0, shape[1]), slice(k0, min(shape[2], k0 + step)))
        _paint_soft(world, p, affine, chunk)
        _paint_spine(world, p, affine, shape, chunk)
    lab: dict[str, np.ndarray] = {}
    if labels:
        lab = {"vertebrae": p.vert, "structures": p.struct, "parts": p.parts}
    return p.images, lab


def _interp_matrix(n: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """Coarse sample indices along an axis and the linear interpolation matrix back to ``n``."""
    coarse = np.unique(np.r_[np.arange(0, n, stride), n - 1])
    m = np.zeros((n, len(coarse)), np.float32)
    pos = np.interp(np.arange(n), coarse, np.arange(len(coarse)))
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, len(coarse) - 1)
    f = (pos - lo).astype(np.float32)
    m[np.arange(n), lo] += 1 - f
    m[np.arange(n), hi] += f
    return coarse, m


def curve_coords(
    world: World, affine: np.ndarray, box: tuple[slice, slice, slice]
) -> tuple[F32, F32, F32]:
    """Curve coordinates (u, v, w) of every voxel in ``box``.

    The nearest-point map is smooth, so it is computed on an in-plane grid coarser by
    ``stride`` (about 3 mm) and interpolated linearly (error ~ curvature x 3 mm^2 / 8,
    well below 0.05 mm near the canal).
    """
    sp = np.linalg.norm(affine[:3, :3], axis=0)
    ni, nj = box[0].stop - box[0].start, box[1].stop - box[1].start
    st = [max(1, int(3.0 // sp[0])), max(1, int(3.0 // sp[1]))]
    ci, mi = _interp_matrix(ni, st[0])
    cj, mj = _interp_matrix(nj, st[1])
    ks = np.arange(box[2].start, box[2].stop)
    ii, jj, kk = np.meshgrid((ci + box[0].start).astype(np.float32), (cj + box[1].start).astype(np.float32),
                             ks.astype(np.float32), indexing="ij")  # fmt: skip
    a = affine.astype(np.float32)
    x = np.stack([a[r, 0] * ii + a[r, 1] * jj + a[r, 2] * kk + a[r, 3] for r in range(3)], axis=-1)
    uc, vc, wc = world.layout.curve.project(x)
    out = []
    for c in (uc, vc, wc):
        # (ni, ncj, nk) then (ni, nj, nk)
        t = np.einsum("ia,ajk->ijk", mi, c, optimize=True)
        out.append(
            np.ascontiguousarray(np.einsum("ijk,mj->imk", t, mj, optimize=True), dtype=np.float32)
        )
    return out[0], out[1], out[2]


def _subbox(mask: npt.NDArray[np.bool_]) -> tuple[slice, slice, slice] | None:
    """Bounding slices of ``mask`` (None when empty)."""
    if not mask.any():
        return None
    out = []
    for ax in range(3):
        other = tuple(a for a in range(3) if a != ax)
        nz = np.flatnonzero(mask.any(axis=other))
        out.append(slice(int(nz[0]), int(nz[-1]) + 1))
    return (out[0], out[1], out[2])


def _compose(
    box: tuple[slice, slice, slice], sub: tuple[slice, slice, slice]
) -> tuple[slice, slice, slice]:
    return tuple(slice(b.start + s.start, b.start + s.stop) for b, s in zip(box, sub, strict=True))  # type: ignore[return-value]


def _paint_soft(
    world: World, p: _Painter, affine: np.ndarray, box: tuple[slice, slice, slice]
) -> None:
    """Body wall, organs, muscles and the canal contents within ``box``."""
    cur = world.layout.curve
    u, v, w = curve_coords(world, affine, box)
    tab = world.tables()
    idx = np.clip(np.rint((w - cur.s[0]) / cur.ds), 0, len(cur.s) - 1).astype(np.int32)
    s = world.soft
    out_a, out_b, out_post = (tab[k][idx] for k in ("out_a", "out_b", "out_post"))
    body = ell2(u, v - (out_post - out_b), out_a, out_b)
    del out_post
    p.paint(box, body, C.FAT)
    p.paint(box, body + s.fat, C.MUSCLE)
    p.paint(box, body + s.fat + s.muscle, C.VISCERA)
    del body
    thorax = tab["lung"][idx]
    lung_on = thorax > 0.05
    if lung_on.any():
        bw = tab["body_w"][idx]
        for sgn in (-1.0, 1.0):
            la = np.maximum(out_a * 0.42 * thorax, 1e-3)
            lb = np.maximum(out_b * 0.62 * thorax, 1e-3)
            lung = ell2(u - sgn * (bw + 8 + la), v + 0.25 * out_b, la, lb)
            p.paint(box, lung, C.LUNG, mask=lung_on)
    # Near the spine: aorta, psoas, paraspinal muscles.
    sb = _subbox((np.abs(u) < 90) & (v > -110) & (v < 100))
    if sb is not None:
        gb = _compose(box, sb)
        uu, vv, ii_ = u[sb], v[sb], idx[sb]

        def g(name: str) -> F32:
            return tab[name][ii_]

        neck, lumbar, thor = g("neck"), g("lumbar"), g("thorax")
        bw, bd, canal_lat, canal_ap = g("body_w"), g("body_d"), g("canal_lat"), g("canal_ap")
        ant = -(0.75 * bd + canal_ap)  # body posterior wall, v
        aorta_on = (neck < 0.5) & (g("lvl") < 23.5)
        if aorta_on.any():
            p.paint(
                gb,
                ell2(uu - 0.35 * bw - 4, vv - (ant - 2 * bd - 12), 11.0, 11.0),
                C.BLOOD,
                mask=aorta_on,
            )
        psoas_on = lumbar > 0.05
        if psoas_on.any():
            for sgn in (-1.0, 1.0):
                r = np.maximum(16 * lumbar, 1e-3)
                sdf = ell2(uu - sgn * (bw + r * 0.6), vv - (ant - 1.1 * bd), r * 0.8, r)
                p.paint(gb, sdf, C.MUSCLE, mask=psoas_on)
        for sgn in (-1.0, 1.0):
            ra = 15 * neck + 19 * thor + 23 * lumbar
            rb = 14 * neck + 19 * thor + 24 * lumbar
            p.paint(
                gb,
                ell2(uu - sgn * (canal_lat + ra * 0.9), vv - (canal_ap + rb * 0.85 + 4), ra, rb),
                C.MUSCLE,
            )
    # Canal: epidural fat, sac, cord, tumour (only near the canal).
    sb = _subbox((np.abs(u) < 20) & (np.abs(v) < 20))
    if sb is not None:
        _paint_canal(world, p, _compose(box, sb), u[sb], v[sb], w[sb], idx[sb])


def _paint_canal(world: World, p: _Painter, box: tuple[slice, slice, slice], u: F32, v: F32, w: F32,
                 idx: npt.NDArray[np.int32]) -> None:  # fmt: skip
    tab = world.tables()

    def g(name: str) -> F32:
        return tab[name][idx]

    canal_lat, canal_ap = g("canal_lat"), g("canal_ap")
    canal = ell2(u, v, canal_lat, canal_ap)
    p.paint(box, canal, C.EPI_FAT, struct=0)
    vs = v - C.SAC_POSTERIOR_OFFSET * world.layout.scale
    sac_lat, sac_ap, cord_lat, cord_ap = g("sac_lat"), g("sac_ap"), g("cord_lat"), g("cord_ap")
    sac = ell2(u, vs, sac_lat, sac_ap)
    cord_shift = np.zeros_like(u)
    fu = np.ones_like(u)
    fv = np.ones_like(u)
    tumours: list[tuple[Epidural, F32]] = []
    for e in world.epidurals:
        near = np.abs(w - e.w0) < extent(e) + 1
        if not near.any():
            continue
        sv = severity(e, w)
        if e.grade in ("2", "3"):
            delta = (
                sac_ap - cord_ap * e.kv - e.p_csf
                if e.grade == "2"
                else sac_ap - cord_ap * e.kv + 0.3
            )
            cord_shift = np.where(near, sv * delta, cord_shift)
            fu = np.where(near, 1 + sv * (e.ku - 1), fu)
            fv = np.where(near, 1 + sv * (e.kv - 1), fv)
        tumours.append((e, sv))
    cord = ell2(u, vs - cord_shift, np.maximum(cord_lat * fu, 1e-3), np.maximum(cord_ap * fv, 1e-3))
    cord = np.where(cord_lat > 0.05, cord, 1e3).astype(np.float32)
    p.paint(box, sac, C.CSF, struct=SAC)
    p.paint(box, cord, C.CORD, struct=CORD)
    for e, sv in tumours:
        wall = -(canal_ap + C.SAC_POSTERIOR_OFFSET * world.layout.scale)
        if e.grade == "1a":
            target = -sac_ap + 1.5
        elif e.grade == "1b":
            target = -sac_ap + e.d_1b
        elif e.grade == "1c":
            target = -cord_ap + 1.5
        else:  # the flattened cord's anterior surface on the plateau, plus overlap
            delta = (
                sac_ap - cord_ap * e.kv - e.p_csf
                if e.grade == "2"
                else sac_ap - cord_ap * e.kv + 0.3
            )
            target = delta - cord_ap * e.kv + 1.5
        front = wall + sv * (target - wall)
        tum = ell2(u - e.u_off, vs - (front - e.r_v), e.r_u, e.r_v)
        tum = np.maximum(tum, np.abs(w - e.w0) - extent(e))
        if e.grade == "3":
            fill = np.maximum(sac, np.abs(w - e.w0) - (e.plateau + 4.0))
            tum = np.minimum(tum, fill)
        tum = np.maximum(tum, canal)  # stays in the bony canal
        if e.grade == "1a":
            tum = np.maximum(tum, -sac)
        if e.grade in ("1c", "2", "3"):
            tum = np.maximum(tum, -cord)
        p.paint(box, tum.astype(np.float32), C.EPIDURAL_TUMOUR, struct=EPIDURAL)


SITE_CODES = {
    "body": BODY,
    "pedicle_left": PEDICLE_L,
    "pedicle_right": PEDICLE_R,
    "posterior": POSTERIOR,
}


def lesion_sdf(les: Lesion, q: F32) -> F32:
    """SDF of a lesion's shape (not yet clipped to its bony site) at local points ``q``."""
    if les.shape == "cylinder":
        c, r = les.centre, les.radii
        return np.maximum(
            ell2(q[..., 0] - c[0], q[..., 1] - c[1], r[0], r[1]), np.abs(q[..., 2] - c[2]) - r[2]
        )
    return ell3(q, les.centre, les.radii)


Sdf3 = Callable[[F32, F32, F32], F32]


@dataclass
class Component:
    """One bony component of a vertebra: SDF in local coordinates and its local AABB."""

    fn: Sdf3
    code: int
    lo: np.ndarray
    hi: np.ndarray


def _cap(
    a: tuple[float, float, float], b: tuple[float, float, float], r: float
) -> tuple[Sdf3, np.ndarray, np.ndarray]:
    av, bv = np.asarray(a, float), np.asarray(b, float)
    ab = bv - av
    l2 = float(ab @ ab)

    def fn(x: F32, y: F32, z: F32) -> F32:
        px, py, pz = x - av[0], y - av[1], z - av[2]
        t = np.clip((px * ab[0] + py * ab[1] + pz * ab[2]) / l2, 0.0, 1.0)
        return np.sqrt((px - t * ab[0]) ** 2 + (py - t * ab[1]) ** 2 + (pz - t * ab[2]) ** 2) - r

    return fn, np.minimum(av, bv) - r, np.maximum(av, bv) + r


def _ellip(
    c: tuple[float, float, float], r: tuple[float, float, float]
) -> tuple[Sdf3, np.ndarray, np.ndarray]:
    def fn(x: F32, y: F32, z: F32) -> F32:
        s = np.sqrt(((x - c[0]) / r[0]) ** 2 + ((y - c[1]) / r[1]) ** 2 + ((z - c[2]) / r[2]) ** 2)
        return (s - 1.0) * min(r)

    return fn, np.subtract(c, r), np.add(c, r)


def vertebra_components(v: VertebraGeom, body_only: bool = False) -> list[Component]:
    """The bony components of ``v`` (body first), each with its local bounding box."""
    sc = v.scale
    h2 = v.height / 2
    n = v.number
    W, D = v.width, v.depth
    collapsed = v.collapse > 0

    def body(x: F32, y: F32, z: F32) -> F32:
        # Collapse: top/bottom surfaces move toward the centre by the lost height.
        top = h2 * (1 - v.height_loss(y)) if collapsed else h2
        if n == 1:  # atlas: no body, a thin anterior arch
            return np.maximum(ell2(x, y + 0.5 * D, W * 0.6, D * 0.3), np.abs(z) - h2 * 0.5)
        return np.maximum(np.maximum(ell2(x, y, W, D), y - 0.75 * D), np.abs(z) - top)

    comps = [Component(body, BODY, np.array([-W, -D, -h2]), np.array([W, 0.75 * D, h2]))]
    if body_only:
        return comps

    def add(code: int, spec: tuple[Sdf3, np.ndarray, np.ndarray]) -> None:
        comps.append(Component(spec[0], code, spec[1], spec[2]))

    if n == 2:  # dens
        add(BODY, _cap((0, 0, h2), (0, 0.1 * D, h2 + 14 * sc), 5 * sc))
    pw = float(np.clip(0.16 * W, 2.8, 5.5))
    ph = 0.32 * v.height
    zc = 0.15 * v.height
    cl, ca, cy = v.canal_lat, v.canal_ap, v.canal_y
    y_ped1 = cy + 0.2 * ca
    for sgn, code in ((1.0, PEDICLE_L), (-1.0, PEDICLE_R)):

        def ped(x: F32, y: F32, z: F32, sgn: float = sgn) -> F32:
            return np.maximum(
                ell2(x - sgn * (cl + pw), z - zc, pw, ph), np.maximum(0.55 * D - y, y - y_ped1)
            )

        xc = sgn * (cl + pw)
        comps.append(
            Component(
                ped,
                code,
                np.array([xc - pw, 0.55 * D, zc - ph]),
                np.array([xc + pw, y_ped1, zc + ph]),
            )
        )
    region = 0 if n <= 7 else (1 if n <= 19 or n == 28 else 2)
    lam_t = (3.5, 4.5, 5.5)[region] * sc
    lam_h = (0.8, 0.9, 0.75)[region] * v.height
    zl = zc - 0.1 * lam_h

    def arch(x: F32, y: F32, z: F32) -> F32:
        outer = ell2(x, y - cy, cl + 2 * pw, ca + lam_t)
        return np.maximum(
            np.maximum(outer, -ell2(x, y - cy, cl, ca)),
            np.maximum(y_ped1 - y, np.abs(z - zl) - lam_h / 2),
        )

    comps.append(Component(arch, POSTERIOR, np.array([-(cl + 2 * pw), y_ped1, zl - lam_h / 2]),
                           np.array([cl + 2 * pw, cy + ca + lam_t, zl + lam_h / 2])))  # fmt: skip
    sp_len, sp_drop, sp_r = ((18, 4, 3.5), (34, 20, 3.5), (30, 5, 4.5))[region]
    y_sp = cy + ca + lam_t * 0.5
    add(POSTERIOR, _cap((0, y_sp, zl), (0, y_sp + sp_len * sc, zl - sp_drop * sc), sp_r * sc))
    tp_len = (7, 18, 22)[region] * sc
    for sgn in (1.0, -1.0):
        add(
            POSTERIOR,
            _cap(
                (sgn * (cl + pw), cy, zc),
                (sgn * (cl + 2 * pw + tp_len), cy + 6 * sc, zc + 2 * sc),
                3.8 * sc,
            ),
        )
        add(
            POSTERIOR,
            _ellip(
                (sgn * (cl + 2 * pw), cy + 0.4 * ca, h2 + 1.5 * sc), (3.2 * sc, 4.0 * sc, 5.0 * sc)
            ),
        )
        add(
            POSTERIOR,
            _ellip(
                (sgn * (cl + 1.5 * pw), cy + 0.9 * ca, -h2 - 1.5 * sc),
                (3.2 * sc, 4.0 * sc, 5.0 * sc),
            ),
        )
    if n == 26:  # sacrum: alae and a body running down and back
        for sgn in (1.0, -1.0):
            add(POSTERIOR, _ellip((sgn * (W + 14 * sc), 0.3 * D, -4), (20 * sc, 14 * sc, 16 * sc)))
        add(BODY, _cap((0, 0.1 * D, -h2), (0, 0.9 * D, -h2 - 45 * sc), 0.6 * D))
    return comps


def _vertebra_parts(v: VertebraGeom, q: F32, body_only: bool = False) -> list[tuple[F32, int]]:
    """(sdf, part code) of each bony component of ``v`` at local points ``q`` (..., 3)."""
    x, y, z = q[..., 0], q[..., 1], q[..., 2]
    return [(c.fn(x, y, z), c.code) for c in vertebra_components(v, body_only)]


def _local_subbox(
    v: VertebraGeom,
    lo: np.ndarray,
    hi: np.ndarray,
    inv: tuple[np.ndarray, np.ndarray],
    box: tuple[slice, slice, slice],
) -> tuple[slice, slice, slice] | None:
    """Sub-box (relative to ``box``) of grid voxels that may lie in a local AABB."""
    idx = (v.to_lps(_corners(np.asarray(lo) - 1, np.asarray(hi) + 1)) - inv[1]) @ inv[0].T
    lo_i = np.floor(idx.min(axis=0)).astype(int)
    hi_i = np.ceil(idx.max(axis=0)).astype(int) + 1
    out = []
    for d in range(3):
        a = max(int(lo_i[d]), box[d].start) - box[d].start
        b = min(int(hi_i[d]), box[d].stop) - box[d].start
        if b <= a:
            return None
        out.append(slice(a, b))
    return (out[0], out[1], out[2])


def _paint_spine(
    world: World,
    p: _Painter,
    affine: np.ndarray,
    shape: tuple[int, int, int],
    chunk: tuple[slice, slice, slice],
) -> None:
    lay = world.layout
    verts = [lay.vertebrae[n] for n in lay.numbers]
    # Discs first: between consecutive vertebrae, bounded by the two endplates.
    for up, lo in zip(verts[:-1], verts[1:], strict=True):
        mid_c = (up.centre + lo.centre) / 2
        ext = np.array([max(up.width, lo.width) + 3, max(up.depth, lo.depth) + 3, 0.0])
        corners = np.concatenate([_corners(-ext + [0, 0, -5], ext + [0, 0, 5]) @ fr.T + c
                                  for fr, c in ((up.frame, mid_c), (lo.frame, mid_c))])  # fmt: skip
        # the span between the two bodies
        corners = np.concatenate(
            [corners, up.to_lps(_corners(-ext, ext)), lo.to_lps(_corners(-ext, ext))]
        )
        box = _box_of(affine, shape, corners, chunk)
        if box is None:
            continue
        x = grid_points(affine, box)
        ql, qu = lo.to_local(x), up.to_local(x)
        top_l = (
            lo.height / 2 * (1 - lo.height_loss(ql[..., 1])) if lo.collapse > 0 else lo.height / 2
        )
        bot_u = (
            -(up.height / 2 * (1 - up.height_loss(qu[..., 1])))
            if up.collapse > 0
            else -up.height / 2
        )
        wl = (up.width + lo.width) / 2 * 0.97
        dl = (up.depth + lo.depth) / 2 * 0.97
        qm = (ql + qu) / 2
        cross = np.maximum(ell2(qm[..., 0], qm[..., 1], wl, dl), qm[..., 1] - 0.75 * dl)
        disc = np.maximum(cross, np.maximum(top_l - ql[..., 2] - 1.0, qu[..., 2] - bot_u - 1.0))
        p.paint(box, disc.astype(np.float32), C.DISC, struct=DISC)
    lesions: dict[int, list[Lesion]] = {}
    for les in world.lesions:
        lesions.setdefault(les.number, []).append(les)
    inv = (np.linalg.inv(affine[:3, :3]), affine[:3, 3])
    for v in verts:
        lo_, hi_ = _vertebra_extent(v)
        if v.number == 26:
            lo_ = lo_ - [30, 0, 60]
            hi_ = hi_ + [30, 30, 0]
        box = _box_of(affine, shape, v.to_lps(_corners(lo_, hi_)), chunk)
        if box is None:
            continue
        q = v.to_local(grid_points(affine, box))
        x, y, z = q[..., 0], q[..., 1], q[..., 2]
        bone = np.full(x.shape, 1e3, np.float32)
        part = np.zeros(x.shape, np.uint8)
        site_sdf: dict[int, F32] = {}
        for comp in vertebra_components(v):
            sb = _local_subbox(v, comp.lo, comp.hi, inv, box)
            if sb is None:
                continue
            sdf = comp.fn(x[sb], y[sb], z[sb]).astype(np.float32)
            cur = bone[sb]
            better = sdf < cur
            part[sb] = np.where(better, comp.code, part[sb])
            bone[sb] = np.where(better, sdf, cur)
            site = site_sdf.setdefault(comp.code, np.full(x.shape, 1e3, np.float32))
            site[sb] = np.minimum(site[sb], sdf)
        sb = _subbox(bone < p.h)
        if sb is None:
            continue
        gb = _compose(box, sb)
        bone_s, part_s = bone[sb], part[sb]
        p.paint(gb, bone_s, C.CORTICAL, vert=v.number, struct=0)
        inner = bone_s + world.cortex * v.scale
        p.paint(gb, np.where(part_s == BODY, inner, 1e3).astype(np.float32), C.TRABECULAR)
        p.paint(gb, np.where(part_s != BODY, inner + 0.3, 1e3).astype(np.float32), C.POSTERIOR_BONE)
        if p.labels:
            inside = bone_s < 0
            p.parts[gb][inside] = part_s[inside]
        for les in lesions.get(v.number, []):
            lb = _local_subbox(
                v, np.subtract(les.centre, les.radii), np.add(les.centre, les.radii), inv, box
            )
            code_site = SITE_CODES[les.site]
            if lb is None or code_site not in site_sdf:
                continue
            sdf = np.maximum(lesion_sdf(les, q[lb]), site_sdf[code_site][lb])
            tissue, code = (C.LYTIC, LYTIC) if les.kind == "lytic" else (C.BLASTIC, BLASTIC)
            p.paint(_compose(box, lb), sdf.astype(np.float32), tissue, struct=code)


# ------------------------------------------------------------- analytic integrals
_STEP = 0.4


def _local_grid(lo: np.ndarray, hi: np.ndarray, step: float = _STEP) -> np.ndarray:
    axes = [np.arange(a + step / 2, b, step, dtype=np.float32) for a, b in zip(lo, hi, strict=True)]
    g = np.meshgrid(*axes, indexing="ij")
    return np.stack(g, axis=-1)


def body_involvement(world: World, number: int, step: float = _STEP) -> float:
    """Percentage of the vertebral body's volume occupied by lesion (analytic, 0.4 mm)."""
    v = world.layout.vertebrae[number]
    lesions = [les for les in world.lesions if les.number == number]
    if not lesions:
        return 0.0
    q = _local_grid(
        np.array([-v.width, -v.depth, -v.height / 2]),
        np.array([v.width, v.depth, v.height / 2]),
        step,
    )
    body = _vertebra_parts(v, q, body_only=True)[0][0] < 0
    les = np.zeros_like(body)
    for le in lesions:
        les |= lesion_sdf(le, q) < 0
    n_body = int(body.sum())
    return 100.0 * float((les & body).sum()) / max(n_body, 1)


def lesion_volume_ml(world: World, number: int) -> float:
    """Volume (ml) of osseous lesion in vertebra ``number`` (union, clipped to its sites)."""
    v = world.layout.vertebrae[number]
    lesions = [les for les in world.lesions if les.number == number]
    if not lesions:
        return 0.0
    lo = np.min([np.subtract(le.centre, le.radii) for le in lesions], axis=0) - 1
    hi = np.max([np.add(le.centre, le.radii) for le in lesions], axis=0) + 1
    q = _local_grid(lo, hi)
    comps = _vertebra_parts(v, q)
    site: dict[int, np.ndarray] = {}
    for sdf, code in comps:
        site[code] = np.minimum(site[code], sdf) if code in site else sdf
    inside = np.zeros(q.shape[:3], bool)
    for le in lesions:
        inside |= (lesion_sdf(le, q) < 0) & (site[SITE_CODES[le.site]] < 0)
    return float(inside.sum()) * _STEP**3 / 1000.0
