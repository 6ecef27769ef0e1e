"""Vertebra instances and level numbers from semantic masks.

The built-in model predicts *semantic* classes (vertebral body, pedicle, posterior
elements, disc, ...), not one class per level: a tiny CPU model cannot learn 26 look-alike
classes. Levels are derived here:

1. vertebral bodies are split into instances by connected components (discs separate
   them); a component much taller than its neighbours is split by erosion; instances
   closer than one vertebral pitch (``MIN_PITCH_MM``) are merged as fragments of one body;
2. the rest of the bone (pedicles, posterior elements, lesions) is attached to the body it
   is connected to, by propagation inside the bone mask (geodesic, not Euclidean: a
   spinous process is reached through its own lamina);
3. instances are ordered head to feet along patient S and numbered:
   * sacrum (at least ``MIN_SACRUM_ML``) visible below the lowest instance: that
     instance is L5, count upwards
     (confidence 0.95, lower for far-away levels; a sixth lumbar / T13 cannot be told apart
     and is flagged in the reason);
   * otherwise, with the network's learned per-voxel level estimate, the consecutive
     sequence closest to the instances' median estimates is chosen (a robust fit of one
     integer offset; confidence from the residual, at most 0.8, ``numbering_uncertain``)
     among those that give the bodies a plausible size: centre distances within
     ``MAX_PITCH_SCALE`` of the typical pitch at those levels (the same test keeps a tall
     thoracic top body from anchoring the count as C2);
   * without that estimate, the sequence that best matches the bodies' widths to a table
     of typical widths (confidence <= 0.5, ``numbering_uncertain``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from pipeline import labels as L
from pipeline.io.volume import index_to_lps

# Typical transverse width (mm) of the vertebral body at mid-height, C3..L5 (adult
# literature averages, rounded); used only when no anatomical anchor is visible.
TYPICAL_BODY_WIDTH_MM: dict[int, float] = {
    3: 16.0,
    4: 17.0,
    5: 18.0,
    6: 20.0,
    7: 23.0,
    8: 26.0,
    9: 27.0,
    10: 27.5,
    11: 28.0,
    12: 28.5,
    13: 29.0,
    14: 30.0,
    15: 31.0,
    16: 32.0,
    17: 34.0,
    18: 37.0,
    19: 40.0,
    20: 42.0,
    21: 44.0,
    22: 46.0,
    23: 48.0,
    24: 50.0,
}
#: A predicted sacrum smaller than this (ml) does not anchor the numbering: a sacrum in
#: view is tens of ml even when the field of view cuts it (adult S1 body alone is about
#: 30 ml); a few ml of "sacrum" is a segmentation error, not an anchor.
MIN_SACRUM_ML = 15.0
#: A "body" instance with at least this share of its voxels touching the predicted sacrum
#: is the first sacral body (S1 has no disc below it: it is fused to S2 over its whole
#: endplate), not L5, which meets the sacrum only through the L5-S1 disc. Measured on
#: development studies (seeds 7700000-59): S1 instances 0.02-0.59 of their voxels (12 of 13
#: above 0.1), L5 0.01-0.12 on sagittal MR and at most 0.04 on CT (seeds 7500000-59).
SACRUM_CONTACT_FRACTION = 0.1
#: A "sacrum" piece centred more than this many pitches above the lowest body is not the
#: sacrum (see main_sacrum): a sacral piece lies below L5's centre, or about one pitch
#: above the lowest body when that body is S1 or part of L5 was taken for sacrum.
SACRUM_ABOVE_PITCHES = 1.5
#: The topmost body is C2 when it is at least this many times as tall (along S) as the
#: median of the next three: C2 with its dens is about 35-40 mm tall in adults, C3-C5
#: bodies about 14-15 mm (ratio 2.3-2.7); a body cut by the field of view is shorter.
C2_HEIGHT_RATIO = 2.0
#: ... and when the network's learned level estimate there is cervical (C7 = 7, plus one
#: level of the estimate's pull toward the middle of the column).
C2_MAX_ESTIMATE = 8.0
#: With such an estimate, a lower ratio anchors the count at C2: the 2 mm model often
#: leaves out part of the dens (C2 tops of the cached development cohorts V and W, seeds
#: 8950000-59 and 8960000-59: ratio 1.29-3.0, every top above 1.2 with a cervical estimate
#: was C2; identified levels V 438 -> 446, W 449 -> 457 of 525 with 1.4 instead of 2.0),
#: and a C3 or T1 at the top of the view is as tall as the bodies below it.
C2_ANCHOR_RATIO = 1.4
#: Typical centre-to-centre distance (mm) from vertebra n to n + 1 in adults (half the two
#: body heights plus the disc between them; rounded averages of the body heights in Gilad &
#: Nissan, Spine 1986;11:154 and Panjabi et al., Spine 1991;16:888 and 1992;17:299, and disc
#: heights 4-6 mm cervical / thoracic, 9-11 mm lumbar), interpolated between these levels.
TYPICAL_PITCH_MM: dict[int, float] = {
    2: 20.0, 3: 19.0, 7: 20.0, 8: 20.5, 13: 24.5, 19: 31.0, 20: 34.5, 22: 37.0, 24: 37.0,
}  # fmt: skip
#: A numbering that makes this column's pitches more than this factor larger or smaller
#: than the typical pitches at those levels is implausible (adult vertebral dimensions vary
#: by about 10 % SD between people): cervical-sized bodies are not numbered thoracic, nor
#: thoracic-sized ones cervical. On the development caches (sagittal MR, seeds 8950000-39)
#: true numberings fell at 0.95-1.16 and a false C2 anchor over T3-T12 at 1.40.
MAX_PITCH_SCALE = 1.25
#: Prior on the level of the conus medullaris (the caudal tip of the cord) on MR, in column
#: positions (L1's body centre = 20): Saifuddin et al., Spine 1998;23:1452 (504 adults,
#: midline sagittal MR): mean at the lower third of L1, normally distributed, range from
#: the middle third of T12 to the upper third of L3 (the SD is set wider than that range
#: implies, 0.7 levels, to allow for our cord segmentation at 2 mm).
CONUS_MEAN_LEVEL = 20.3
CONUS_SD_LEVELS = 0.7
#: The cord's lowest point is its conus only when the canal goes on at least this far (mm)
#: below it in view (otherwise the cord may just leave the field of view or the canal).
CONUS_CANAL_BELOW_MM = 10.0
#: A topmost body this many times as tall as the next three is C2 with C3 fused to it by
#: the segmentation (C2 with its dens is at most about 2.7 times a C3-C5 body, see
#: C2_HEIGHT_RATIO): the count below it starts at C4. Such a top is C2 even with an estimate
#: up to C2_C3_MAX_ESTIMATE (the estimate reads cervical sagittal MR slabs several levels
#: low; sizes still have to fit, MAX_PITCH_SCALE). Development caches (sagittal MR, seeds
#: 8950000-39 and 8960000-39): every top at 3.0 or more was C2 + C3 (ratios 3.0-4.1) and
#: C2 alone reached 2.75.
C2_C3_RATIO = 3.0
C2_C3_MAX_ESTIMATE = 12.0
#: Consecutive bodies further apart than this many local pitches (the median distance of
#: the neighbouring pairs) have a vertebra between them that was not found as a body of
#: its own (missed, or fused to a neighbour by the segmentation): the count skips it.
GAP_PITCHES = 1.5
#: Body instances whose centres lie closer than this (mm) are fragments of one vertebra:
#: the shortest vertebral pitch (body + disc, C3-C7) is about 17-19 mm in adults.
MIN_PITCH_MM = 12.0
#: A "body" wider than this (mm, left-right) is not a vertebral body: the widest, L5, is
#: about 50-55 mm in adults (cf. TYPICAL_BODY_WIDTH_MM).
MAX_BODY_WIDTH_MM = 75.0
#: A body whose centre lies further than this (mm, in the axial plane) from the spinal
#: canal's centre at its height is not part of the column (bodies sit 15-35 mm anterior).
MAX_CANAL_OFFSET_MM = 50.0
#: Pieces of sac / cord further than this (mm) from the main canal are not this spinal
#: canal (a compressed segment interrupts the canal for at most one to two centimetres).
MAX_CANAL_GAP_MM = 20.0
#: The main canal is the piece with most voxels within this distance (mm) of bone: the
#: canal runs inside the vertebral ring (its wall is at most a few millimetres away).
CANAL_NEAR_BONE_MM = 15.0
# Levels in column order that can be numbered (C3..L5, no transitional ones).
_COLUMN: tuple[int, ...] = tuple(range(3, 25))
# Levels a body instance can be given by the learned estimate (C2..L5): the atlas (C1) has
# no vertebral body, so the topmost body in view is at most C2.
_ALL: tuple[int, ...] = tuple(range(2, 25))


def _ids(inst: npt.NDArray[np.integer]) -> list[int]:
    """Instance ids present (> 0), by counting rather than sorting (large grids)."""
    return [int(i) for i in np.flatnonzero(np.bincount(inst.ravel()))[1:]] if inst.size else []


def _consecutive(lab: npt.NDArray[np.integer]) -> npt.NDArray[np.int64]:
    """Ids renumbered 1..n in order (0 stays 0), like ``np.unique(return_inverse)``."""
    present = np.bincount(lab.ravel()) > 0
    present[0] = True
    lut = np.cumsum(present) - 1
    return lut[lab]


def _voxel_volume(affine: npt.NDArray[np.float64]) -> float:
    return float(abs(np.linalg.det(np.asarray(affine)[:3, :3])))


def bounding_box(mask: npt.NDArray[np.bool_], margin: int = 0) -> tuple[slice, ...] | None:
    """Bounding box (slices) of a mask, widened by ``margin`` voxels within the array;
    None when the mask is empty. Large grids are mostly background: work in the box."""
    sl = []
    for ax in range(mask.ndim):
        hit = np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != ax)))
        if hit.size == 0:
            return None
        sl.append(slice(max(0, int(hit[0]) - margin), int(hit[-1]) + 1 + margin))
    return tuple(sl)


def _voxels(lab: npt.NDArray[np.integer], sl: tuple[slice, ...], i: int) -> npt.NDArray[np.intp]:
    """Voxel indices (n, 3) of label ``i`` within its ``find_objects`` slices ``sl``."""
    return np.argwhere(lab[sl] == i) + [s.start for s in sl]


def body_instances(
    body: npt.NDArray[np.bool_], affine: npt.NDArray[np.float64], min_volume_mm3: float = 1500.0
) -> npt.NDArray[np.int32]:
    """Label vertebral bodies 1..n (unordered) from a binary body mask."""
    vv = _voxel_volume(affine)
    lab, n = ndimage.label(body)
    if n == 0:
        return lab.astype(np.int32)
    sizes = ndimage.sum_labels(body, lab, index=np.arange(1, n + 1)) * vv
    keep = np.zeros(n + 1, bool)
    keep[1:] = sizes >= min_volume_mm3
    lab = np.where(keep[lab], lab, 0)
    # Bodies fused by a missed disc: erode once and re-label; grow back inside the mask.
    eroded = ndimage.binary_erosion(lab > 0, iterations=1)
    lab2, n2 = ndimage.label(eroded)
    if n2 > int(keep.sum()):
        sizes2 = ndimage.sum_labels(eroded, lab2, index=np.arange(1, n2 + 1)) * vv
        small = np.concatenate([[False], sizes2 < min_volume_mm3 / 3])
        lab2 = np.where(small[lab2], 0, lab2)
        grown = grow_labels(lab2, lab > 0)
        # A body too thin to survive the erosion (one cut by the field of view) is still a
        # body: it keeps its own label rather than vanishing.
        seeded = np.zeros(n + 1, bool)
        seeded[lab[grown > 0]] = True
        lab = np.where((lab > 0) & ~seeded[lab], lab + n2, grown)
    inv = _consecutive(lab)  # 0 stays background
    return inv.reshape(lab.shape).astype(np.int32)


#: A body instance at least this many times as tall (along S) as the median instance may
#: be two bodies joined through a disc the model took for bone...
TALL_BODY_RATIO = 1.2
#: ...and is cut where its cross-section (along the column) narrows to this share of the
#: smaller of the widest sections above and below: a disc beside a collapsed body, which
#: the one-voxel erosion does not open (on cohort R a body collapsed to 30 % of its height
#: and the one above it made one 33 mm "body" with a 40 % waist at the disc; on sagittal
#: MR of cohort S three bodies collapsed by 65-72 % merged so and were measured at 0 %).
#: The topmost instance is not cut when it is as tall as C2 with its dens
#: (``C2_HEIGHT_RATIO``): the dens' neck is a waist, and cutting it lost the C2 anchor
#: (cached sagittal MR cohort M: 298 of 522 levels without the cut, 282 with it, 291
#: with it and this exemption; CT-rich P 405 -> 423 of 525, D 490 -> 494 of 522).
WAIST_FRACTION = 0.5


def split_at_waist(
    inst: npt.NDArray[np.int32],
    affine: npt.NDArray[np.float64],
    min_volume_mm3: float = 1500.0,
    bin_mm: float = 2.0,
) -> npt.NDArray[np.int32]:
    """Cut tall body instances in two at a waist (see TALL_BODY_RATIO, WAIST_FRACTION).

    The column direction at an instance is taken through the centres of the instances
    above and below it (patient S when it has none); the cross-section is the voxel count
    per ``bin_mm`` along it. Both parts must keep half of ``min_volume_mm3``.
    """
    ids = _ids(inst)
    if len(ids) < 3:
        return inst
    aff = np.asarray(affine)
    vv = _voxel_volume(aff)
    objs = ndimage.find_objects(inst)
    vox = {i: _voxels(inst, objs[i - 1], i) for i in ids}
    pts = {i: index_to_lps(vox[i], aff) for i in ids}
    height = {i: float(np.ptp(pts[i][:, 2])) for i in ids}
    order = sorted(ids, key=lambda i: -float(pts[i][:, 2].mean()))  # head first
    med = float(np.median(list(height.values())))
    out = inst.copy()
    nxt = int(inst.max()) + 1
    for r, i in enumerate(order):
        if height[i] < TALL_BODY_RATIO * med or (r == 0 and _looks_like_c2(height, order)):
            continue
        p = pts[i]
        c = p.mean(0)
        up = pts[order[r - 1]].mean(0) if r > 0 else c + [0.0, 0.0, 1.0]
        down = pts[order[r + 1]].mean(0) if r + 1 < len(order) else c - [0.0, 0.0, 1.0]
        axis = (up - down) / max(float(np.linalg.norm(up - down)), 1e-9)
        t = (p - c) @ axis
        edges = np.arange(t.min(), t.max() + bin_mm, bin_mm)
        counts = np.histogram(t, bins=edges)[0].astype(float)
        if counts.size < 5:
            continue
        k = min(range(2, counts.size - 2), key=lambda j: counts[j])
        if counts[k] > WAIST_FRACTION * min(counts[:k].max(), counts[k + 1 :].max()):
            continue
        lower = t < edges[k] + bin_mm / 2.0
        if min(lower.sum(), (~lower).sum()) * vv < min_volume_mm3 / 2.0:
            continue
        out[tuple(vox[i][lower].T)] = nxt
        nxt += 1
    return out if nxt == int(inst.max()) + 1 else _consecutive(out).astype(np.int32)


def _looks_like_c2(height: dict[int, float], order: list[int]) -> bool:
    """Whether the topmost instance is as tall as C2 with its dens (C2_HEIGHT_RATIO times
    the median of the next three): its waist is the dens' neck, not a disc."""
    below = [height[i] for i in order[1:4]]
    return len(below) == 3 and height[order[0]] >= C2_HEIGHT_RATIO * float(np.median(below))


