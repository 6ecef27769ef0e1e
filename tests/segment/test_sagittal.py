"""Bone-lesion refinement on sagittal MR slices: frame, crop centres, paste-back, recipe."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline import labels as L
from pipeline.errors import ConfigError
from pipeline.io.volume import index_to_lps, sample_at_points
from pipeline.segment.canal import crop_points, slice_axis
from pipeline.segment.sagittal import (
    SAGITTAL_CLASSES,
    SagittalLesionRefiner,
    is_sagittal,
    sagittal_frame,
    vertebra_crop_centres,
)


def _sagittal_affine(order: str, flip: bool, tilt_deg: float = 0.0) -> np.ndarray:
    """A sagittal stack (0.9 mm pixels, 4 mm slices) with its axes in ``order``."""
    t = np.radians(tilt_deg)
    ax = {
        "L": np.array([np.cos(t), np.sin(t), 0.0]) * 4.0,  # slice normal, tilted about S
        "P": np.array([-np.sin(t), np.cos(t), 0.0]) * 0.9,
        "S": np.array([0.0, 0.0, -0.9 if flip else 0.9]),
    }
    aff = np.eye(4)
    aff[:3, :3] = np.stack([ax[c] for c in order], axis=1)
    aff[:3, 3] = [-20.0, -60.0, -100.0]
    return aff


@pytest.mark.parametrize("order", ["PSL", "SPL", "LPS"])
@pytest.mark.parametrize("flip", [False, True])
def test_sagittal_frame_points_superior_and_posterior_whatever_the_axis_order(order, flip):
    aff = _sagittal_affine(order, flip, tilt_deg=15.0)
    axis = slice_axis(aff)
    assert axis == order.index("L") and is_sagittal(aff)
    e_s, e_p = sagittal_frame(aff, axis)
    n = aff[:3, axis] / np.linalg.norm(aff[:3, axis])
    assert abs(e_s @ n) < 1e-9 and abs(e_p @ n) < 1e-9 and abs(e_s @ e_p) < 1e-9
    assert e_s[2] > 0.99 and e_p[1] > 0.95  # S and (the projection of) P
    # an axial stack is not sagittal; a coronal one has no posterior direction in-plane
    assert not is_sagittal(np.diag([0.8, 0.8, 3.0, 1.0]))
    with pytest.raises(ValueError, match="not sagittal"):
        sagittal_frame(np.diag([0.8, 4.0, 0.8, 1.0]), 1)


def _two_vertebrae(shape=(40, 60, 12)):
    """T11 and T12 on a sagittal grid (axis 0 P, 1 S, 2 L): bodies in front, arches behind."""
    vert = np.zeros(shape, np.int16)
    parts = np.zeros(shape, np.int16)
    for v, (s0, s1) in ((18, (5, 25)), (19, (32, 52))):
        vert[5:20, s0:s1, 3:9], parts[5:20, s0:s1, 3:9] = v, L.BODY  # body, 6 slices wide
        vert[22:36, s0 + 10 : s1, 5:7] = v  # arch, behind and below the body's centre
        parts[22:36, s0 + 10 : s1, 5:7] = L.POSTERIOR
    return vert, parts


def test_crops_sit_on_each_slice_through_a_vertebra_at_its_body_centre():
    aff = _sagittal_affine("PSL", False)
    vert, parts = _two_vertebrae()
    where = vertebra_crop_centres(vert, aff, 2, parts, margin=1)
    per = {v: sorted(k for w, k, _ in where if w == v) for v in (18, 19)}
    assert per[18] == per[19] == list(range(2, 10))  # slices 3-8 and one either side
    body = index_to_lps(np.argwhere((vert == 18) & (parts == L.BODY)).mean(0), aff)
    for v, k, c in where:
        plane = index_to_lps(np.array([0.0, 0.0, k]), aff)
        n = aff[:3, 2] / np.linalg.norm(aff[:3, 2])
        assert abs((c - plane) @ n) < 1e-6  # on the slice's plane
        if v == 18:  # the body's centroid, projected: the arch does not pull it
            assert np.allclose((c - body) - ((c - body) @ n) * n, 0, atol=1e-6)
    whole = vertebra_crop_centres(vert, aff, 2, None)
    c_whole = next(c for v, _, c in whole if v == 18)
    assert c_whole[1] > body[1] + 1.5  # without parts: pulled back by the arch
    assert vertebra_crop_centres(np.full(vert.shape, 26, np.int16), aff, 2) == []  # sacrum


class _Oracle(SagittalLesionRefiner):
    """The refiner with a "network" that returns the true labels of each crop."""

    def __init__(self, truth: np.ndarray, affine: np.ndarray) -> None:
        from pipeline.segment.canal import CropSpec

        self.truth, self.aff = truth, affine
        self.class_weights = None
        self.dropped = 0
        self.bone_reshape: dict[str, float] | None = None
        self.card = type("Card", (), {"crop": CropSpec(size_px=48, pixel_mm=0.9,
                                                       posterior_offset_mm=8.0)})()  # fmt: skip

    def _predict(self, crops, batch=32):  # noqa: ARG002
        return self._next

    def feed(self, target: np.ndarray, vert: np.ndarray, parts: np.ndarray) -> list:
        """Set the next "predictions": ``target`` classes sampled into the crops that
        ``refine`` will cut for ``vert``; returns those crops' (vertebra, slice, centre)."""
        axis = slice_axis(self.aff)
        e_s, e_p = sagittal_frame(self.aff, axis)
        where = vertebra_crop_centres(vert, self.aff, axis, parts)
        probs = []
        for _, _, c in where:
            pts = crop_points(self.card.crop.centre_on(c, e_p), e_s, e_p, 48, 0.9)
            lab = sample_at_points(target, self.aff, pts, 0).astype(int)
            probs.append(np.moveaxis(np.eye(len(SAGITTAL_CLASSES))[lab], -1, 0))
        self._next = np.stack(probs).astype(np.float32)
        return where


