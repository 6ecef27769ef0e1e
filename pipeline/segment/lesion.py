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

The network learnt the attenuation of synthetic bone (trabecular about 230 HU); real
trabecular bone is often 100-200 HU, and on the real ts-example CT it drew the marrow of
normal bodies as "lytic" and their cortex as "blastic". Lesions it adds where the 3-D
model found none are therefore gated (:func:`gate_new_lesions`, the card's ``gate``):
a new lytic region is kept only when its median attenuation is lytic by the features'
own rule against the patient's bone (``configs/features.yaml`` ``lesion_quality``), and
new blastic voxels only near (``blastic_within_mm``) a lesion of the 3-D model, which
finds sclerotic lesions well (blastic Dice 0.88) but not lytic ones.
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
from pipeline.features.vertebra import lytic_threshold_hu
from pipeline.segment.canal import (
    SliceRefiner,
    crop_footprint,
    paste_labels,
)
from pipeline.segment.levels import bounding_box, fill_from_nearest

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


def gate_new_lesions(
    refined: npt.NDArray[np.integer],
    coarse: npt.NDArray[np.integer],
    image: npt.NDArray[Any],
    vertebrae: npt.NDArray[np.integer],
    parts: npt.NDArray[np.integer] | None,
    affine: FArr,
    gate: dict[str, Any],
    slice_axis_index: int | None = None,
) -> tuple[npt.NDArray[np.int16], int]:
    """Drop lesion regions the refinement added that fail the card's gate (in place copy).

    A connected region of new lytic voxels (not lesion in ``coarse``) is kept when its
    median HU is below ``max(ref - lytic_delta_hu, soft_tissue_hu + lytic_fraction *
    (ref - soft_tissue_hu))``, ``ref`` the median HU of the vertebral bodies (``parts``
    body, else all bone) outside any lesion, and at least ``lytic_min_inside_bone`` of it
    lies in the 3-D model's bone (soft tissue next to a vertebra has a lytic attenuation
    too), and (with ``slice_axis_index``) it does not reach the first or last slice of the
    series (cut by the field of view, and read there from a slab with planes missing);
    new blastic voxels are kept within
    ``blastic_within_mm`` of a lesion of ``coarse``. Returns the map and the voxels dropped.
    Works in the box of the bone and the lesions (a CT is mostly neither).
    """
    out = np.asarray(refined).astype(np.int16, copy=True)
    n_slices = out.shape[slice_axis_index] if slice_axis_index is not None else 0
    box = bounding_box(
        (np.asarray(vertebrae) > 0)
        | np.isin(out, (L.LYTIC, L.BLASTIC))
        | np.isin(np.asarray(coarse), (L.LYTIC, L.BLASTIC))
    )
    if box is None:
        return out, 0
    full = out
    out = full[box]  # a view: the gate below writes through to ``full``
    cur = np.asarray(coarse)[box]
    img = np.asarray(image)[box]
    vertebrae = np.asarray(vertebrae)[box]
    parts = None if parts is None else np.asarray(parts)[box]
    les_c = np.isin(cur, (L.LYTIC, L.BLASTIC))
    new = np.isin(out, (L.LYTIC, L.BLASTIC)) & ~les_c
    if not new.any():
        return full, 0
    bone = (np.asarray(vertebrae) > 0) & ~les_c & ~np.isin(out, (L.LYTIC, L.BLASTIC))
    if parts is not None and (bone & (np.asarray(parts) == L.BODY)).sum() >= 200:
        bone &= np.asarray(parts) == L.BODY
    ref = float(np.median(img[bone])) if bone.sum() >= 200 else float(gate["fallback_reference_hu"])
    lytic_thr = lytic_threshold_hu(ref, gate)  # the features' own rule (lesion quality)
    dropped = 0
    lyt = new & (out == L.LYTIC)
    lab, n = ndimage.label(lyt, structure=ndimage.generate_binary_structure(3, 3))
    if n:
        ids = np.arange(1, n + 1)
        med = np.asarray(ndimage.median(img, lab, ids), dtype=np.float64)
        inside = np.asarray(ndimage.mean(np.asarray(vertebrae) > 0, lab, ids), dtype=np.float64)
        ok = (med < lytic_thr) & (inside >= float(gate["lytic_min_inside_bone"]))
        if slice_axis_index is not None:  # cut by the first or last slice: not seen whole
            ends = np.zeros(n + 1, bool)
            for k in (0, lab.shape[slice_axis_index] - 1):
                if box[slice_axis_index].start + k in (0, n_slices - 1):
                    ends[np.unique(np.take(lab, k, axis=slice_axis_index))] = True
            ok &= ~ends[1:]
        bad = np.concatenate([[False], ~ok])
        drop = bad[lab]
        dropped += int(drop.sum())
        out[drop] = 0
    bla = new & (out == L.BLASTIC)
    if bla.any():
        near = np.zeros_like(bla)
        if les_c.any():
            spacing = np.linalg.norm(np.asarray(affine)[:3, :3], axis=0)
            near = ndimage.distance_transform_edt(~les_c, sampling=spacing) <= float(
                gate["blastic_within_mm"]
            )
        drop = bla & ~near
        dropped += int(drop.sum())
        out[drop] = 0
    return full, dropped


def reshape_bone(
    vertebrae: npt.NDArray[np.integer],
    parts: npt.NDArray[np.integer] | None,
    bone: npt.NDArray[np.bool_],
    seen: npt.NDArray[np.bool_],
    affine: FArr,
    max_mm: float,
    removable: npt.NDArray[np.bool_] | None = None,
) -> tuple[npt.NDArray[np.int16], npt.NDArray[np.int16] | None, int, int]:
    """Redraw the vertebra outline where the finer 2-D model looked (``seen``).

    There, a voxel of the coarse vertebra map that ``bone`` (the 2-D model's bone or
    lesion classes) leaves out becomes background (only where ``removable``, when given),
    and a ``bone`` voxel outside the map takes the vertebra (and part) of the nearest
    labelled voxel within ``max_mm``; farther ones stay background (not this column's bone).
    Elsewhere the map is unchanged.

    Returns
    -------
    vertebrae, parts : ndarray
        The redrawn maps (copies).
    removed, added : int
        Voxels taken out of and added to the vertebra map.
    """
    vert = np.asarray(vertebrae).astype(np.int16, copy=True)
    pr = None if parts is None else np.asarray(parts).astype(np.int16, copy=True)
    drop = seen & ~bone & (vert > 0)
    if removable is not None:
        drop &= removable
    vert[drop] = 0
    if pr is not None:
        pr[drop] = 0
    add = seen & bone & (vert == 0)
    done = fill_from_nearest(vert, add, affine, max_mm, () if pr is None else (pr,))
    return vert, pr, int(drop.sum()), int(done.sum())


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
    done = fill_from_nearest(vert, loose, affine, max_mm, () if pr is None else (pr,))
    st[loose & ~done] = 0
    return vert, pr, st, int(done.sum())


def _bone_reshape(raw: dict[str, Any], folder: Path) -> dict[str, float] | None:
    """The card's ``bone_reshape`` (``max_mm``, optional ``remove_below_hu``), checked."""
    spec = raw.get("bone_reshape")
    if spec is None:
        return None
    if not isinstance(spec, dict) or not {"max_mm"} <= set(spec) <= {"max_mm", "remove_below_hu"}:
        raise ConfigError(
            "MODEL_CARD_INVALID",
            f"{folder}: bone_reshape needs max_mm (and optionally remove_below_hu), got {spec!r}",
        )
    out = {k: float(v) for k, v in spec.items()}
    if out["max_mm"] <= 0:
        raise ConfigError("MODEL_CARD_INVALID", f"{folder}: bone_reshape.max_mm must be > 0")
    return out


class LesionRefiner(SliceRefiner):
    """Loads a bone-lesion model once and refines the lesion labels of axial CT slices."""

    classes = LESION_CLASSES

    def __init__(self, model: str | Path, device: torch.device) -> None:
        super().__init__(model, device)
        # A model trained with class-weighted cross-entropy over-calls the up-weighted
        # classes by about their weight; dividing the probabilities by the weights undoes
        # that shift (validation Dice of spinemet-lesion-ct: lytic 0.77 -> 0.83).
        self.gate: dict[str, Any] | None = self.card.raw.get("gate")
        self.dropped = 0
        if self.gate is not None:
            need = {"lytic_delta_hu", "soft_tissue_hu", "lytic_fraction", "blastic_within_mm",
                    "fallback_reference_hu", "lytic_min_inside_bone"}  # fmt: skip
            if not need <= set(self.gate):
                raise ConfigError(
                    "MODEL_CARD_INVALID", f"{self.card.folder}: gate needs {sorted(need)}"
                )
        self.bone_reshape = _bone_reshape(self.card.raw, self.card.folder)
        self.reshaped = (0, 0)
        w = self.card.raw.get("class_weights")
        self.class_weights = None if w is None else np.asarray(w, dtype=np.float32)
        if self.class_weights is not None and (
            len(self.class_weights) != len(self.classes) or (self.class_weights <= 0).any()
        ):
            raise ConfigError(
                "MODEL_CARD_INVALID",
                f"{self.card.folder}: class_weights must be {len(self.classes)} positive numbers",
            )

    def _class_probabilities(self, crops: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """The network's class probabilities of crops, divided by the card's
        ``class_weights`` (see ``__init__``) when it has them."""
        prob = self._predict(crops)
        if self.class_weights is not None:
            prob = prob / self.class_weights[None, :, None, None]
        return prob

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
        st = np.asarray(structures).astype(np.int16, copy=True)
        sc = self.slice_crops(image, affine, st)
        if not sc.slices:
            pr = None if parts is None else np.asarray(parts).astype(np.int16)
            return np.asarray(vertebrae).astype(np.int16), pr, st, 0, 0
        img = np.asarray(image, dtype=np.float32)
        prob = self._class_probabilities(sc.crops)
        bone = np.zeros(st.shape, bool)
        seen = np.zeros(st.shape, bool)
        for k, pk in zip(sc.slices, prob, strict=True):
            got = crop_footprint(st.shape, sc.axis, k, affine, sc.centres[k], sc.e_l, sc.e_p,
                                 pk, self.card.pixel_mm)  # fmt: skip
            if got is None:
                continue
            sub, pv = got
            paste_labels(st, sub, pv, LESION_CODES, (0, L.LYTIC, L.BLASTIC))
            seen[sub[:, 0], sub[:, 1], sub[:, 2]] = True
            bone[sub[:, 0], sub[:, 1], sub[:, 2]] = np.argmax(pv, axis=0) != 0
        self.dropped = 0
        if self.gate is not None:
            st, self.dropped = gate_new_lesions(
                st, structures, img, vertebrae, parts, affine, self.gate, sc.axis
            )
        v_new, p_new = self._reshape(vertebrae, parts, bone, seen, affine, img)
        vert, pr, st, n_att = attach_lesions(v_new, p_new, st, affine)
        return vert, pr, st, len(sc.slices), n_att

    def _reshape(
        self,
        vertebrae: npt.NDArray[np.integer],
        parts: npt.NDArray[np.integer] | None,
        bone: npt.NDArray[np.bool_],
        seen: npt.NDArray[np.bool_],
        affine: FArr,
        image: npt.NDArray[Any] | None,
    ) -> tuple[npt.NDArray[np.integer], npt.NDArray[np.integer] | None]:
        """:func:`reshape_bone` as the card's ``bone_reshape`` says (unchanged without it);
        ``self.reshaped`` records the voxels removed and added."""
        self.reshaped = (0, 0)
        if self.bone_reshape is None:
            return vertebrae, parts
        below = self.bone_reshape.get("remove_below_hu")
        removable = None if below is None or image is None else np.asarray(image) < below
        vert, pr, removed, added = reshape_bone(
            vertebrae, parts, bone, seen, affine, self.bone_reshape["max_mm"], removable
        )
        self.reshaped = (removed, added)
        return vert, pr