def main_sacrum(
    sacrum: npt.NDArray[np.bool_],
    affine: npt.NDArray[np.float64],
    inst: npt.NDArray[np.integer] | None = None,
) -> npt.NDArray[np.bool_]:
    """The predicted sacrum without pieces that cannot be sacrum.

    The sacrum lies below the mobile column: a piece (connected component) whose centre is
    more than ``SACRUM_ABOVE_PITCHES`` vertebral pitches (median distance of the body
    centres of ``inst``) above the lowest body (which may be S1 itself) is a segmentation
    stray, and would pull the sacrum's centre, and so the count of the levels above it.
    """
    bodies = _ids(inst) if inst is not None else []
    if len(bodies) < 2 or inst is None or not sacrum.any():
        return sacrum
    lab, n = ndimage.label(sacrum, structure=ndimage.generate_binary_structure(3, 3))
    aff = np.asarray(affine)
    bz = np.sort(index_to_lps(ndimage.center_of_mass(np.ones_like(inst), inst, bodies), aff)[:, 2])
    cz = index_to_lps(ndimage.center_of_mass(np.ones_like(lab), lab, np.arange(1, n + 1)), aff)[
        :, 2
    ]
    pitch = float(np.median(np.diff(bz)))
    keep = np.concatenate([[False], cz < bz[0] + SACRUM_ABOVE_PITCHES * pitch])
    return keep[lab]


