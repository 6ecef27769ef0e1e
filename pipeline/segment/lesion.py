"""Bone-lesion refinement on axial CT slices: lytic and blastic lesions at 1 mm.

The built-in 3-D model works at 2 mm and misses many lytic lesions (a lytic focus of
trabecular bone at 30-60 HU looks like disc or soft tissue at that scale). This stage
re-segments the vertebra of each axial CT slice with a small 2-D network (its own card,
``inference.lesion_refine`` in the main card), the same way :mod:`pipeline.segment.canal`
refines the canal:

1. each slice's crop is centred a little in front of the coarse canal centre (the card's
   ``crop.posterior_offset_mm``), so that it holds the vertebral body, the pedicles and
   the laminae; its axes are patient left and posterior projected onto the slice;
2. the crop is the mean of a few planes (:class:`~pipeline.segment.canal.CropSpec`) in a
   bone window;
3. the network labels each pixel background, bone, lytic or blastic; on the source voxels
   of the footprint, osseous-lesion labels are replaced by its arg-max, and lesion voxels
   the coarse vertebra map left out (a lytic hole in the bone mask) are given the
   vertebra and part of the nearest bone voxel within ``ATTACH_MM``.

Lesion *quality* (lytic / blastic / mixed) stays a measurement on the CT's attenuation
(:func:`pipeline.features.vertebra.lesion_quality_ct`); the network decides where lesions
are.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from scipy import ndimage

from pipeline import labels as L
from pipeline.io.volume import index_to_lps
from pipeline.segment.canal import (
    CanalCard,
    canal_centres,
    crop_frame,
    paste_slice,
    slice_axis,
)

#: Output classes of the lesion network, in channel order.
LESION_CLASSES: tuple[str, ...] = ("background", "bone", "lytic", "blastic")
#: Structure code of each class when pasted (bone and background carry no structure).
LESION_CODES = np.array([0, 0, L.LYTIC, L.BLASTIC], dtype=np.int16)
#: Lesion voxels outside the coarse vertebra map join the nearest vertebra within this
#: distance (mm): a lytic lesion that replaced the cortex leaves a hole a few voxels deep.
ATTACH_MM = 4.0
FArr = npt.NDArray[np.float64]


def lesion_targets(
    vertebrae: npt.NDArray[np.integer], structures: npt.NDArray[np.integer]
) -> npt.NDArray[np.uint8]:
    """Training labels: 1 bone, 2 lytic, 3 blastic, 0 elsewhere (the sacrum is bone)."""
    out = (np.asarray(vertebrae) > 0).astype(np.uint8)
    st = np.asarray(structures)
    out[st == L.LYTIC] = 2
    out[st == L.BLASTIC] = 3
    return out


def attach_lesions(
    vertebrae: npt.NDArray[np.integer],
    parts: npt.NDArray[np.integer] | None,
    structures: npt.NDArray[np.integer],
    affine: FArr,
    max_mm: float = ATTACH_MM,
) -> tuple[npt.NDArray[np.int16], npt.NDArray[np.int16] | None, npt.NDArray[np.int16], int]:
    """Give lesion voxels outside the vertebra map the nearest vertebra (and part).

    Lesion voxels farther than ``max_mm`` from any labelled bone are dropped from
    ``structures`` (not this column's). Returns vertebrae, parts, structures and the
    number of voxels attached.
    """
    vert = np.asarray(vertebrae).astype(np.int16, copy=True)
    st = np.asarray(structures).astype(np.int16, copy=True)
    pr = None if parts is None else np.asarray(parts).astype(np.int16, copy=True)
    loose = np.isin(st, (L.LYTIC, L.BLASTIC)) & (vert == 0)
    if not loose.any():
        return vert, pr, st, 0
    if not vert.any():
        st[loose] = 0
        return vert, pr, st, 0
    idx = np.argwhere(loose | (vert > 0))
    box = tuple(slice(a, b + 1) for a, b in zip(idx.min(0), idx.max(0), strict=True))
    spacing = np.linalg.norm(np.asarray(affine)[:3, :3], axis=0)
    dist, near = ndimage.distance_transform_edt(
        vert[box] == 0, sampling=spacing, return_indices=True
    )
    sub_loose = loose[box]
    ok = sub_loose & (dist <= max_mm)
    src = tuple(ix[ok] for ix in near)
    vb = vert[box]
    vb[ok] = vb[src]
    if pr is not None:
        pb = pr[box]
        pb[ok] = pb[src]
    sb = st[box]
    sb[sub_loose & ~ok] = 0
    return vert, pr, st, int(ok.sum())


class LesionRefiner:
    """Loads a bone-lesion model once and refines the lesion labels of axial CT slices."""

    _cache: dict[tuple[str, str], LesionRefiner] = {}

    def __init__(self, model: str | Path, device: torch.device) -> None:
        from pipeline.segment.model import load_network

        self.card = CanalCard.load(model, classes=LESION_CLASSES)
        self.device = device
        self.net = load_network(self.card, device)  # type: ignore[arg-type]

    @classmethod
    def cached(cls, model: str | Path, device: torch.device) -> LesionRefiner:
        """One instance per (model, device) per process."""
        key = (str(model), str(device))
        if key not in cls._cache:
            cls._cache[key] = cls(model, device)
        return cls._cache[key]

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
        """Lesion labels re-segmented slice by slice.

        Returns vertebrae, parts, structures, the slices refined and the lesion voxels
        attached to a vertebra (see :func:`attach_lesions`).
        """
        axis = slice_axis(affine)
        e_l, e_p = crop_frame(affine, axis)
        spec = self.card.crop
        st = np.asarray(structures).astype(np.int16, copy=True)
        centres = canal_centres(st, axis)
        if not centres:
            return np.asarray(vertebrae).astype(np.int16), parts, st, 0, 0
        img = np.asarray(image, dtype=np.float32)
        ks = sorted(centres)
        cen = {k: spec.centre_on(index_to_lps(centres[k], affine), e_p) for k in ks}
        crops = np.stack([spec.sample(img, affine, cen[k], e_l, e_p) for k in ks])
        prob = self._predict(crops)
        for k, pk in zip(ks, prob, strict=True):
            paste_slice(st, axis, k, affine, cen[k], e_l, e_p, pk, spec.pixel_mm,
                        codes=LESION_CODES, replace=(0, L.LYTIC, L.BLASTIC))  # fmt: skip
        vert, pr, st, n_att = attach_lesions(vertebrae, parts, st, affine)
        return vert, pr, st, len(ks), n_att

    def _predict(self, crops: npt.NDArray[np.float32], batch: int = 32) -> npt.NDArray[np.float32]:
        outs = []
        with torch.inference_mode():
            for i in range(0, len(crops), batch):
                x = torch.from_numpy(crops[i : i + batch, None]).to(self.device)
                outs.append(torch.softmax(self.net(x).float(), dim=1).cpu().numpy())
        return np.concatenate(outs)
