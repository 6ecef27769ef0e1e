"""Epidural spinal cord compression (Bilsky ESCC) slice by slice along the canal.

For each vertebra the structures map is resliced (nearest neighbour, in patient space)
onto planes perpendicular to the vertebra's own superior axis, centred on the canal,
covering the vertebra and half of each neighbouring disc. On each plane:

* epidural tumour area (mm^2);
* dural sac (thecal sac CSF + cord) area and solidity (area / convex hull area), compared
  with the sac at nearby tumour-free levels: a loss beyond tolerance is a deformation;
* cord contact: tumour within ``contact_mm`` of the cord;
* cord compression: cord area or flattening (minor/major axis) loss against the cord at
  nearby tumour-free levels;
* CSF around the cord: share of a thin ring around the cord that is CSF.

The grade follows SCORING.md section 2 (the geometric test column). Tolerances are in
``configs/features.yaml`` (``escc``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import ndimage
from scipy.spatial import ConvexHull, QhullError

from pipeline import labels as L
from pipeline.features.geometry import FArr, VertebraGeometry
from pipeline.features.types import EsccResult, Provenance, SliceMeasurement

GRADES = ["0", "1a", "1b", "1c", "2", "3"]


@dataclass
class _Plane:
    level: str
    offset_mm: float
    labels: npt.NDArray[np.integer]
    comp: npt.NDArray[np.integer]
    origin: FArr
    u: FArr
    v: FArr


def grade_index(g: str) -> int:
    """Position of a Bilsky grade in the order 0 < 1a < 1b < 1c < 2 < 3."""
    return GRADES.index(g)


def _solidity(mask: npt.NDArray[np.bool_]) -> float | None:
    if mask.sum() < 6:
        return None
    edge = mask & ~ndimage.binary_erosion(mask)
    pts = np.argwhere(edge).astype(np.float64)
    corners = np.concatenate(
        [pts + d for d in ((-0.5, -0.5), (-0.5, 0.5), (0.5, -0.5), (0.5, 0.5))]
    )
    try:
        hull = ConvexHull(corners)
    except (QhullError, ValueError):
        return None
    return float(mask.sum() / hull.volume)


def _indentation_mm(mask: npt.NDArray[np.bool_], pixel_mm: float) -> float | None:
    """Deepest point of the concavities of ``mask``: how far its convex hull is dented (mm)."""
    if mask.sum() < 6:
        return None
    pts = np.argwhere(mask)
    lo, hi = pts.min(0), pts.max(0) + 1
    sub = mask[lo[0] : hi[0], lo[1] : hi[1]]
    edge = np.argwhere(sub & ~ndimage.binary_erosion(sub)).astype(np.float64)
    try:
        eq = ConvexHull(edge).equations  # half-planes n . x + c <= 0 inside
    except (QhullError, ValueError):
        return None
    gi, gj = np.nonzero(~sub)
    if len(gi) == 0:
        return 0.0
    q = np.stack([gi, gj], 1).astype(np.float64)
    inside = np.all(q @ eq[:, :2].T + eq[:, 2] <= 1e-9, axis=1)
    hull = sub.copy()
    hull[gi[inside], gj[inside]] = True
    deficit = hull & ~sub
    if not deficit.any():
        return 0.0
    depth = ndimage.distance_transform_edt(np.pad(hull, 1))[1:-1, 1:-1]
    return float(depth[deficit].max() * pixel_mm)


def _flattening(mask: npt.NDArray[np.bool_]) -> float | None:
    if mask.sum() < 6:
        return None
    pts = np.argwhere(mask).astype(np.float64)
    ev = np.linalg.eigvalsh(np.cov(pts.T) + np.eye(2) / 12.0)
    return float(math.sqrt(max(ev[0], 1e-9) / max(ev[1], 1e-9)))


def _canal_centre(g: VertebraGeometry, structures: npt.NDArray[np.integer], affine: FArr) -> FArr:
    """Centre of the canal at this vertebra: between the pedicles, else the posterior parts."""
    lp, rp = g.parts == L.PEDICLE_L, g.parts == L.PEDICLE_R
    if lp.sum() >= 3 and rp.sum() >= 3:
        return 0.5 * (g.points[lp].mean(0) + g.points[rp].mean(0))
    post = np.isin(g.parts, (L.PEDICLE_L, L.PEDICLE_R, L.POSTERIOR))
    if post.sum() >= 5:
        return 0.5 * (g.body_centroid + g.points[post].mean(0))
    # no parts: look for canal labels in the vertebra's bounding box
    lo, hi = g.index.min(0), g.index.max(0) + 1
    sub = np.asarray(structures)[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
    can = np.argwhere(np.isin(sub, (L.SAC, L.CORD, L.EPIDURAL)))
    if len(can):
        return (can + lo).mean(0) @ affine[:3, :3].T + affine[:3, 3]
    return g.body_centroid - 20.0 * g.a


def _planes(
    geos: list[VertebraGeometry],
    structures: npt.NDArray[np.integer],
    affine: FArr,
    cfg: dict[str, Any],
    comps: tuple[npt.NDArray[np.integer], npt.NDArray[np.intp]] | None = None,
) -> list[_Plane]:
    r = float(cfg["reslice_mm"])
    n = int(round(2 * cfg["half_width_mm"] / r)) + 1
    grid = (np.arange(n) - (n - 1) / 2) * r
    gu, gv = np.meshgrid(grid, grid, indexing="ij")
    inv = np.linalg.inv(affine[:3, :3])
    step = float(cfg.get("slice_mm", 1.0))
    planes: list[_Plane] = []
    for i, g in enumerate(geos):
        centre = _canal_centre(g, structures, affine)
        proj = (g.points - centre) @ g.s
        s_hi = float(np.percentile(proj, 99))
        s_lo = float(np.percentile(proj, 1))
        # The disc below belongs to this level (as in alignment: a finding at a disc is
        # attributed to the vertebra above it); the first vertebra in view also takes the
        # half disc above it, whose own vertebra is not seen.
        if i == 0 and len(geos) > 1:
            s_hi = max(
                s_hi,
                s_hi
                + 0.5
                * max(0.0, float((geos[0].centroid - geos[1].centroid) @ g.s) - (s_hi - s_lo)),
            )
        if i + 1 < len(geos):
            nxt_top = float(np.percentile((geos[i + 1].points - centre) @ g.s, 99))
            s_lo = min(s_lo, nxt_top)
        offsets = np.arange(math.ceil(s_lo / step), math.floor(s_hi / step) + 1) * step
        for off in offsets:
            origin = centre + off * g.s
            pts = origin + gu[..., None] * g.l + gv[..., None] * g.a
            ijk = (pts - affine[:3, 3]) @ inv.T
            lab = ndimage.map_coordinates(
                np.asarray(structures),
                [ijk[..., 0], ijk[..., 1], ijk[..., 2]],
                order=0,
                mode="constant",
                cval=0,
            )
            if comps is not None and (lab == L.EPIDURAL).any():
                sub, lo = comps
                cid = ndimage.map_coordinates(
                    sub,
                    [ijk[..., 0] - lo[0], ijk[..., 1] - lo[1], ijk[..., 2] - lo[2]],
                    order=0,
                    mode="constant",
                    cval=0,
                )
            else:
                cid = np.zeros_like(lab)
            planes.append(_Plane(g.level, float(off), lab, cid, origin, g.l, g.a))
    return planes


def _measure(p: _Plane, ref: dict[str, float], cfg: dict[str, Any]) -> SliceMeasurement:
    r = float(cfg["reslice_mm"])
    px = r * r
    t = p.labels == L.EPIDURAL
    c = p.labels == L.CORD
    s = p.labels == L.SAC
    d = s | c
    t_area = float(t.sum() * px)
    d_area, c_area = float(d.sum() * px), float(c.sum() * px)
    sol = _solidity(d)
    dent = _indentation_mm(d, r)
    flat = _flattening(c)
    sac_ratio = d_area / ref["sac_area_mm2"] if ref.get("sac_area_mm2") else None
    cord_ratio = c_area / ref["cord_area_mm2"] if ref.get("cord_area_mm2") and c_area > 0 else None
    reach = max(1, int(math.ceil(cfg["contact_mm"] / r)))
    has_t = t_area >= cfg["min_tumour_area_mm2"]
    touches_sac = bool(has_t and (ndimage.binary_dilation(t, iterations=reach) & d).any())
    contact = bool(has_t and c.any() and (ndimage.binary_dilation(c, iterations=reach) & t).any())
    deformed = False
    if touches_sac:
        if sac_ratio is not None and 1.0 - sac_ratio > cfg["sac_area_loss"]:
            deformed = True
        if (
            sol is not None
            and ref.get("sac_solidity")
            and ref["sac_solidity"] - sol > cfg["sac_solidity_loss"]
        ):
            deformed = True
        if (
            dent is not None
            and dent - ref.get("sac_indentation_mm", 0.0) > cfg["sac_indentation_mm"]
        ):
            deformed = True
    deformed = deformed or contact  # the cord lies inside the sac: contact implies indentation
    compressed = False
    if contact:
        if cord_ratio is not None and 1.0 - cord_ratio > cfg["cord_area_loss"]:
            compressed = True
        rf = ref.get("cord_flattening")
        if flat is not None and rf and (rf - flat) / rf > cfg["cord_flattening_loss"]:
            compressed = True
    ring_fraction = None
    if c.any():
        ring_w = max(1, int(math.ceil(cfg.get("csf_ring_mm", 1.0) / r)))
        ring = ndimage.binary_dilation(c, iterations=ring_w) & ~c
        if ring.any():
            ring_fraction = float((ring & s).sum() / ring.sum())
    if not has_t:
        grade = "0"
    elif not deformed:
        grade = "1a"
    elif not contact:
        grade = "1b"
    elif not compressed:
        grade = "1c"
    elif ring_fraction is not None and ring_fraction >= cfg["csf_ring_min_fraction"]:
        grade = "2"
    else:
        grade = "3"
    return SliceMeasurement(
        level=p.level,
        offset_mm=round(p.offset_mm, 2),
        grade=grade,
        tumour_area_mm2=round(t_area, 2),
        sac_area_mm2=round(d_area, 2),
        sac_area_ratio=None if sac_ratio is None else round(sac_ratio, 4),
        sac_solidity=None if sol is None else round(sol, 4),
        sac_indentation_mm=None if dent is None else round(dent, 3),
        sac_deformed=deformed,
        cord_area_mm2=round(c_area, 2),
        cord_area_ratio=None if cord_ratio is None else round(cord_ratio, 4),
        cord_flattening=None if flat is None else round(flat, 4),
        cord_contact=contact,
        cord_compressed=compressed,
        csf_ring_fraction=None if ring_fraction is None else round(ring_fraction, 4),
    )


def _reference(
    planes: list[_Plane],
    level_order: list[str],
    tumour_levels: set[str],
    level: str,
    cfg: dict[str, Any],
) -> tuple[dict[str, float], bool]:
    """Median sac / cord shape on tumour-free slices within ``reference_levels`` levels."""
    r2 = cfg["reslice_mm"] ** 2
    pos = level_order.index(level)
    near = {
        lv
        for k, lv in enumerate(level_order)
        if abs(k - pos) <= cfg["reference_levels"] and lv not in tumour_levels
    }
    sa, so, ca, cf, dn = [], [], [], [], []
    for p in planes:
        if p.level not in near:
            continue
        c = p.labels == L.CORD
        d = (p.labels == L.SAC) | c
        if d.sum() < 6:
            continue
        sa.append(d.sum() * r2)
        sol = _solidity(d)
        if sol is not None:
            so.append(sol)
        dent = _indentation_mm(d, cfg["reslice_mm"])
        if dent is not None:
            dn.append(dent)
        if c.sum() >= 6:
            ca.append(c.sum() * r2)
            f = _flattening(c)
            if f is not None:
                cf.append(f)
    ref: dict[str, float] = {}
    measured = bool(sa)
    if sa:
        ref["sac_area_mm2"] = float(np.median(sa))
    ref["sac_solidity"] = float(np.median(so)) if so else float(cfg["prior_sac_solidity"])
    ref["sac_indentation_mm"] = float(np.median(dn)) if dn else 0.0
    if ca:
        ref["cord_area_mm2"] = float(np.median(ca))
    ref["cord_flattening"] = float(np.median(cf)) if cf else float(cfg["prior_cord_flattening"])
    return {k: round(v, 4) for k, v in ref.items()}, measured


def grade_escc(
    geos: list[VertebraGeometry],
    structures: npt.NDArray[np.integer],
    affine: FArr,
    cfg: dict[str, Any],
    provenance: Provenance,
    why: str,
) -> EsccResult:
    """Bilsky grade per level, worst level and the deciding measurements.

    Parameters
    ----------
    geos : list of VertebraGeometry
        Vertebrae, head to feet.
    structures : ndarray
        Structures label map on the volume grid (1 sac, 2 cord, 3 epidural tumour).
    affine : ndarray (4, 4)
        Voxel index to LPS.
    cfg : dict
        The ``escc`` block of ``configs/features.yaml``.
    provenance, why : str
        ``measured`` on axial T2 MR, ``estimated`` otherwise, and the reason.
    """
    st = np.asarray(structures)
    if not geos:
        return EsccResult({}, None, None, "not_assessable", "no vertebra found")
    present = set(np.unique(st).tolist())
    if L.SAC not in present:
        why_na = "no thecal sac segmented" + (" (cord only)" if L.CORD in present else "")
        return EsccResult(
            {}, None, None, "not_assessable", why_na + ": epidural compression not assessable"
        )
    tum = st == L.EPIDURAL
    comps = None
    if tum.any():
        idx = np.argwhere(tum)
        lo, hi = idx.min(0), idx.max(0) + 1
        sub, _n = ndimage.label(
            tum[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]], structure=np.ones((3, 3, 3))
        )
        comps = (sub.astype(np.int32), lo)
    planes = _planes(geos, st, affine, cfg, comps)
    order = [g.level for g in geos]
    min_px = cfg["min_tumour_area_mm2"] / cfg["reslice_mm"] ** 2
    tumour_levels = {p.level for p in planes if (p.labels == L.EPIDURAL).sum() >= min_px}
    refs: dict[str, tuple[dict[str, float], bool]] = {}
    slices: list[SliceMeasurement] = []
    per_level: dict[str, str] = {lv: "0" for lv in order}
    vidx = {lv: k for k, lv in enumerate(order)}
    measured: list[tuple[_Plane, SliceMeasurement]] = []
    for p in planes:
        if p.level not in tumour_levels or (p.labels == L.EPIDURAL).sum() < min_px:
            continue
        if p.level not in refs:
            refs[p.level] = _reference(planes, order, tumour_levels, p.level, cfg)
        m = _measure(p, refs[p.level][0], cfg)
        slices.append(m)
        measured.append((p, m))
    # One connected epidural mass is one finding: it is graded at the level holding its
    # largest share of the mass (a mass centred at T10 that tapers into the T9 slab is a
    # T10 finding), with the worst grade seen on any slice through it.
    runs: dict[int, list[tuple[_Plane, SliceMeasurement, int]]] = {}
    for p, m in measured:
        ids, cnt = np.unique(p.comp[p.comp > 0], return_counts=True)
        for c, n in zip(ids.tolist(), cnt.tolist(), strict=True):
            if n >= min_px:
                runs.setdefault(int(c), []).append((p, m, int(n)))
    worst: tuple[int, float] | None = None
    worst_slice: SliceMeasurement | None = None
    worst_plane: _Plane | None = None
    worst_home: str | None = None
    for c in sorted(runs):
        run = runs[c]
        vol: dict[str, int] = {}
        for _p, mm, n in run:
            vol[mm.level] = vol.get(mm.level, 0) + n
        home = max(vol, key=lambda lv: (vol[lv], -vidx[lv]))
        top_p, top_m, _ = max(run, key=lambda pm: (grade_index(pm[1].grade), pm[1].tumour_area_mm2))
        if grade_index(top_m.grade) > grade_index(per_level[home]):
            per_level[home] = top_m.grade
        key = (grade_index(top_m.grade), top_m.tumour_area_mm2)
        if worst is None or key > worst:
            worst, worst_slice, worst_plane, worst_home = key, top_m, top_p, home
    reasons = [why]
    if any(not meas for _, meas in refs.values()):
        provenance = "estimated"
        reasons.append("no tumour-free reference level nearby: prior cord/sac shape used")
    worst_level = worst_home if worst_slice is not None and worst_slice.grade != "0" else None
    worst_grade = max(per_level.values(), key=grade_index) if per_level else None
    if worst_level is None and per_level:
        # no epidural tumour: the worst slice is the level with the smallest sac
        worst_level = None
    plane_geo = None
    if worst_plane is not None:
        plane_geo = {
            "origin": [round(float(x), 3) for x in worst_plane.origin],
            "u": [round(float(x), 6) for x in worst_plane.u],
            "v": [round(float(x), 6) for x in worst_plane.v],
        }
    ref_out = {}
    if worst_slice is not None:
        ref_out = refs[worst_slice.level][0]
    return EsccResult(
        per_level=per_level,
        worst_level=worst_level,
        worst_grade=worst_grade,
        provenance=provenance,
        why="; ".join(r for r in reasons if r),
        worst_slice=worst_slice,
        slices=slices,
        reference=ref_out,
        worst_plane=plane_geo,
    )