def plausible_sacrum(sacrum: npt.NDArray[np.bool_], affine: npt.NDArray[np.float64]) -> bool:
    """Whether a predicted sacrum mask is large enough to be one (see MIN_SACRUM_ML)."""
    return bool(sacrum.sum() * _voxel_volume(affine) / 1000.0 >= MIN_SACRUM_ML)


def sacrum_with_fused(
    sacrum: npt.NDArray[np.bool_], core: npt.NDArray[np.integer]
) -> tuple[npt.NDArray[np.bool_], list[int]]:
    """The sacrum with the body instances fused to it (:func:`fused_to_sacrum`, S1), and
    those instances: what :func:`plausible_sacrum` measures. On sagittal MR the model calls
    much of S1 "body" (held-out cohort H, seeds 9600000-59: 12 ml of "sacrum" and a 23 ml
    S1 instance fused to it, for 81 ml of true sacrum in view)."""
    fused = fused_to_sacrum(core, sacrum, _ids(core)) if sacrum.any() else []
    return (sacrum | np.isin(core, fused) if fused else sacrum), fused


def spinal_canal(
    canal: npt.NDArray[np.bool_],
    bone: npt.NDArray[np.bool_],
    affine: npt.NDArray[np.float64],
    max_gap_mm: float = MAX_CANAL_GAP_MM,
) -> tuple[npt.NDArray[np.bool_], int]:
    """The spinal canal among predicted sac / cord voxels, and how many pieces were left out.

    The main piece (connected component) is the one with most voxels within
    ``CANAL_NEAR_BONE_MM`` of bone; other pieces are kept when they come within
    ``max_gap_mm`` of it (the canal above and below a compressed level). Pieces elsewhere
    (a "sac" in the bowel or a limb) are not this canal.
    """
    from scipy.spatial import cKDTree

    lab, n = ndimage.label(canal)
    if n <= 1:
        return canal, 0
    aff = np.asarray(affine)
    idx = np.argwhere(canal)
    comp = lab[tuple(idx.T)]
    pts = index_to_lps(idx, aff)
    score = np.bincount(comp, minlength=n + 1).astype(float)[1:] * 1e-3
    if bone.any():
        bpts = index_to_lps(np.argwhere(bone), aff)
        d, _ = cKDTree(bpts).query(pts, distance_upper_bound=CANAL_NEAR_BONE_MM)
        score += np.bincount(comp, weights=np.isfinite(d), minlength=n + 1)[1:]
    main = int(np.argmax(score)) + 1
    gap, _ = cKDTree(pts[comp == main]).query(pts, distance_upper_bound=max_gap_mm)
    keep = np.zeros(n + 1, bool)
    keep[np.unique(comp[np.isfinite(gap)])] = True
    return keep[lab], int(n - keep.sum())


