"""Alignment between adjacent vertebrae: translation (mm), focal kyphosis and scoliosis (deg).

Each vertebra has its own frame (``geometry``). For a pair (upper ``u``, lower ``w``):

* translation: the offset between the centres of the posterior body walls, perpendicular
  to the pair's mean superior axis, minus the most similar offset of the neighbouring
  segments (normal curvature and level-to-level size changes offset normal walls by
  1-2 mm; a slip shows in full);
* kyphosis / scoliosis: the angle of ``u``'s superior axis against ``w``'s, in ``w``'s
  sagittal (s, a) and coronal (s, l) planes; the *focal* angle subtracts the most similar angle
  of up to two neighbouring segments on each side (the spine's normal curvature).

Lateral offsets and coronal angles are left out (sagittal plane only) when a body is cut
left-right by the field of view or the image's left-right voxels are coarse (a sagittal
MR slab), and the pair says why.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pipeline import labels as L
from pipeline.features.geometry import FArr, VertebraGeometry


@dataclass
class PairAlignment:
    """Alignment of one pair of adjacent vertebrae."""

    upper: str
    lower: str
    translation_mm: float
    translation_ap_mm: float
    translation_lateral_mm: float
    translation_raw_mm: float
    kyphosis_deg: float
    scoliosis_deg: float
    focal_kyphosis_deg: float
    focal_scoliosis_deg: float
    focal_from_neighbours: bool
    sagittal_only: bool = False
    #: why only the sagittal plane was measured (for the report)
    sagittal_why: str = ""


def posterior_wall_centre(g: VertebraGeometry, band_fraction: float = 0.2) -> FArr:
    """LPS centre of the posterior wall of the body (the band nearest the canal).

    Only the middle third of the body's width is used: the wall between the pedicle
    roots faces the canal, while the lateral thirds carry the pedicle roots, where a
    body/pedicle boundary that is off by a few voxels would move the band.
    """
    pts = g.points[g.body_mask]
    if len(pts) < 10:  # C1 has no body
        return g.centroid
    loc = g.local(pts)
    lat, ap = loc[:, 0], loc[:, 1]
    l_lo, l_hi = np.percentile(lat, 1), np.percentile(lat, 99)
    mid = np.abs(lat - (l_lo + l_hi) / 2) <= (l_hi - l_lo) / 6
    if mid.sum() >= 10:
        pts, ap = pts[mid], ap[mid]
    a_lo, a_hi = np.percentile(ap, 1), np.percentile(ap, 99)
    sel = ap <= a_lo + band_fraction * (a_hi - a_lo)
    return pts[sel].mean(0) if sel.sum() >= 3 else pts.mean(0)


def _angle(u: FArr, w_s: FArr, w_axis: FArr) -> float:
    return math.degrees(math.atan2(float(u @ w_axis), float(u @ w_s)))


def adjacent(u: VertebraGeometry, w: VertebraGeometry) -> bool:
    """Whether ``w`` is the next vertebra below ``u`` in the column."""
    return consecutive(u.label, w.label)


_TRANSITIONAL = (25, 28)


def consecutive(upper: int, lower: int) -> bool:
    """Whether VerSe ``lower`` directly follows ``upper`` (T13 / L6 may be absent between)."""
    order = L.CRANIOCAUDAL_ORDER
    if upper not in order or lower not in order:
        return False
    i, j = order.index(upper), order.index(lower)
    return j == i + 1 or (j == i + 2 and order[i + 1] in _TRANSITIONAL)


def pair_alignments(
    geos: list[VertebraGeometry],
    lateral_spacing_mm: float = 0.0,
    max_lateral_spacing_mm: float = math.inf,
) -> list[PairAlignment]:
    """Alignment of every pair of adjacent vertebrae, head to feet.

    Parameters
    ----------
    geos : list of VertebraGeometry
        Head to feet.
    lateral_spacing_mm : float
        Extent of one voxel along the patient's left-right axis (``voxel_extent_along``).
    max_lateral_spacing_mm : float
        Coarser than this, lateral offsets and coronal angles are not measured (sagittal
        plane only): a wall centre quantised to whole slices moves by up to a slice.
    """
    coarse = lateral_spacing_mm > max_lateral_spacing_mm
    raw: list[
        tuple[VertebraGeometry, VertebraGeometry, float, float, float, float, float, bool, str]
        | None
    ] = []
    for u, w in zip(geos[:-1], geos[1:], strict=True):
        # C1 has no body; the sacrum's posterior wall does not continue the lumbar one
        if (
            not adjacent(u, w)
            or u.body_mask.sum() < 10
            or w.body_mask.sum() < 10
            or w.label == L.SACRUM
            # a partly seen body has no reliable wall or axis, except one cut only
            # left-right (a sagittal slab): its sagittal-plane wall and axis are whole
            or (u.cut_by_fov and not u.cut_laterally_only)
            or (w.cut_by_fov and not w.cut_laterally_only)
        ):
            raw.append(None)
            continue
        axis = u.s + w.s
        axis = axis / np.linalg.norm(axis)
        d = posterior_wall_centre(u) - posterior_wall_centre(w)
        perp = d - (d @ axis) * axis
        a_mean = u.a + w.a
        a_mean = a_mean - (a_mean @ axis) * axis
        a_mean = a_mean / max(float(np.linalg.norm(a_mean)), 1e-9)
        lat = np.cross(-a_mean, axis)
        cut = u.cut_by_fov or w.cut_by_fov
        sag = cut or coarse  # lateral offset and coronal angle not measurable
        raw.append(
            (
                u,
                w,
                float(np.linalg.norm(perp)),
                float(perp @ a_mean),
                0.0 if sag else float(perp @ lat),
                _angle(u.s, w.s, w.a),
                0.0 if sag else _angle(u.s, w.s, w.l),
                sag,
                "body cut left-right by the field of view"
                if cut
                else (f"left-right voxel spacing {lateral_spacing_mm:.1f} mm" if coarse else ""),
            )
        )
    out: list[PairAlignment] = []
    for i, r in enumerate(raw):
        if r is None:
            continue
        u, w, t, tap, tlat, ky, sc, sag, sag_why = r
        # normal curvature: of up to two segments on each side, the one most like this
        # segment, so that one deformed segment neither hides itself nor makes its
        # neighbours look deformed the other way
        nb = [
            x
            for j in (i - 2, i - 1, i + 1, i + 2)
            if 0 <= j < len(raw) and (x := raw[j]) is not None
        ]
        if nb:
            ky_ref = float(min((n[5] for n in nb), key=lambda a: abs(a - ky)))
            # coronal references only from segments seen whole left-right
            sc_nb = [n[6] for n in nb if not n[7]]
            sc_ref = float(min(sc_nb, key=lambda a: abs(a - sc))) if sc_nb and not sag else 0.0
            # the same for the wall offset (lordosis and level-to-level size changes
            # offset normal posterior walls by 1-2 mm): subtract the most similar
            # neighbouring offset, as a vector (AP, lateral)
            ref_v = min(
                (np.array([n[3], n[4]]) for n in nb),
                key=lambda v: float(np.linalg.norm(v - np.array([tap, tlat]))),
            )
            tap_f, tlat_f = tap - float(ref_v[0]), tlat - float(ref_v[1])
        else:
            ky_ref = sc_ref = 0.0
            tap_f, tlat_f = tap, tlat
        out.append(
            PairAlignment(
                upper=u.level,
                lower=w.level,
                translation_mm=round(float(np.hypot(tap_f, tlat_f)), 3),
                translation_ap_mm=round(tap_f, 3),
                translation_lateral_mm=round(tlat_f, 3),
                translation_raw_mm=round(t, 3),
                kyphosis_deg=round(ky, 3),
                scoliosis_deg=round(sc, 3),
                focal_kyphosis_deg=round(ky - ky_ref, 3),
                focal_scoliosis_deg=round(sc - sc_ref, 3),
                focal_from_neighbours=bool(nb),
                sagittal_only=sag,
                sagittal_why=sag_why,
            )
        )
    return out
