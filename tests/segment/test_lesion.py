"""Bone-lesion refinement on axial CT slices: attaching lesions, paste-back, a tiny model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline import labels as L
from pipeline.errors import ConfigError
from pipeline.io.volume import sample_at_points
from pipeline.segment.canal import crop_frame, crop_points, paste_slice
from pipeline.segment.lesion import (
    LESION_CODES,
    LesionRefiner,
    attach_lesions,
    lesion_targets,
    reshape_bone,
)


def test_lesion_voxels_outside_the_bone_join_the_nearest_vertebra():
    aff = np.eye(4)
    vert = np.zeros((30, 10, 10), np.int16)
    parts = np.zeros_like(vert)
    vert[0:10], parts[0:10] = 15, L.BODY
    vert[12:20], parts[12:20] = 16, L.POSTERIOR
    st = np.zeros_like(vert)
    st[10:12] = L.LYTIC  # a lytic hole between the two, 1-2 mm from each
    st[27:30] = L.BLASTIC  # 7+ mm from any bone: not this column's
    v, p, s, n = attach_lesions(vert, parts, st, aff, max_mm=4.0)
    assert n == 200
    assert (v[10] == 15).all() and (v[11] == 16).all()  # nearest bone decides
    assert (p[10] == L.BODY).all() and (p[11] == L.POSTERIOR).all()
    assert (s[10:12] == L.LYTIC).all() and not s[27:30].any() and not v[27:30].any()
    # inputs untouched
    assert not vert[10:12].any() and st[27:30].all()


def test_reshape_bone_redraws_the_outline_only_where_the_crops_looked():
    aff = np.diag([1.0, 1.0, 2.0, 1.0])
    vert = np.zeros((30, 20, 6), np.int16)
    parts = np.zeros_like(vert)
    vert[5:15, 5:15], parts[5:15, 5:15] = 20, L.BODY
    seen = np.zeros(vert.shape, bool)
    seen[:, :, :3] = True  # the crops covered the first three slices only
    bone = np.zeros(vert.shape, bool)
    bone[7:17, 5:15] = True  # the finer model: shifted 2 voxels along x
    bone[27:30, 5:15] = True  # 12 mm from the vertebra: not this column's bone
    v, p, removed, added = reshape_bone(vert, parts, bone, seen, aff, max_mm=3.0)
    assert removed == 2 * 10 * 3 and added == 2 * 10 * 3
    assert (v[7:17, 5:15, :3] == 20).all() and not v[5:7, :, :3].any()
    assert (p[15:17, 5:15, :3] == L.BODY).all()  # new voxels take the nearest part
    assert not v[27:30].any()  # too far to join
    assert (v[..., 3:] == vert[..., 3:]).all()  # not seen: unchanged
    assert (vert[5:7, 5:15] == 20).all()  # inputs untouched
    # removal only where allowed (a CT's soft tissue: the real marrow stays)
    removable = np.zeros(vert.shape, bool)
    removable[5, 5:15] = True
    v, _, removed, _ = reshape_bone(vert, None, bone, seen, aff, 3.0, removable)
    assert removed == 10 * 3 and (v[6, 5:15, :3] == 20).all() and not v[5, 5:15, :3].any()


def test_oracle_lesion_crop_pasted_back_keeps_the_canal():
    """Lesion labels sampled into an offset crop and pasted back land where they came from;
    canal and disc labels are not the lesion model's to change."""
    from pipeline.segment.canal import CropSpec

    aff = np.diag([0.8, 0.8, 2.0, 1.0])
    shape = (120, 120, 3)
    vert = np.zeros(shape, np.int16)
    vert[40:80, 20:60, :] = 18  # a "body" in front of the canal (anterior = low j)
    st = np.zeros(shape, np.int16)
    st[50:60, 30:40, :] = L.LYTIC
    st[55:65, 62:72, :] = L.SAC
    coarse = np.where(st == L.LYTIC, 0, st).astype(np.int16)  # the 3-D model missed it
    coarse[40:44, 20:24, :] = L.BLASTIC  # and drew a false one
    target = lesion_targets(vert, st)
    spec = CropSpec(size_px=64, pixel_mm=1.0, posterior_offset_mm=-12.0)
    e_l, e_p = crop_frame(aff, 2)
    out = coarse.copy()
    for k in range(shape[2]):
        canal = np.array([60.0, 67.0, k]) @ aff[:3, :3].T + aff[:3, 3]
        c = spec.centre_on(canal, e_p)
        assert c[1] < canal[1]  # anterior of the canal
        y = sample_at_points(target, aff, crop_points(c, e_l, e_p, 64, 1.0), 0)
        onehot = np.stack([(y == i) for i in range(4)]).astype(np.float32)
        paste_slice(out, 2, k, aff, c, e_l, e_p, onehot, 1.0, codes=LESION_CODES,
                    replace=(0, L.LYTIC, L.BLASTIC))  # fmt: skip
    a, b = out == L.LYTIC, st == L.LYTIC
    assert 2 * (a & b).sum() / (a.sum() + b.sum()) > 0.9
    assert not (out == L.BLASTIC).any()
    assert ((out == L.SAC) == (st == L.SAC)).all()