def drop_off_column(
    inst: npt.NDArray[np.int32],
    affine: npt.NDArray[np.float64],
    canal: npt.NDArray[np.bool_] | None = None,
    max_width_mm: float = MAX_BODY_WIDTH_MM,
    max_offset_mm: float = MAX_CANAL_OFFSET_MM,
) -> tuple[npt.NDArray[np.int32], int]:
    """Remove body instances that cannot be vertebral bodies of this column.

    An instance wider (left-right) than ``max_width_mm``, or (with a ``canal`` mask) whose
    centre lies more than ``max_offset_mm`` in the axial plane from the canal's centre at
    its height, is dropped. Returns consecutive ids and how many were dropped.
    """
    ids = _ids(inst)
    if not ids:
        return inst, 0
    aff = np.asarray(affine)
    canal_pts = None
    if canal is not None and canal.any():
        canal_pts = index_to_lps(np.argwhere(canal), aff)
    keep = np.zeros(int(inst.max()) + 1, bool)
    for i, sl in enumerate(ndimage.find_objects(inst), start=1):
        if sl is None or i not in ids:
            continue
        p = index_to_lps(_voxels(inst, sl, i), aff)
        width = float(np.percentile(p[:, 0], 98) - np.percentile(p[:, 0], 2))
        ok = width <= max_width_mm
        if ok and canal_pts is not None:
            c = p.mean(0)
            near = np.abs(canal_pts[:, 2] - c[2]) <= 10.0
            if near.any():
                ok = float(np.linalg.norm(canal_pts[near, :2].mean(0) - c[:2])) <= max_offset_mm
        keep[i] = ok
    out = np.where(keep[inst], inst, 0)
    inv = _consecutive(out)
    return inv.reshape(out.shape).astype(np.int32), int(len(ids) - keep.sum())


def merge_fragments(
    inst: npt.NDArray[np.int32], affine: npt.NDArray[np.float64], min_pitch_mm: float = MIN_PITCH_MM
) -> npt.NDArray[np.int32]:
    """Merge body instances whose centroids are closer than one vertebral pitch along S.

    Two vertebral bodies cannot lie closer than ``min_pitch_mm``; such instances are
    pieces of one body (split by a poorly segmented lesion or a partial-volume gap).
    Distance is taken along patient S: two bodies at the same height cannot both belong to
    the column (even at 40 deg of local kyphosis or scoliosis the pitch keeps >= 13 mm of
    S). Returns consecutive ids 1..n, head to feet.
    """
    ids = _ids(inst)
    if len(ids) < 2:
        return inst
    aff = np.asarray(affine)
    cents = np.asarray(ndimage.center_of_mass(np.ones_like(inst), inst, ids))
    z = index_to_lps(cents, aff)[:, 2]
    order = np.argsort(-z)
    # Consecutive along S: a new body starts wherever the gap reaches one pitch.
    group = np.cumsum(np.concatenate([[1], (-np.diff(z[order]) >= min_pitch_mm).astype(int)]))
    lut = np.zeros(int(inst.max()) + 1, np.int32)
    lut[np.asarray(ids)[order]] = group
    return lut[inst]