def test_oracle_crops_pasted_back_redraw_lesions_and_keep_the_canal():
    """Truth sampled into every crop and pasted back by ``refine`` lands where it came from:
    lesions the coarse map missed appear, false ones go, the sac stays, and epidural tumour
    is never written into bone."""
    aff = _sagittal_affine("PSL", True)
    vert, parts = _two_vertebrae()
    truth = np.zeros(vert.shape, np.int16)
    truth[8:14, 10:18, 4:8] = L.LYTIC  # in T11's body
    truth[24:30, 43:47, 5:7] = L.BLASTIC  # in T12's arch
    truth[20:22, 38:44, 4:8] = L.EPIDURAL  # behind T12's body
    coarse = np.zeros_like(truth)
    coarse[20:22, 10:20, 4:8] = L.SAC
    coarse[6:8, 40:44, 4:8] = L.LYTIC  # a false lesion
    target = np.where(vert > 0, 1, 0)
    for code, cls in ((L.LYTIC, 2), (L.BLASTIC, 3), (L.EPIDURAL, 4)):
        target[truth == code] = cls
    ref = _Oracle(truth, aff)
    where = ref.feed(target, vert, parts)
    v, p, s, n, _ = ref.refine(np.zeros(vert.shape, np.float32), aff, vert, coarse, parts)
    assert n == len(where)
    for code in (L.LYTIC, L.BLASTIC, L.EPIDURAL):
        a, b = s == code, truth == code
        assert 2 * (a & b).sum() / (a.sum() + b.sum()) > 0.9, code
    assert not (s[6:8, 40:44, 4:8] == L.LYTIC).any()  # the false lesion is gone
    assert ((s == L.SAC) == (coarse == L.SAC)).all()
    assert not ((s == L.EPIDURAL) & (vert > 0)).any()
    assert (v == vert).all() and (p == parts).all()
    # with the card's bone_reshape, bone the coarse map missed comes back from the crops
    ref.bone_reshape = {"max_mm": 3.0}
    thin = vert.copy()
    thin[5:8] = 0  # the front of both bodies missed
    ref.feed(target, thin, parts)
    v, p, *_ = ref.refine(np.zeros(vert.shape, np.float32), aff, thin, coarse, parts)
    assert (thin != vert).sum() > 300 and (v != vert).sum() < 0.1 * (thin != vert).sum()
    assert ref.reshaped == (0, int((v != thin).sum())) and (p[vert > 0] == parts[vert > 0]).all()


def test_sagittal_training_recipe_writes_a_loadable_model(tmp_path):
    import yaml

    from pipeline.train.canal import CanalTrainConfig, load_canal_config, make_examples, train

    cfg = CanalTrainConfig(
        task="canal_refine", target="lesion", modality="MR", plane="sagittal",
        out_dir=str(tmp_path / "model"), cache_dir=str(tmp_path / "cache"),
        train_seeds=[9400000, 9400001], val_seeds=[9490000, 9490001], crop_px=48,
        pixel_mm=1.8, posterior_offset_mm=12.0, max_crops_per_seed=20, channels=[4, 8],
        strides=[2], num_res_units=0, batch_size=4, steps=2, val_every=2, num_threads=1,
        positive_fraction=0.5, class_weights=[1.0, 1.0, 10.0, 10.0, 10.0],
    )  # fmt: skip
    x, y = make_examples(9400000, cfg)
    n_pos = int((y >= 2).any(axis=(1, 2)).sum())
    # every crop with a lesion or epidural tumour is kept, the rest fill up to the cap
    assert x.shape[1:] == (48, 48) and len(x) == len(y) == max(20, n_pos) and n_pos > 0
    assert 1 in y
    out = train(cfg, log=lambda m: None)
    card = yaml.safe_load((out / "card.yaml").read_text())
    assert card["classes"] == list(SAGITTAL_CLASSES) and card["input"]["plane"] == "sagittal"
    ref = SagittalLesionRefiner(out, torch.device("cpu"))
    aff = _sagittal_affine("PSL", False)
    vert, parts = _two_vertebrae()
    st = np.zeros(vert.shape, np.int16)
    st[20:22, 10:20, 4:8] = L.SAC
    img = np.random.default_rng(0).normal(100, 20, vert.shape).astype(np.float32)
    v, p, s, n, _ = ref.refine(img, aff, vert, st, parts)
    assert n == 16 and s.dtype == np.int16
    assert ((s == L.SAC) == (st == L.SAC)).all()
    assert set(np.unique(s).tolist()) <= {0, L.SAC, L.EPIDURAL, L.LYTIC, L.BLASTIC}
    (out / "card.yaml").write_text(
        yaml.safe_dump({**card, "bone_reshape": {"max_mm": 3.0, "remove_below_hu": 60}})
    )
    with pytest.raises(ConfigError, match="MR has no units"):
        SagittalLesionRefiner(out, torch.device("cpu"))
    for bad in ({"target": "canal"}, {"modality": "CT"}, {"plane": "coronal"}):
        (tmp_path / "m.yaml").write_text(yaml.safe_dump(
            {"task": "canal_refine", "target": "lesion", "modality": "MR", "plane": "sagittal",
             "out_dir": "o", "cache_dir": "c", **bad}))  # fmt: skip
        with pytest.raises(ConfigError, match="plane"):
            load_canal_config(tmp_path / "m.yaml")