def test_lesion_training_recipe_and_refiner(tmp_path):
    """One synthetic seed, a few steps: a lesion card that the refiner loads and runs."""
    import yaml

    from pipeline.train.canal import CanalTrainConfig, load_canal_config, make_examples, train

    cfg = CanalTrainConfig(
        task="canal_refine", target="lesion", modality="CT", out_dir=str(tmp_path / "model"),
        cache_dir=str(tmp_path / "cache"), train_seeds=[9300000, 9300001],
        val_seeds=[9390000, 9390001], crop_px=48, pixel_mm=1.5, planes=3, window=[-200, 1200],
        posterior_offset_mm=-12.0, ct_span_mm=30, channels=[4, 8], strides=[2],
        num_res_units=0, batch_size=4, steps=2, val_every=2, num_threads=1,
        positive_fraction=0.5, class_weights=[1.0, 1.0, 10.0, 10.0],
    )  # fmt: skip
    x, y = make_examples(9300000, cfg)
    assert x.shape[1:] == (48, 48) and len(x) == len(y) > 3
    assert {1, 2} <= set(np.unique(y).tolist()) or {1, 3} <= set(np.unique(y).tolist())
    out = train(cfg, log=lambda m: None)
    card = yaml.safe_load((out / "card.yaml").read_text())
    assert card["classes"] == ["background", "bone", "lytic", "blastic"]
    assert card["crop"]["posterior_offset_mm"] == -12.0
    assert set(card["metrics"]["validation"]["dice"]) == {"bone", "lytic", "blastic"}
    ref = LesionRefiner(out, torch.device("cpu"))
    shape = (60, 60, 4)
    aff = np.diag([1.0, 1.0, 2.0, 1.0])
    vert = np.zeros(shape, np.int16)
    vert[20:40, 10:30] = 18
    st = np.zeros(shape, np.int16)
    st[25:35, 35:45] = L.SAC
    st[20:24, 10:14] = L.LYTIC
    img = np.random.default_rng(0).normal(200, 30, shape).astype(np.float32)
    v, p, s, n, _ = ref.refine(img, aff, vert, st, None)
    assert n == 4 and s.dtype == np.int16 and p is None
    assert ((s == L.SAC) == (st == L.SAC)).all()  # the canal is not the lesion model's
    assert set(np.unique(s).tolist()) <= {0, L.SAC, L.LYTIC, L.BLASTIC}
    assert (v[vert > 0] == 18).all()  # bone keeps its level
    # a card's bone_reshape is checked when the refiner loads
    raw = yaml.safe_load((out / "card.yaml").read_text())
    for bad, msg in (({"max_mm": 0}, "must be > 0"), ({"radius": 3}, "needs max_mm")):
        (out / "card.yaml").write_text(yaml.safe_dump({**raw, "bone_reshape": bad}))
        with pytest.raises(ConfigError, match=msg):
            LesionRefiner(out, torch.device("cpu"))
    (out / "card.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match="classes"):
        from pipeline.segment.canal import CanalRefiner

        CanalRefiner(out, torch.device("cpu"))  # a lesion card is not a canal card
    (tmp_path / "m.yaml").write_text(yaml.safe_dump(
        {"task": "canal_refine", "target": "lesion", "modality": "MR", "out_dir": "o",
         "cache_dir": "c"}))  # fmt: skip
    with pytest.raises(ConfigError, match="CT only"):
        load_canal_config(tmp_path / "m.yaml")
    cfg.class_weights = [1.0, 2.0]
    with pytest.raises(ConfigError, match="class_weights needs 4"):
        train(cfg, log=lambda m: None)


def test_batches_draw_the_positive_share_from_lesion_crops():
    from pipeline.train.canal import CanalTrainConfig, _batch_indices

    cfg = CanalTrainConfig(task="canal_refine", out_dir="o", cache_dir="c", batch_size=20,
                           positive_fraction=0.5)  # fmt: skip
    gen = torch.Generator().manual_seed(0)
    positives = torch.tensor([7, 11])
    idx = _batch_indices(1000, positives, cfg, gen)
    assert len(idx) == 20 and set(idx[:10].tolist()) <= {7, 11}
    cfg.positive_fraction = 0.0
    assert not set(_batch_indices(1000, positives, cfg, gen).tolist()) <= {7, 11}


def test_gate_keeps_new_lesions_only_where_attenuation_or_the_3d_model_supports_them():
    from pipeline.segment.lesion import gate_new_lesions

    gate = {"lytic_delta_hu": 100.0, "soft_tissue_hu": 40.0, "lytic_fraction": 0.5,
            "fallback_reference_hu": 200.0, "blastic_within_mm": 20.0,
            "lytic_min_inside_bone": 0.7}  # fmt: skip
    aff = np.eye(4)
    shape = (80, 20, 20)
    vert = np.zeros(shape, np.int16)
    vert[0:70] = 18
    parts = np.where(vert > 0, L.BODY, 0).astype(np.int16)
    img = np.full(shape, 150.0, np.float32)  # the patient's bone: 150 HU (lytic below 95)
    coarse = np.zeros(shape, np.int16)
    coarse[2:4, 2:4, 2:4] = L.BLASTIC  # the 3-D model's only lesion
    refined = coarse.copy()
    refined[10:14, 5:10, 5:10] = L.LYTIC  # 1. low attenuation inside bone: kept
    img[10:14, 5:10, 5:10] = 40.0
    refined[20:24, 5:10, 5:10] = L.LYTIC  # 2. at the bone's own attenuation: dropped
    refined[66:74, 5:10, 5:10] = L.LYTIC  # 3. half outside the bone (soft tissue): dropped
    img[66:74, 5:10, 5:10] = 40.0
    refined[6:9, 8:11, 8:11] = L.BLASTIC  # 4. blastic within 12 mm of the 3-D lesion: kept
    refined[50:53, 14:17, 14:17] = L.BLASTIC  # 5. blastic far from it: dropped
    out, dropped = gate_new_lesions(refined, coarse, img, vert, parts, aff, gate)
    assert (out[10:14, 5:10, 5:10] == L.LYTIC).all()
    assert not out[20:24, 5:10, 5:10].any() and not out[66:74, 5:10, 5:10].any()
    assert (out[6:9, 8:11, 8:11] == L.BLASTIC).all() and not out[50:53].any()
    assert (out[2:4, 2:4, 2:4] == L.BLASTIC).all()  # the 3-D model's own lesion stays
    assert dropped == 100 + 200 + 27
    # a low-attenuation region reaching the last slice along the slice axis is cut by the
    # field of view: dropped when the slice axis is given, kept otherwise
    edge = coarse.copy()
    edge[30:34, 5:10, 15:20] = L.LYTIC
    img2 = img.copy()
    img2[30:34, 5:10, 15:20] = 40.0
    kept, _ = gate_new_lesions(edge, coarse, img2, vert, parts, aff, gate)
    cut, n_cut = gate_new_lesions(edge, coarse, img2, vert, parts, aff, gate, slice_axis_index=2)
    assert (kept[30:34, 5:10, 15:20] == L.LYTIC).all()
    assert not cut[30:34, 5:10, 15:20].any() and n_cut == 100