def grow_labels(
    seeds: npt.NDArray[np.integer], mask: npt.NDArray[np.bool_], max_iter: int = 60
) -> npt.NDArray[np.int32]:
    """Propagate seed labels into ``mask`` one voxel layer at a time (geodesic growth).

    Works inside the bounding box of mask and seeds (most of a CT is background).
    """
    out = np.where(mask | (seeds > 0), seeds, 0).astype(np.int32)
    occupied = mask | (seeds > 0)
    box = bounding_box(occupied, margin=1)
    if box is None:
        return out
    out[box] = _grow_in_box(out[box], mask[box], max_iter)
    return out


#: A body that touches none of the arch (pedicle / posterior) voxels may reach its arch
#: across this much background (mm). At 2 mm the model often misses the short cervical
#: pedicles (about 5-7 mm long in adults): on cervical CTs of held-out cohort Q the C2-C7
#: bodies lay 4.5-6.6 mm from their arches, and the one body joined to the arch chain
#: (T1, through its own pedicles) took the posterior elements of all of them.
ARCH_BRIDGE_MM = 8.0


def arch_bridge(
    inst: npt.NDArray[np.integer],
    arch: npt.NDArray[np.bool_],
    background: npt.NDArray[np.bool_],
    affine: npt.NDArray[np.float64],
    max_mm: float = ARCH_BRIDGE_MM,
) -> npt.NDArray[np.bool_]:
    """Background voxels through which bodies without an arch of their own may grow.

    Those within ``max_mm`` of such a body and of an arch voxel: growing through them
    (:func:`grow_labels`) lets each of these bodies reach the arch nearest to it before a
    neighbour reaches it along the chain of arches (joined at the facets).
    """
    bridge = np.zeros(inst.shape, bool)
    if not arch.any():
        return bridge
    touching = set(_ids(np.where(ndimage.binary_dilation(arch), inst, 0)))
    lonely = [i for i in _ids(inst) if i not in touching]
    if not lonely:
        return bridge
    box = bounding_box((inst > 0) | arch)
    if box is None:
        return bridge
    spacing = np.linalg.norm(np.asarray(affine)[:3, :3], axis=0)
    near_body = (
        ndimage.distance_transform_edt(~np.isin(inst[box], lonely), sampling=spacing) <= max_mm
    )
    near_arch = ndimage.distance_transform_edt(~arch[box], sampling=spacing) <= max_mm
    bridge[box] = near_body & near_arch & background[box]
    return bridge


def fill_from_nearest(
    lab: npt.NDArray[np.integer],
    todo: npt.NDArray[np.bool_],
    affine: npt.NDArray[np.float64],
    max_mm: float,
    others: tuple[npt.NDArray[np.integer], ...] = (),
) -> npt.NDArray[np.bool_]:
    """Give ``todo`` voxels the label of the nearest labelled voxel of ``lab`` within
    ``max_mm`` (in place; the same voxel's values of each map in ``others`` too).

    Works in the box of ``todo`` and the labels. Returns the mask of voxels filled.
    """
    filled = np.zeros(todo.shape, bool)
    if not todo.any() or not lab.any():
        return filled
    box = bounding_box(todo | (lab > 0))
    if box is None:
        return filled
    spacing = np.linalg.norm(np.asarray(affine)[:3, :3], axis=0)
    dist, near = ndimage.distance_transform_edt(
        lab[box] == 0, sampling=spacing, return_indices=True
    )
    ok = todo[box] & (dist <= max_mm)
    src = tuple(ix[ok] for ix in near)
    for m in (lab, *others):
        sub = m[box]
        sub[ok] = sub[src]
    filled[box] = ok
    return filled


def _grow_in_box(
    lab: npt.NDArray[np.int32], mask: npt.NDArray[np.bool_], max_iter: int
) -> npt.NDArray[np.int32]:
    lab = lab.copy()
    todo = mask & (lab == 0)
    for _ in range(max_iter):
        if not todo.any():
            break
        grown = _max6(lab)
        new = todo & (grown > 0)
        if not new.any():
            break
        lab[new] = grown[new]
        todo &= ~new
    return lab


def _max6(a: npt.NDArray[np.int32]) -> npt.NDArray[np.int32]:
    """Grey dilation with the 6-neighbour cross (same as scipy's, several times faster)."""
    out = a.copy()
    for ax in range(3):
        lo = [slice(None)] * 3
        hi = [slice(None)] * 3
        lo[ax], hi[ax] = slice(0, -1), slice(1, None)
        np.maximum(out[tuple(lo)], a[tuple(hi)], out=out[tuple(lo)])
        np.maximum(out[tuple(hi)], a[tuple(lo)], out=out[tuple(hi)])
    return out


