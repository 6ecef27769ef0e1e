"""Bone-lesion refinement on sagittal MR slices: lytic, blastic and epidural tumour at 0.9 mm.

On an MR-only study the vertebrae are read on the sagittal series, segmented by the 3-D
model at 2 mm: across 3-4 mm sagittal slices that model misses most of a lesion (lytic
Dice 0.2-0.3 on held-out synthetic sagittal MR, against 0.9 on CT after
:mod:`pipeline.segment.lesion`), so the body's involved fraction, posterolateral
involvement and the "no collapse, > 50 % involved" category of SINS are under-read. This
stage re-segments each vertebra slice by slice with a small 2-D network (its own card,
``inference.lesion_refine`` in the main card, ``plane: sagittal``):

1. the slices are the series' own (the thick axis, left-right for a sagittal stack); the
   crop's axes are patient superior and posterior projected onto the slice plane
   (:func:`sagittal_frame`), so every crop looks the same way whatever the row / column
   order of the series;
2. for each vertebra of the coarse map and each slice through it, a square crop is centred
   on the vertebra's centroid projected onto that slice (plus the card's
   ``posterior_offset_mm``), scaled by its own percentiles (MR has no units);
3. the crops of neighbouring vertebrae overlap; their class probabilities are averaged on
   the source voxels (:func:`~pipeline.segment.canal.crop_footprint`) and the arg-max
   replaces the lesion and epidural-tumour labels there (sac, cord and discs are kept);
   lesion voxels outside the coarse bone join the nearest vertebra
   (:func:`~pipeline.segment.lesion.attach_lesions`).

Lesion *quality* on MR stays "not assessable" (the features' rule): the network decides
where lesions are, not what they are made of. The training data (:mod:`pipeline.train.canal`
with ``plane: sagittal``) are cut by :func:`vertebra_crop_centres` from the true label
map, the same geometry the refiner uses on the coarse one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from scipy import ndimage

from pipeline import labels as L
from pipeline.errors import ConfigError
from pipeline.io.volume import index_to_lps
from pipeline.segment.canal import (
    crop_footprint,
    normal_angle_deg,
    paste_labels,
    slice_axis,
)
from pipeline.segment.lesion import LesionRefiner, attach_lesions

#: Output classes of the sagittal lesion network, in channel order.
SAGITTAL_CLASSES: tuple[str, ...] = ("background", "bone", "lytic", "blastic", "epidural")
#: Structure code of each class when pasted (bone and background carry no structure).
SAGITTAL_CODES = np.array([0, 0, L.LYTIC, L.BLASTIC, L.EPIDURAL], dtype=np.int16)
#: Labels the refinement may change: lesions, epidural tumour and unlabelled voxels.
SAGITTAL_REPLACE: tuple[int, ...] = (0, L.LYTIC, L.BLASTIC, L.EPIDURAL)
#: VerSe label of the sacrum: it gets no crops of its own (L5's crops reach S1).
SACRUM_LABEL = 26
FArr = npt.NDArray[np.float64]


def sagittal_frame(affine: FArr, axis: int) -> tuple[FArr, FArr]:
    """In-plane unit vectors of a sagittal slice closest to patient S and P.

    Parameters
    ----------
    affine : ndarray (4, 4)
        Voxel index -> LPS (mm).
    axis : int
        The slice axis (:func:`~pipeline.segment.canal.slice_axis`).

    Returns
    -------
    e_s, e_p : ndarray (3,)
        Orthonormal, in the slice plane: ``e_p`` the projection of patient posterior,
        ``e_s`` completes it and points superior. Crop axis 0 runs along ``e_s``.
    """
    n = np.asarray(affine, dtype=np.float64)[:3, axis]
    n = n / np.linalg.norm(n)
    e_p = np.array([0.0, 1.0, 0.0]) - n[1] * n
    if np.linalg.norm(e_p) < 0.3:
        raise ValueError("the slices are not sagittal: patient posterior is nearly their normal")
    e_p /= np.linalg.norm(e_p)
    e_s = np.cross(n, e_p)
    e_s /= np.linalg.norm(e_s)
    return (e_s if e_s[2] >= 0 else -e_s), e_p


#: A series is sagittal when its slice normal lies within this angle of patient
#: left-right (a sagittal stack angled to a scoliotic column stays one; a coronal one,
#: 90 deg, is not).
MAX_SAGITTAL_TILT_DEG = 40.0


def is_sagittal(affine: FArr, max_tilt_deg: float = MAX_SAGITTAL_TILT_DEG) -> bool:
    """Whether the slice normal (:func:`slice_axis`) lies within ``max_tilt_deg`` of patient
    left-right (a sagittal stack)."""
    return normal_angle_deg(affine, 0) <= max_tilt_deg


def vertebra_crop_centres(
    vertebrae: npt.NDArray[np.integer],
    affine: FArr,
    axis: int,
    parts: npt.NDArray[np.integer] | None = None,
    margin: int = 1,
) -> list[tuple[int, int, FArr]]:
    """(vertebra, slice index, centre LPS) of every crop of a sagittal series.

    Each vertebra (any VerSe number but the sacrum's) is cropped on every slice it touches
    and ``margin`` slices either side; the centre is the centroid of its body (``parts``,
    when it has one there; else of the whole vertebra, which a long thoracic spinous
    process pulls down and back) projected onto that slice's plane.
    """
    vert = np.asarray(vertebrae)
    aff = np.asarray(affine, dtype=np.float64)
    n = aff[:3, axis] / np.linalg.norm(aff[:3, axis])
    out: list[tuple[int, int, FArr]] = []
    ids = [int(v) for v in np.unique(vert) if v > 0 and v != SACRUM_LABEL]
    objs = ndimage.find_objects(np.where(vert == SACRUM_LABEL, 0, vert))
    for v in ids:
        box = objs[v - 1]
        if box is None:
            continue
        mine = vert[box] == v
        if parts is not None and (mine & (np.asarray(parts)[box] == L.BODY)).sum() >= 10:
            mine &= np.asarray(parts)[box] == L.BODY
        c = index_to_lps(np.argwhere(mine).mean(0) + [b.start for b in box], aff)
        lo = max(0, box[axis].start - margin)
        hi = min(vert.shape[axis] - 1, box[axis].stop - 1 + margin)
        for k in range(lo, hi + 1):
            p = np.zeros(3)
            p[axis] = k
            plane = index_to_lps(p, aff)
            out.append((v, k, c + float((plane - c) @ n) * n))
    return out


class SagittalLesionRefiner(LesionRefiner):
    """Loads a sagittal MR lesion model once and refines a sagittal series' lesions.

    The card's ``class_weights`` are divided out as for CT; there is no attenuation gate
    (MR has no units), so nothing is dropped.
    """

    classes = SAGITTAL_CLASSES

    def __init__(self, model: str | Path, device: torch.device) -> None:
        super().__init__(model, device)
        if self.bone_reshape is not None and "remove_below_hu" in self.bone_reshape:
            raise ConfigError(
                "MODEL_CARD_INVALID",
                f"{self.card.folder}: bone_reshape.remove_below_hu is in HU; MR has no units",
            )

    def refine(
        self,
        image: npt.NDArray[Any],
        affine: FArr,
        vertebrae: npt.NDArray[np.integer],
        structures: npt.NDArray[np.integer],
        parts: npt.NDArray[np.integer] | None = None,
    ) -> tuple[
        npt.NDArray[np.int16], npt.NDArray[np.int16] | None, npt.NDArray[np.int16], int, int
    ]:
        """Lesion and epidural-tumour labels re-segmented vertebra by vertebra.

        Returns vertebrae, parts, structures, the crops refined and the lesion voxels
        attached to a vertebra (see :func:`~pipeline.segment.lesion.attach_lesions`).
        """
        aff = np.asarray(affine, dtype=np.float64)
        st = np.asarray(structures).astype(np.int16, copy=True)
        axis = slice_axis(aff)
        e_s, e_p = sagittal_frame(aff, axis)
        spec = self.card.crop
        where = vertebra_crop_centres(vertebrae, aff, axis, parts)
        if not where:
            pr = None if parts is None else np.asarray(parts).astype(np.int16)
            return np.asarray(vertebrae).astype(np.int16), pr, st, 0, 0
        img = np.asarray(image, dtype=np.float32)
        centres = [spec.centre_on(c, e_p) for _, _, c in where]
        crops = np.stack([spec.sample(img, aff, c, e_s, e_p) for c in centres])
        prob = self._class_probabilities(crops)
        # overlapping crops (a vertebra's and its neighbours') are averaged per voxel
        total = np.zeros((len(SAGITTAL_CLASSES), *st.shape), np.float32)
        count = np.zeros(st.shape, np.uint8)
        for (_, k, _), c, pk in zip(where, centres, prob, strict=True):
            got = crop_footprint(st.shape, axis, k, aff, c, e_s, e_p, pk, spec.pixel_mm)
            if got is None:
                continue
            sub, pv = got
            i, j, m = sub[:, 0], sub[:, 1], sub[:, 2]
            total[:, i, j, m] += pv.astype(np.float32)
            count[i, j, m] += 1
        sub = np.argwhere(count > 0)
        pv = total[:, sub[:, 0], sub[:, 1], sub[:, 2]]
        before = st.copy()
        paste_labels(st, sub, pv, SAGITTAL_CODES, SAGITTAL_REPLACE)
        # epidural tumour lies outside the bone: inside it the coarse label stays
        in_bone = (st == L.EPIDURAL) & (before != L.EPIDURAL) & (np.asarray(vertebrae) > 0)
        st[in_bone] = before[in_bone]
        bone = np.zeros(st.shape, bool)
        bone[sub[:, 0], sub[:, 1], sub[:, 2]] = np.isin(np.argmax(pv, axis=0), (1, 2, 3))
        v_new, p_new = self._reshape(vertebrae, parts, bone, count > 0, aff, None)
        vert, pr, st, n_att = attach_lesions(v_new, p_new, st, aff)
        return vert, pr, st, len(where), n_att
