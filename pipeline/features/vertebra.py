"""Per-vertebra features: involvement, lesion quality, posterolateral involvement, collapse.

Pure functions of label maps, intensities and the vertebra frames of
:mod:`pipeline.features.geometry`; tolerances come from ``configs/features.yaml``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from pipeline import labels as L
from pipeline.features.geometry import FArr, VertebraGeometry
from pipeline.features.types import Finding

LESION_CODES = (L.LYTIC, L.BLASTIC)

# SINS location classes (SCORING.md 1.2), by VerSe number.
_LOCATION: dict[int, str] = {
    1: "junctional",
    2: "junctional",
    7: "junctional",
    8: "junctional",
    9: "junctional",
    18: "junctional",
    19: "junctional",
    20: "junctional",
    24: "junctional",
    **{n: "mobile" for n in (3, 4, 5, 6, 21, 22, 23)},
    **{n: "semirigid" for n in range(10, 18)},
}
THORACIC = range(8, 20)


def location_class(label: int) -> Finding:
    """SINS location class of a vertebra (junctional / mobile / semirigid / rigid)."""
    if label in _LOCATION:
        return Finding(_LOCATION[label], "measured", "from the vertebra level")
    if label == L.SACRUM:
        return Finding.na("undivided sacrum label: S1 (junctional) or S2-S5 (rigid) unresolved")
    if label in (25, 28):
        return Finding.na(
            "transitional vertebra: SINS location refused until numbering is confirmed"
        )
    return Finding.na("level outside the SINS location table")


def lesion_voxels(
    geo: VertebraGeometry, structures: npt.NDArray[np.integer]
) -> npt.NDArray[np.bool_]:
    """Mask (over ``geo``'s voxels) of osseous lesion voxels."""
    return np.isin(np.asarray(structures)[tuple(geo.index.T)], LESION_CODES)


def voxel_extent_along(affine: FArr, direction: FArr) -> float:
    """Extent of one voxel box along a unit direction (mm)."""
    return float(np.sum(np.abs(direction @ np.asarray(affine)[:3, :3])))


def _trim_column_ends(
    s: FArr, hu: FArr, keep: npt.NDArray[np.bool_], endplate_hu: float, max_mm: float
) -> npt.NDArray[np.bool_]:
    """Voxels of one column (positions ``s`` along the body's axis) left after dropping, at
    each end, those beyond the column's outermost voxel of at least ``endplate_hu`` (or of
    ``keep``, lesion). An end whose dim tail is longer than ``max_mm`` is kept whole: that
    much dim "bone" is not a disc overreach (marrow or a lesion the segmentation missed)."""
    out = np.ones(s.size, bool)
    bright = (hu >= endplate_hu) | keep
    if not bright.any():
        return out
    lo, hi = float(s[bright].min()), float(s[bright].max())
    if lo - float(s.min()) <= max_mm:
        out &= s >= lo
    if float(s.max()) - hi <= max_mm:
        out &= s <= hi
    return out


def body_heights(
    geo: VertebraGeometry,
    affine: FArr,
    band_fraction: float,
    hu: FArr | None = None,
    lesion: npt.NDArray[np.bool_] | None = None,
    endplate_hu: float | None = None,
    max_trim_mm: float = 0.0,
) -> dict[str, float] | None:
    """Anterior, middle and posterior heights of the body along its own superior axis.

    The body's depth (along ``a``) is split into bands of ``band_fraction`` of the depth at
    the anterior and posterior walls and about the middle; each height is the extent of the
    body voxels of the band along ``s`` (central half of the width only, away from the
    rounded lateral walls), plus one voxel's extent.

    On CT (``hu``: attenuation of each of ``geo``'s points, ``endplate_hu``): each column
    ends at its endplates. Body voxels beyond the outermost voxel of at least
    ``endplate_hu`` are disc taken for bone (a segmentation overreaching into the disc
    space of a wedged body) and do not count, up to ``max_trim_mm`` at each end; voxels
    of ``lesion`` (a mask over ``geo``'s points) always count.
    """
    body = geo.body_mask
    if body.sum() < 20:
        return None
    loc = geo.local(geo.points[body])
    lat, ap, si = loc[:, 0], loc[:, 1], loc[:, 2]
    hw = np.percentile(np.abs(lat), 98)
    central = np.abs(lat) <= 0.5 * hw
    trim = hu is not None and endplate_hu is not None and max_trim_mm > 0
    hu_c = np.asarray(hu)[body][central] if trim else None
    les_c = (np.zeros(body.sum(), bool) if lesion is None else np.asarray(lesion)[body])[central]
    a_lo, a_hi = np.percentile(ap, 1), np.percentile(ap, 99)
    depth = a_hi - a_lo
    if depth <= 0:
        return None
    vox = voxel_extent_along(affine, geo.s)
    # heights of 1 mm columns across the depth (central half of the width), each from all
    # the column's voxels; a band's height is the median of its full columns (partial
    # columns at the rounded walls and band edges would understate it)
    col = np.floor((ap[central] - a_lo) / 1.0).astype(np.int64)
    sc = si[central]
    ids, counts = np.unique(col, return_counts=True)
    keep = counts >= 0.5 * np.median(counts)
    centres, heights = [], []
    for c in ids[keep]:
        cs = sc[col == c]
        if hu_c is not None and endplate_hu is not None:
            sel = col == c
            cs = cs[_trim_column_ends(cs, hu_c[sel], les_c[sel], endplate_hu, max_trim_mm)]
        centres.append(a_lo + c + 0.5)
        heights.append(float(cs.max() - cs.min() + vox))
    if len(heights) < 3:
        return None
    cen, hts = np.asarray(centres), np.asarray(heights)
    w = max(band_fraction * depth, 2.0)
    mid = (a_lo + a_hi) / 2
    bands = {
        "anterior": cen >= a_hi - w,
        "middle": np.abs(cen - mid) <= w / 2 + 0.5,
        "posterior": cen <= a_lo + w,
    }
    out: dict[str, float] = {}
    for name, sel in bands.items():
        if not sel.any():
            return None
        out[name] = float(np.median(hts[sel]))
    if geo.label == 2:  # C2: the dens rises from the middle of the body
        del out["middle"]
    out["depth"] = float(depth)
    return out


def lytic_threshold_hu(reference_hu: float, cfg: dict[str, Any]) -> float:
    """HU below which bone is lytic against the patient's normal bone ``reference_hu``.

    Closer to soft tissue than to that bone, or ``lytic_delta_hu`` below it, whichever is
    higher: low-density (osteoporotic) bone leaves little room between the two. ``cfg``
    is ``configs/features.yaml`` ``lesion_quality`` (``lytic_delta_hu``, optional
    ``soft_tissue_hu`` and ``lytic_fraction``).
    """
    soft = float(cfg.get("soft_tissue_hu", 40.0))
    return max(
        reference_hu - float(cfg["lytic_delta_hu"]),
        soft + float(cfg.get("lytic_fraction", 0.5)) * (reference_hu - soft),
    )


def lesion_quality_ct(
    geo: VertebraGeometry,
    lesion: npt.NDArray[np.bool_],
    ct: npt.NDArray[np.floating],
    reference_hu: float,
    cfg: dict[str, Any],
    reference_why: str,
) -> tuple[Finding, dict[str, float]]:
    """Lytic / blastic / mixed from CT attenuation relative to the patient's normal bone.

    Core voxels of the lesion (one-voxel erosion, so that partial volume with the cortex
    and the marrow does not decide) are compared with ``reference_hu``.
    """
    idx = geo.index[lesion]
    lo = idx.min(0)
    box = np.zeros(tuple(idx.max(0) - lo + 1), dtype=bool)
    box[tuple((idx - lo).T)] = True
    core = ndimage.binary_erosion(box)
    use = core[tuple((idx - lo).T)]
    if use.sum() < max(10, 0.2 * len(idx)):
        use = np.ones(len(idx), dtype=bool)
    hu = np.asarray(ct)[tuple(idx[use].T)].astype(np.float64)
    d = hu - reference_hu
    lytic = float(np.mean(hu < lytic_threshold_hu(reference_hu, cfg)))
    blastic = float(np.mean(d > cfg["blastic_delta_hu"]))
    meas = {
        "lesion_median_hu": float(np.median(hu)),
        "reference_hu": float(reference_hu),
        "lytic_share": round(lytic, 4),
        "blastic_share": round(blastic, 4),
    }
    m = cfg["mixed_min_share"]
    if lytic >= m and blastic >= m:
        return Finding(
            "mixed",
            "measured",
            f"lytic {lytic:.0%} and blastic {blastic:.0%} of the lesion core vs {reference_why}",
        ), meas
    if max(lytic, blastic) < m:
        return Finding.na(
            f"lesion attenuation not distinct from normal bone ({reference_why})"
        ), meas
    q = "lytic" if lytic > blastic else "blastic"
    return Finding(
        q, "measured", f"{max(lytic, blastic):.0%} of the lesion core {q} vs {reference_why}"
    ), meas


def reference_bone_hu(
    geos: list[VertebraGeometry],
    involved: dict[int, bool],
    ct: npt.NDArray[np.floating],
    cfg: dict[str, Any],
) -> tuple[float, str, bool]:
    """Median HU of the central bodies of uninvolved vertebrae (the patient's own bone).

    Returns the value, a description, and whether it was measured (False: config fallback).
    """
    vals = []
    used = []
    for g in geos:
        if involved.get(g.label):
            continue
        body = g.body_mask
        if body.sum() < cfg["min_reference_voxels"]:
            continue
        loc = g.local(g.points[body])
        r = np.percentile(np.abs(loc), 90, axis=0)
        central = np.all(np.abs(loc) <= 0.5 * np.maximum(r, 1e-6), axis=1)
        idx = g.index[body][central]
        if len(idx) < cfg["min_reference_voxels"]:
            continue
        vals.append(np.asarray(ct)[tuple(idx.T)])
        used.append(g.level)
    if not vals:
        return (
            float(cfg["fallback_reference_hu"]),
            "a default trabecular HU (no uninvolved vertebra)",
            False,
        )
    ref = float(np.median(np.concatenate(vals)))
    return ref, f"median {ref:.0f} HU of uninvolved {', '.join(used)}", True


def posterolateral(
    geo: VertebraGeometry, lesion: npt.NDArray[np.bool_], voxel_mm3: float, cfg: dict[str, Any]
) -> tuple[Finding, dict[str, float]]:
    """None / unilateral / bilateral involvement of pedicles, facets, costovertebral joints.

    Sides are taken from the pedicle labels and, for the posterior elements and the body,
    from the sign of the left axis of the vertebra's own frame (patient space). Laminae and
    the spinous process (medial posterior elements) do not count (SINS wording).
    """
    if not np.any(geo.parts):
        return Finding.na("no vertebra-parts segmentation"), {}
    loc = geo.local(geo.points)
    lat, ap = loc[:, 0], loc[:, 1]
    post = geo.parts == L.POSTERIOR
    body = geo.parts == L.BODY
    side_mm3 = {"left": 0.0, "right": 0.0}
    side_mm3["left"] += float(np.sum(lesion & (geo.parts == L.PEDICLE_L))) * voxel_mm3
    side_mm3["right"] += float(np.sum(lesion & (geo.parts == L.PEDICLE_R))) * voxel_mm3
    if post.any():
        hw = np.percentile(np.abs(lat[post]), 98)
        facet = post & (np.abs(lat) >= cfg["facet_lateral_fraction"] * hw)
        side_mm3["left"] += float(np.sum(lesion & facet & (lat > 0))) * voxel_mm3
        side_mm3["right"] += float(np.sum(lesion & facet & (lat < 0))) * voxel_mm3
    if cfg.get("costovertebral", True) and geo.label in THORACIC and body.any():
        bl, ba = lat[body], ap[body]
        hwb = np.percentile(np.abs(bl), 98)
        a_lo, a_hi = np.percentile(ba, 1), np.percentile(ba, 99)
        cv = (
            body
            & (np.abs(lat) >= cfg["cv_lateral_fraction"] * hwb)
            & (ap <= a_lo + cfg["cv_posterior_fraction"] * (a_hi - a_lo))
        )
        side_mm3["left"] += float(np.sum(lesion & cv & (lat > 0))) * voxel_mm3
        side_mm3["right"] += float(np.sum(lesion & cv & (lat < 0))) * voxel_mm3
    # "replacement with tumour": a share of the side's pedicle, not a rim invaded from the body
    ped_mm3 = {
        "left": float(np.sum(geo.parts == L.PEDICLE_L)) * voxel_mm3,
        "right": float(np.sum(geo.parts == L.PEDICLE_R)) * voxel_mm3,
    }
    frac = float(cfg.get("min_side_fraction", 0.0))
    sides = [s for s, v in side_mm3.items() if v >= max(cfg["min_side_mm3"], frac * ped_mm3[s])]
    value = {0: "none", 1: "unilateral", 2: "bilateral"}[len(sides)]
    why = (
        f"tumour in the {' and '.join(sides)} pedicle/facet/costovertebral region"
        if sides
        else "no tumour in pedicles, facets or costovertebral joints"
    )
    meas = {f"posterolateral_{k}_mm3": round(v, 1) for k, v in side_mm3.items()}
    return Finding(value, "measured", why), meas


def collapse_category(
    collapse_pct: float | None,
    body_pct: float | None,
    cfg_collapse: dict[str, Any],
    body_involved_pct: float,
) -> str | None:
    """SINS collapse category from the height loss and the involved share of the body."""
    if collapse_pct is None:
        return None
    if collapse_pct >= cfg_collapse["min_collapse_pct"]:
        return "gt50" if collapse_pct > 50.0 else "lt50"
    if body_pct is not None and body_pct > body_involved_pct:
        return "no_collapse_gt50_involved"
    return "none"