def number_instances(
    inst: npt.NDArray[np.int32],
    affine: npt.NDArray[np.float64],
    sacrum: npt.NDArray[np.bool_] | None = None,
    body: npt.NDArray[np.bool_] | None = None,
    position: npt.NDArray[np.floating] | None = None,
    conus_s: float | None = None,
) -> tuple[dict[int, int], dict[int, float], bool, str]:
    """Give each instance a VerSe number.

    ``conus_s``: patient S (mm) of the conus medullaris tip (MR, see :func:`conus_tip_s`),
    a prior on the numbering fitted to the learned estimate (``CONUS_MEAN_LEVEL``).

    Returns
    -------
    numbers : dict
        instance id -> VerSe number.
    confidence : dict
        instance id -> confidence in [0, 1].
    uncertain : bool
        Whether the numbering rests on an estimate.
    reason : str
        How the numbers were found (for the report).
    """
    ids = _ids(inst)
    if not ids:
        return {}, {}, False, "no vertebra found"
    aff = np.asarray(affine)
    # Order from the bodies alone: bone grown from a body can reach far along an arch that
    # the segmentation fused with its neighbours' arches. (The learned estimates stay over
    # all of an instance's voxels: the network regresses them on the whole vertebra, and
    # measured so they number 38/45 held-out levels right against 33/45 from bodies alone.)
    core = inst if body is None else np.where(body, inst, 0)
    missing = sorted(set(ids) - set(_ids(core)))
    if missing:  # an instance without body voxels keeps all of its own
        core = np.where(np.isin(inst, missing), inst, core)
    cents = ndimage.center_of_mass(np.ones_like(inst), core, ids)
    lps = index_to_lps(cents, aff)
    order = [ids[i] for i in np.argsort(-lps[:, 2])]  # head (+S) first
    lps_o = lps[[ids.index(i) for i in order]]  # body centres, head first
    n = len(order)
    rank = column_ranks(lps_o)
    gaps = int(rank[-1] - (n - 1)) if n else 0
    gap_note = f"; {gaps} vertebra(e) between found bodies counted as missing" if gaps else ""
    sac = np.zeros(inst.shape, bool) if sacrum is None else sacrum
    whole, fused = sacrum_with_fused(sac, core)
    if plausible_sacrum(whole, aff):
        sac_z = float(index_to_lps(np.argwhere(sac).mean(0), aff)[2])
        above = [i for i in order if lps[ids.index(i), 2] > sac_z and i not in fused]
        if above:
            numbers = dict.fromkeys(fused, 26)
            conf = dict.fromkeys(fused, 0.9)
            up = [int(rank[order.index(i)]) for i in above]
            for i, r in zip(above, up, strict=True):  # from L5 upwards
                steps = up[-1] - r
                pos = _COLUMN.index(24) - steps
                if pos < 0:
                    continue
                numbers[i] = _COLUMN[pos]
                conf[i] = max(0.6, 0.95 - 0.01 * steps)
            return (
                numbers,
                conf,
                False,
                (
                    "counted upwards from the sacrum (L5 = lowest mobile "
                    "vertebra; a sixth lumbar or T13 would shift the numbers)" + gap_note
                ),
            )
    if position is not None:
        est = np.array([float(np.median(position[inst == i])) for i in order])
        dist = np.linalg.norm(np.diff(lps_o, axis=0), axis=1)
        # a body cut by the field of view along S has its centre moved: no pitch with it
        cut = _cut_along_s(core, aff, order)
        dist[cut[:-1] | cut[1:]] = np.nan
        sizes_fit = _size_plausible(dist, rank)
        is_c2, with_c3 = _top_is_c2(core, aff, order, est)
        # The dens moves C2's centre up: C2 -> C3 is one step, whatever the distance (two
        # when the top instance holds C3 too).
        c2_rank = np.concatenate([[0], rank[1:] - rank[1] + 1 + int(with_c3)])
        if is_c2 and (sizes_fit is None or sizes_fit(0, c2_rank)):
            rank = c2_rank
            numbers = {
                i: _ALL[min(int(r), len(_ALL) - 1)] for r, i in zip(rank, order, strict=True)
            }
            conf = {i: max(0.6, 0.9 - 0.01 * float(r)) for r, i in zip(rank, order, strict=True)}
            return (
                numbers,
                conf,
                False,
                (
                    (
                        "C3 taken to be fused with C2 in the segmentation (a top body "
                        f"{C2_C3_RATIO:g} times as tall as those below); "
                        if with_c3
                        else ""
                    )
                    + "counted down from C2 (the topmost body, taller than the bodies below "
                    "it by its dens, with a cervical level estimate)" + gap_note
                ),
            )
        numbers, conf, unc, why = _fit_sequence(
            order, est, rank, sizes_fit, conus=None if conus_s is None else (lps_o[:, 2], conus_s)
        )
        return numbers, conf, unc, why + gap_note
    widths = _instance_widths(inst, aff, order, body)
    best_off, best_err, errs = 0, np.inf, []
    for off in range(0, len(_COLUMN) - n + 1):
        ref = np.array([TYPICAL_BODY_WIDTH_MM[_COLUMN[off + r]] for r in range(n)])
        ok = np.isfinite(widths)
        err = float(np.mean(((widths[ok] - ref[ok]) / ref[ok]) ** 2)) if ok.any() else 0.0
        errs.append(err)
        if err < best_err:
            best_off, best_err = off, err
    # Confidence: how much better the chosen offset is than its neighbours, capped at 0.5.
    e = np.asarray(errs)
    second = np.sort(e)[1] if e.size > 1 else np.inf
    margin = float((second - best_err) / (second + 1e-9)) if np.isfinite(second) else 0.0
    c = float(np.clip(0.2 + 0.3 * margin, 0.1, 0.5))
    numbers = {i: _COLUMN[best_off + r] for r, i in enumerate(order)}
    return (
        numbers,
        dict.fromkeys(order, c),
        True,
        ("no sacrum in view: levels estimated from vertebral body widths (uncertain)"),
    )


def fused_to_sacrum(
    core: npt.NDArray[np.integer],
    sacrum: npt.NDArray[np.bool_],
    ids: list[int],
    min_fraction: float = SACRUM_CONTACT_FRACTION,
) -> list[int]:
    """Instances that are sacral bodies: at least ``min_fraction`` of their voxels touch the
    sacrum (6-neighbourhood); see SACRUM_CONTACT_FRACTION."""
    near = ndimage.binary_dilation(sacrum, structure=ndimage.generate_binary_structure(3, 1))
    size = np.bincount(core.ravel(), minlength=max(ids, default=0) + 1)
    touch = np.bincount(core[near & (core > 0)].ravel(), minlength=size.size)
    return [i for i in ids if size[i] and touch[i] / size[i] >= min_fraction]


