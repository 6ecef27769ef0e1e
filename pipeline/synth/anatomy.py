"""Procedural spine anatomy in patient (LPS) millimetres.

The spine is a smooth space curve (the centre line of the bony canal) with a moving
frame; each vertebra is a rigid body placed on the curve at its body centre, with a
local frame ``x`` (toward the patient's left), ``y`` (posterior), ``z`` (superior, along
the curve). Sizes are interpolated from :data:`~pipeline.synth.config.BODY_TABLE` by
VerSe number, so neighbouring vertebrae differ smoothly, as real ones do.

Pathology that changes the layout (collapse, translation, focal angulation) is applied
here, because it moves the vertebrae; the lesions themselves live in
:mod:`pipeline.synth.pathology`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from pipeline.labels import CRANIOCAUDAL_ORDER
from pipeline.synth import config as C

F64 = npt.NDArray[np.float64]


def _interp_table(table: Mapping[int, tuple[float, ...]], number: int) -> tuple[float, ...]:
    """Linear interpolation of a per-level table at VerSe ``number`` (T13/L6 mapped)."""
    n = {28: 19.5, 25: 24.5}.get(number, float(number))
    keys = sorted(table)
    cols = list(zip(*(table[k] for k in keys), strict=True))
    return tuple(float(np.interp(n, keys, col)) for col in cols)


@dataclass
class VertebraGeom:
    """Geometry of one vertebra (all lengths mm, frame columns x=L, y=P, z=S)."""

    number: int
    centre: F64  # LPS of the body centre
    frame: F64  # 3x3, columns = local x, y, z unit vectors in LPS
    height: float  # intact body height
    width: float  # body half-width (lateral)
    depth: float  # body half-depth (AP)
    canal_lat: float
    canal_ap: float
    canal_y: float  # canal centre, local y
    collapse: float = 0.0  # fraction of height lost, 0..1
    wedge: bool = False
    scale: float = 1.0

    def height_loss(self, y: npt.NDArray[np.floating]) -> npt.NDArray[np.floating]:
        """Fraction of height lost at local AP position ``y`` (anterior wedge profile).

        Uniform collapse loses ``collapse`` everywhere. A wedge loses ``collapse`` over the
        anterior half-depth quarter (``y <= -depth/2``), nothing over the posterior one
        (``y >= depth/2``), linearly in between: the anterior height loss is exact.
        """
        if not self.wedge:
            return np.full_like(y, self.collapse)
        t = np.clip((self.depth / 2 - y) / self.depth, 0.0, 1.0)
        return self.collapse * t

    def to_local(self, p: npt.NDArray[np.floating]) -> npt.NDArray[np.floating]:
        """LPS points (..., 3) to local coordinates (..., 3)."""
        return (p - self.centre) @ self.frame

    def to_lps(self, q: npt.ArrayLike) -> F64:
        """Local coordinates (..., 3) to LPS points."""
        return np.asarray(q, dtype=np.float64) @ self.frame.T + self.centre


@dataclass
class SpineCurve:
    """Canal centre line sampled every ``ds`` mm from the caudal end upward."""

    s: F64  # arc length, (N,)
    points: F64  # (N, 3) LPS
    frames: F64  # (N, 3, 3) columns x=L, y=P, z=tangent (superior)
    ds: float

    def project(
        self, x: npt.NDArray[np.floating], iters: int = 2
    ) -> tuple[npt.NDArray[np.float32], ...]:
        """Curve coordinates ``(u, v, w)`` of LPS points ``x`` (..., 3).

        ``w`` is the arc length of the nearest curve point, ``u``/``v`` the offsets along
        the frame's x (left) and y (posterior) columns. Newton iterations start from the
        curve point at the same height (the curve never turns more than ~60 deg from S);
        each uses the nearest curve sample advanced along its tangent, which is exact to
        O(curvature * ds^2).
        """
        xs = x.astype(np.float32, copy=False)
        pts = self.points.astype(np.float32)
        fr = self.frames.astype(np.float32)
        tan = np.ascontiguousarray(fr[:, :, 2])
        n = len(self.s)
        s0 = np.float32(self.s[0])
        inv = np.float32(1.0 / self.ds)
        t = np.interp(xs[..., 2], self.points[:, 2], self.s).astype(np.float32)
        for _ in range(iters + 1):
            i = np.clip(np.rint((t - s0) * inv), 0, n - 1).astype(np.int32)
            ti = tan[i]
            d = xs - pts[i]
            t = (s0 + i * np.float32(self.ds)) + np.einsum("...k,...k->...", d, ti)
        i = np.clip(np.rint((t - s0) * inv), 0, n - 1).astype(np.int32)
        d = xs - pts[i]
        f = fr[i]
        u = np.einsum("...k,...k->...", d, f[..., :, 0])
        v = np.einsum("...k,...k->...", d, f[..., :, 1])
        return u, v, t.astype(np.float32, copy=False)


def _rot_x(a: float) -> F64:
    c, s = np.cos(a), np.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _rot_y(a: float) -> F64:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


@dataclass
class SpineLayout:
    """A run of vertebrae on a curve, with the alignment pathology applied."""

    numbers: list[int]  # cranial to caudal
    vertebrae: dict[int, VertebraGeom]
    curve: SpineCurve
    conus_s: float  # arc length of the conus tip
    scale: float
    translation: dict[int, float] = field(default_factory=dict)  # level above -> mm
    kyphosis: dict[int, float] = field(default_factory=dict)  # level above -> deg
    scoliosis: dict[int, float] = field(default_factory=dict)
    segment_s: dict[int, tuple[float, float]] = field(default_factory=dict)  # body s-range


def level_run(first: int, last: int) -> list[int]:
    """VerSe numbers from ``first`` to ``last`` (cranio-caudal order, T13/L6 excluded)."""
    order = [n for n in CRANIOCAUDAL_ORDER if n not in (25, 28)]
    i, j = order.index(first), order.index(last)
    return order[i : j + 1]


def _sagittal_curvature(number: float) -> float:
    """Signed sagittal curvature target (deg/mm) by level: lordosis < 0, kyphosis > 0."""
    if number <= 7.5:
        return -1.0
    if number <= 19.5:
        return 1.0
    return -1.0


def build_layout(
    numbers: list[int],
    rng: np.random.Generator,
    *,
    collapse: dict[int, tuple[float, bool]] | None = None,
    translation: dict[int, float] | None = None,
    kyphosis: dict[int, float] | None = None,
    scoliosis: dict[int, float] | None = None,
    origin: npt.ArrayLike = (0.0, 0.0, 0.0),
    scale: float | None = None,
    curvature_gain: float | None = None,
) -> SpineLayout:
    """Place vertebrae ``numbers`` (cranial to caudal) on a random physiological curve.

    Parameters
    ----------
    collapse : {number: (fraction, wedge)}
        Height-loss fraction of a body and whether it is an anterior wedge.
    translation : {number: mm}
        Anterior translation of ``number`` and everything above it relative to the
        vertebra below (listhesis), applied across the disc below ``number``.
    kyphosis, scoliosis : {number: deg}
        Focal angulation added at the disc below ``number``.
    """
    collapse = collapse or {}
    translation = translation or {}
    kyphosis = kyphosis or {}
    scoliosis = scoliosis or {}
    scale = float(rng.uniform(0.9, 1.1)) if scale is None else scale
    gain = float(rng.uniform(0.7, 1.0)) if curvature_gain is None else curvature_gain
    # Walk caudal -> cranial, laying out body and disc intervals along arc length.
    caudal = list(reversed(numbers))
    margin = 150.0
    s = margin
    seg: dict[int, tuple[float, float]] = {}
    sizes: dict[int, tuple[float, ...]] = {}
    disc_mid: dict[int, float] = {}  # disc below `number`: arc length of its middle
    for idx, n in enumerate(caudal):
        h, w, d, disc = (v * scale for v in _interp_table(C.BODY_TABLE, n))
        sizes[n] = (h, w, d, disc)
        loss, wedge = collapse.get(n, (0.0, False))
        h_eff = h * (1 - loss) if not wedge else h
        if idx > 0:
            s += disc
            disc_mid[n] = s - disc / 2
        seg[n] = (s, s + h_eff)
        s += h_eff
    total = s + margin
    ds = 0.5
    ss = np.arange(0.0, total + ds, ds)
    # Curvature profile: per-level targets (deg/mm), smoothed; max per-segment bend ~5 deg.
    centres_s = np.array([sum(seg[n]) / 2 for n in caudal])
    nums = np.array(caudal, dtype=float)
    lvl = np.interp(ss, centres_s, nums)
    kappa = np.array([_sagittal_curvature(v) for v in lvl])
    amp = {-1: rng.uniform(0.09, 0.14), 1: rng.uniform(0.08, 0.11)}
    kappa = np.where(kappa < 0, -amp[-1], amp[1]) * gain
    ker = np.exp(-0.5 * (np.arange(-60, 61) * ds / 12.0) ** 2)
    kappa = np.convolve(np.pad(kappa, 60, mode="edge"), ker / ker.sum(), mode="valid")
    lat = rng.uniform(-0.01, 0.01) * np.sin(ss / rng.uniform(150, 300) + rng.uniform(0, 6))
    phi = np.cumsum(kappa) * ds
    psi = np.cumsum(lat) * ds
    # Focal angulation: a smooth step across the disc below the level.
    for table, target in ((kyphosis, "phi"), (scoliosis, "psi")):
        for n, deg in table.items():
            m = disc_mid[n]
            half = max(sizes[n][3] / 2, 1.0)
            step = np.clip((ss - (m - half)) / (2 * half), 0, 1)
            step = step * step * (3 - 2 * step)
            if target == "phi":
                phi = phi + deg * step
            else:
                psi = psi + deg * step
    # Centre the angles so the middle of the run is roughly vertical, tilted randomly.
    mid = len(ss) // 2
    phi = phi - phi[mid] + rng.uniform(-8, 8)
    psi = psi - psi[mid] + rng.uniform(-1.5, 1.5)
    frames = np.empty((len(ss), 3, 3))
    for i, (a, b) in enumerate(zip(np.radians(phi), np.radians(psi), strict=True)):
        # Positive phi tilts the tangent anteriorly (-y): kyphosis for a rising phi.
        frames[i] = _rot_y(b) @ _rot_x(a)
    tang = frames[:, :, 2]
    pts = np.cumsum(tang * ds, axis=0)
    pts -= pts[0]
    # Focal kyphosis bends the canal line; the bodies sit ~canal_y in front of it, so the
    # bend alone would drive the anterior bodies into each other. Lift everything above
    # the disc along the tangent by theta * canal_y: the pivot moves to the body centres.
    for n, deg in kyphosis.items():
        m = disc_mid[n]
        half = max(sizes[n][3] / 2, 1.0)
        step = np.clip((ss - (m - half)) / (2 * half), 0, 1)
        step = step * step * (3 - 2 * step)
        lower = caudal[caudal.index(n) - 1]
        c_ap = _interp_table(C.CANAL_TABLE, lower)[1]
        lift = np.radians(abs(deg)) * (0.75 * sizes[lower][2] / 2 + c_ap)
        i_low = int(round(sum(seg[lower]) / 2 / ds))
        pts = pts + (lift * step)[:, None] * tang[i_low][None, :]
    # Translation: shift everything above the disc along the lower level's AP axis.
    for n, mm in translation.items():
        m = disc_mid[n]
        half = max(sizes[n][3] / 2, 1.0)
        step = np.clip((ss - (m - half)) / (2 * half), 0, 1)
        step = step * step * (3 - 2 * step)
        lower = caudal[caudal.index(n) - 1]
        i_low = int(round(sum(seg[lower]) / 2 / ds))
        ap = frames[i_low][:, 1]
        pts = pts - (mm * step)[:, None] * ap[None, :]  # anterior = -y
    pts = pts - pts[mid] + np.asarray(origin, dtype=float)
    curve = SpineCurve(ss, pts, frames, ds)
    verts: dict[int, VertebraGeom] = {}
    for n in caudal:
        h, w, d, _ = sizes[n]
        c_lat, c_ap, *_ = _interp_table(C.CANAL_TABLE, n)
        loss, wedge = collapse.get(n, (0.0, False))
        sc = sum(seg[n]) / 2
        i = int(round(sc / ds))
        fr = frames[i]
        body_y = 0.75 * d / 2
        canal_y = body_y + c_ap
        centre = pts[i] - fr[:, 1] * canal_y
        verts[n] = VertebraGeom(
            number=n, centre=centre, frame=fr.copy(), height=h, width=w / 2, depth=d / 2,
            canal_lat=c_lat, canal_ap=c_ap, canal_y=canal_y, collapse=loss, wedge=wedge, scale=scale,
        )  # fmt: skip
    # Conus tip between the L1 and L2 body middles; cord exists cranial to it (s > conus_s).
    conus_level = rng.uniform(20.0, 21.0)
    if conus_level > nums.max():
        conus_s = -1e9  # run ends above the conus: cord everywhere
    elif conus_level < nums.min():
        conus_s = 1e9  # run starts below the conus: cauda equina only
    else:
        conus_s = float(np.interp(conus_level, nums[::-1], centres_s[::-1]))
    return SpineLayout(
        numbers=list(numbers), vertebrae=verts, curve=curve, conus_s=conus_s, scale=scale,
        translation=dict(translation), kyphosis=dict(kyphosis), scoliosis=dict(scoliosis),
        segment_s=seg,
    )  # fmt: skip