def _top_is_c2(
    core: npt.NDArray[np.integer],
    aff: npt.NDArray[np.float64],
    order: list[int],
    est: npt.NDArray[np.float64],
) -> tuple[bool, bool]:
    """Whether the topmost body looks like C2 (see C2_ANCHOR_RATIO, C2_MAX_ESTIMATE), and
    whether it holds C3 as well (C2_C3_RATIO, C2_C3_MAX_ESTIMATE)."""
    if len(order) < 4:
        return False, False
    h = _instance_heights(core, aff, order[:4])
    below = float(np.median(h[1:]))
    if not (np.isfinite(h).all() and below > 0):
        return False, False
    with_c3 = bool(h[0] >= C2_C3_RATIO * below and est[0] <= C2_C3_MAX_ESTIMATE)
    return with_c3 or bool(h[0] >= C2_ANCHOR_RATIO * below and est[0] <= C2_MAX_ESTIMATE), with_c3


def _per_instance(
    lab: npt.NDArray[np.integer],
    aff: npt.NDArray[np.float64],
    order: list[int],
    fn: Callable[[npt.NDArray[np.float64], tuple[slice, ...]], float],
) -> npt.NDArray[np.float64]:
    """``fn(LPS points, bounding slices)`` of each instance in ``order`` (NaN without voxels)."""
    objs = ndimage.find_objects(lab)
    out = []
    for i in order:
        sl = objs[i - 1] if i - 1 < len(objs) else None
        if sl is None:
            out.append(np.nan)
            continue
        out.append(fn(index_to_lps(_voxels(lab, sl, i), aff), sl))
    return np.asarray(out, dtype=np.float64)


def _instance_heights(
    core: npt.NDArray[np.integer], aff: npt.NDArray[np.float64], order: list[int]
) -> npt.NDArray[np.float64]:
    """Extent (mm) along patient S of each instance's voxels (NaN if it has none)."""
    return _per_instance(core, aff, order, lambda p, _sl: float(np.ptp(p[:, 2])))


def column_ranks(centres: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
    """Position along the column of bodies ordered head first (0, 1, 2, ... with gaps).

    Consecutive bodies normally lie one pitch apart; a centre distance of ``GAP_PITCHES``
    or more local pitches (median of up to two neighbouring distances on each side) means
    that vertebrae between them were not found as bodies of their own (missed, or fused to
    a neighbour by the segmentation), and the count skips them.
    """
    n = len(centres)
    if n < 4:
        return np.arange(n)
    d = np.linalg.norm(np.diff(centres, axis=0), axis=1)
    steps = np.ones(n - 1, np.int64)
    for k in range(n - 1):
        nb = np.r_[max(0, k - 2) : k, k + 1 : min(n - 1, k + 3)]
        pitch = float(np.median(d[nb])) if nb.size else 0.0
        if pitch > 0 and d[k] >= GAP_PITCHES * pitch:
            steps[k] = int(np.rint(d[k] / pitch))
    return np.concatenate([[0], np.cumsum(steps)])


def conus_tip_s(
    cord: npt.NDArray[np.bool_], canal: npt.NDArray[np.bool_], affine: npt.NDArray[np.float64]
) -> float | None:
    """Patient S (mm) of the conus medullaris tip: the cord's lowest point (1st percentile
    of its voxels' S), when the canal goes on ``CONUS_CANAL_BELOW_MM`` below it; else None."""
    if not cord.any():
        return None
    tip = float(np.percentile(index_to_lps(np.argwhere(cord), affine)[:, 2], 1))
    below = index_to_lps(np.argwhere(canal & ~cord), affine)[:, 2]
    return tip if below.size and float(below.min()) <= tip - CONUS_CANAL_BELOW_MM else None


def typical_pitch_mm(number: float) -> float:
    """Typical adult centre distance (mm) from vertebra ``number`` to the next (C2..L5)."""
    keys = sorted(TYPICAL_PITCH_MM)
    return float(np.interp(number, keys, [TYPICAL_PITCH_MM[k] for k in keys]))


def pitch_scale(
    dist: npt.NDArray[np.float64], first: int, rank: npt.NDArray[np.int64]
) -> float | None:
    """How many times the typical pitches this column's are, numbered ``_ALL[first + rank]``.

    ``dist``: centre distances (mm) of consecutive bodies head first (NaN: not a pitch).
    Only pairs one level apart count (median of their ratios); None when there is none.
    """
    one = (np.diff(rank) == 1) & np.isfinite(dist)
    if not one.any():
        return None
    lv = [_ALL[min(first + int(r), len(_ALL) - 1)] for r in rank[:-1]]
    typical = np.array([typical_pitch_mm(v) for v in lv])
    return float(np.exp(np.median(np.log(dist[one] / typical[one]))))


def _cut_along_s(
    core: npt.NDArray[np.integer], aff: npt.NDArray[np.float64], order: list[int]
) -> npt.NDArray[np.bool_]:
    """Whether each instance (in ``order``) touches the first or last slice of the array
    axis closest to patient S (cut by the field of view: its centre is not the body's)."""
    ax = int(np.argmax(np.abs(np.asarray(aff)[2, :3])))

    def touches(_p: npt.NDArray[np.float64], sl: tuple[slice, ...]) -> float:
        return float(sl[ax].start == 0 or sl[ax].stop == core.shape[ax])

    return _per_instance(core, aff, order, touches) != 0.0  # NaN (no voxels) counts as cut


def _size_plausible(
    dist: npt.NDArray[np.float64], rank: npt.NDArray[np.int64]
) -> Callable[[int, npt.NDArray[np.int64]], bool] | None:
    """A test of a numbering (first level index, ranks) against MAX_PITCH_SCALE, or None
    when sizes cannot tell numberings apart (no pair one level apart, or no numbering of
    the column is plausible: a scan whose voxel sizes are wrong, a toy geometry)."""

    def ok(off: int, rk: npt.NDArray[np.int64]) -> bool:
        sc = pitch_scale(dist, off, rk)
        return sc is not None and 1.0 / MAX_PITCH_SCALE <= sc <= MAX_PITCH_SCALE

    span = int(rank[-1]) + 1 if rank.size else 0
    return ok if any(ok(off, rank) for off in range(max(1, len(_ALL) - span + 1))) else None


def _fit_sequence(
    order: list[int],
    est: npt.NDArray[np.float64],
    rank: npt.NDArray[np.int64] | None = None,
    sizes_fit: Callable[[int, npt.NDArray[np.int64]], bool] | None = None,
    conus: tuple[npt.NDArray[np.float64], float] | None = None,
) -> tuple[dict[int, int], dict[int, float], bool, str]:
    """Number instances (head first) as levels one apart (``rank``: with gaps) closest to
    the estimates; with ``sizes_fit``, among the numberings whose body sizes it accepts.

    ``conus``: the bodies' patient S (head first) and the conus tip's S; inside the column
    it adds the negative log-likelihood of the tip's level under the CONUS_MEAN_LEVEL prior.
    """
    n = len(order)
    rank = np.arange(n) if rank is None else np.asarray(rank)
    span = int(rank[-1]) + 1 if n else 0
    best_off, best_err = 0, np.inf
    free_off, free_err = 0, np.inf
    centres_s, conus_at = conus if conus is not None else (np.zeros(0), 0.0)
    use_conus = conus is not None and n >= 2 and bool(centres_s[-1] < conus_at < centres_s[0])
    for off in range(0, max(1, len(_ALL) - span + 1)):
        ref = np.array([_ALL[min(off + int(r), len(_ALL) - 1)] for r in rank], dtype=float)
        err = float(np.median(np.abs(est - ref)))
        if use_conus:
            tip = float(np.interp(-conus_at, -centres_s, ref))  # np.interp needs rising x
            err += 0.5 * ((tip - CONUS_MEAN_LEVEL) / CONUS_SD_LEVELS) ** 2
        if err < free_err:
            free_off, free_err = off, err
        if err < best_err and (sizes_fit is None or sizes_fit(off, rank)):
            best_off, best_err = off, err
    notes = (
        f"; body sizes ruled out the closest numbering ({free_off - best_off:+d} levels)"
        if best_off != free_off
        else ""
    )
    if use_conus:
        notes += "; the conus medullaris in view weighed in (prior: lower third of L1)"
    numbers = {
        i: _ALL[min(best_off + int(r), len(_ALL) - 1)] for r, i in zip(rank, order, strict=True)
    }
    conf = {}
    for r, i in enumerate(order):
        resid = abs(est[r] - numbers[i])
        conf[i] = float(np.clip(0.8 - 0.6 * max(best_err, resid), 0.1, 0.8))
    return (
        numbers,
        conf,
        True,
        (
            f"no sacrum in view: levels from the model's learned level estimate made consecutive "
            f"along the column (median deviation {best_err:.2f} levels; uncertain)" + notes
        ),
    )


def _instance_widths(
    inst: npt.NDArray[np.int32],
    aff: npt.NDArray[np.float64],
    order: list[int],
    body: npt.NDArray[np.bool_] | None,
) -> npt.NDArray[np.float64]:
    """Left-right extent (mm) of each instance's body, NaN when the body is cut by the FOV."""
    src = inst if body is None else np.where(body, inst, 0)
    # Only a cut along the left-right axis hides the width (a slab cut in S does not).
    ax = int(np.argmax(np.abs(aff[0, :3])))

    def width(p: npt.NDArray[np.float64], sl: tuple[slice, ...]) -> float:
        touches = sl[ax].start == 0 or sl[ax].stop == src.shape[ax]
        return np.nan if touches else float(np.percentile(p[:, 0], 98) - np.percentile(p[:, 0], 2))

    return _per_instance(src, aff, order, width)


def number_unlabelled_vertebrae(
    mask: npt.NDArray[np.bool_],
    affine: npt.NDArray[np.float64],
    structures: npt.NDArray[np.integer] | None = None,
    sacrum: npt.NDArray[np.bool_] | None = None,
) -> tuple[npt.NDArray[np.int16], dict[str, float], bool, str]:
    """Split an unnumbered vertebra mask into levels (for imports such as ``total_mr``)."""
    body = mask.copy()
    if structures is not None:
        body &= structures != L.DISC
    inst = merge_fragments(body_instances(body, affine), affine)
    inst = grow_labels(inst, mask)
    numbers, conf, uncertain, why = number_instances(inst, affine, sacrum=sacrum)
    lut = np.zeros(int(inst.max()) + 1, np.int16)
    for i, v in numbers.items():
        lut[i] = v
    out = lut[inst]
    return out, {L.level_name(numbers[i]): conf[i] for i in numbers}, uncertain, why


def split_pedicles(
    pedicle: npt.NDArray[np.bool_],
    vertebrae: npt.NDArray[np.integer],
    body: npt.NDArray[np.bool_],
    affine: npt.NDArray[np.float64],
) -> npt.NDArray[np.int16]:
    """Left (2) / right (3) pedicle codes: side of each voxel relative to its body's centre (LPS x)."""
    out = np.zeros(pedicle.shape, np.int16)
    aff = np.asarray(affine)
    for v in np.unique(vertebrae[pedicle]):
        if v == 0:
            continue
        b = body & (vertebrae == v)
        if not b.any():
            b = vertebrae == v
        cx = float(index_to_lps(np.argwhere(b).mean(0), aff)[0])
        sel = pedicle & (vertebrae == v)
        idx = np.argwhere(sel)
        x = index_to_lps(idx, aff)[:, 0]
        out[tuple(idx.T)] = np.where(x > cx, L.PEDICLE_L, L.PEDICLE_R)
    return out
