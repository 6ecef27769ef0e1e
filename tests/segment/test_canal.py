"""Canal refinement on axial slices: crop geometry, paste-back and a tiny trained model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline import labels as L
from pipeline.errors import ConfigError
from pipeline.io.volume import sample_at_points
from pipeline.segment.canal import (
    CANAL_CODES,
    CanalCard,
    CanalRefiner,
    canal_centres,
    crop_frame,
    crop_points,
    paste_slice,
    slice_axis,
)


def _rot(axis: np.ndarray, deg: float) -> np.ndarray:
    a = np.asarray(axis, float) / np.linalg.norm(axis)
    t = np.radians(deg)
    k = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + np.sin(t) * k + (1 - np.cos(t)) * k @ k


def _axial_affine(rows_to_right: bool = False, tilt: float = 0.0, axis: int = 2) -> np.ndarray:
    """Axial stack: 0.7 mm pixels, 4 mm slices along ``axis``, tilted about L."""
    cols = [np.array([1.0, 0, 0]), np.array([0, 1.0, 0]), np.array([0, 0, 1.0])]
    if rows_to_right:
        cols[0] = -cols[0]
    sp = [0.7, 0.7, 4.0]
    order = [0, 1, 2]
    order.remove(2)
    order.insert(axis, 2)
    m = np.stack([cols[i] * sp[i] for i in order], axis=1)
    aff = np.eye(4)
    aff[:3, :3] = _rot([1, 0, 0], tilt) @ m
    aff[:3, 3] = [-60.0, -80.0, -20.0]
    return aff


def _canal_world(pts: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """Canal labels at LPS points: sac disc r 7 mm, cord ellipse, tumour left-anterior."""
    d = pts - centre
    x, y = d[..., 0], d[..., 1]
    lab = np.zeros(pts.shape[:-1], np.int16)
    lab[x**2 + y**2 <= 49] = L.SAC
    lab[(x / 4.5) ** 2 + (y / 3.5) ** 2 <= 1] = L.CORD
    lab[((x - 6) ** 2 + (y + 7) ** 2 <= 16) & (lab == 0)] = L.EPIDURAL
    return lab


@pytest.mark.parametrize("flip", [False, True])
@pytest.mark.parametrize("tilt", [0.0, 20.0])
def test_crop_frame_points_left_and_posterior_whatever_the_row_order(flip, tilt):
    aff = _axial_affine(rows_to_right=flip, tilt=tilt)
    assert slice_axis(aff) == 2
    e_l, e_p = crop_frame(aff, 2)
    n = aff[:3, 2] / np.linalg.norm(aff[:3, 2])
    assert abs(e_l @ n) < 1e-9 and abs(e_p @ n) < 1e-9 and abs(e_l @ e_p) < 1e-9
    assert e_l[0] > 0.9 and e_p[1] > 0.9 * np.cos(np.radians(tilt))


def test_slice_axis_is_the_thickest_axis():
    assert slice_axis(_axial_affine(axis=0)) == 0
    assert slice_axis(_axial_affine(axis=1)) == 1


@pytest.mark.parametrize("axis", [0, 2])
def test_canal_centres_per_slice(axis):
    aff = _axial_affine(axis=axis)
    shape = [120, 120, 120]
    shape[axis] = 6
    idx = np.indices(shape).reshape(3, -1).T
    pts = (idx @ aff[:3, :3].T + aff[:3, 3]).reshape(*shape, 3)
    centre = np.array([-20.0, -40.0, 0.0])
    st = _canal_world(pts, centre)
    got = canal_centres(st, axis)
    assert sorted(got) == list(range(6))
    for k, ijk in got.items():
        lps = aff[:3, :3] @ ijk + aff[:3, 3]
        assert np.hypot(*(lps - centre)[:2]) < 0.8  # sac + cord centroid (tumour excluded)
        assert ijk[axis] == k


@pytest.mark.parametrize("flip,tilt", [(False, 0.0), (True, 15.0)])
def test_oracle_crop_pasted_back_reproduces_the_canal(flip, tilt):
    """Labels sampled into the crop and pasted back land where they came from."""
    aff = _axial_affine(rows_to_right=flip, tilt=tilt)
    shape = (140, 140, 5)
    idx = np.indices(shape).reshape(3, -1).T
    pts = (idx @ aff[:3, :3].T + aff[:3, 3]).reshape(*shape, 3)
    centre = pts[70, 70, 2]
    truth = _canal_world(pts, centre)
    truth[60:64, 90:95, :] = L.LYTIC  # a bone-lesion label the refiner must keep
    # coarse: the canal 3 mm off and without the tumour
    coarse = _canal_world(pts, centre + np.array([3.0, 0.0, 0.0]))
    coarse[60:64, 90:95, :] = L.LYTIC
    e_l, e_p = crop_frame(aff, 2)
    out = coarse.copy()
    for k in range(shape[2]):
        c = pts[70, 70, k]
        crop_truth = sample_at_points(truth, aff, crop_points(c, e_l, e_p, 96, 0.5), 0)
        canal = np.where(np.isin(crop_truth, CANAL_CODES[1:]), crop_truth, 0)
        onehot = np.stack([(np.searchsorted(CANAL_CODES, canal) == i) for i in range(4)])
        paste_slice(out, 2, k, aff, c, e_l, e_p, onehot.astype(np.float32), 0.5)
    for code in (L.SAC, L.CORD, L.EPIDURAL):
        a, b = out == code, truth == code
        assert 2 * (a & b).sum() / (a.sum() + b.sum()) > 0.95, code
    assert (out[60:64, 90:95, :] == L.LYTIC).all()


def _tiny_canal_model(folder: Path) -> Path:
    import yaml
    from safetensors.torch import save_file

    from pipeline.segment.model import build_network

    arch = {"type": "monai.networks.nets.UNet", "spatial_dims": 2, "in_channels": 1,
            "out_channels": 4, "channels": [4, 8], "strides": [2], "num_res_units": 0}  # fmt: skip
    torch.manual_seed(0)
    net = build_network(arch)
    folder.mkdir(parents=True)
    save_file(net.state_dict(), str(folder / "model.safetensors"))
    card = {"name": "tiny-canal", "architecture": arch,
            "classes": ["background", "sac", "cord", "epidural"],
            "crop": {"size_px": 32, "pixel_mm": 0.5}}  # fmt: skip
    (folder / "card.yaml").write_text(yaml.safe_dump(card))
    return folder


def test_refiner_runs_and_only_touches_canal_labels(tmp_path):
    folder = _tiny_canal_model(tmp_path / "tiny-canal")
    ref = CanalRefiner(folder, torch.device("cpu"))
    aff = _axial_affine(tilt=10.0)
    shape = (80, 80, 4)
    idx = np.indices(shape).reshape(3, -1).T
    pts = (idx @ aff[:3, :3].T + aff[:3, 3]).reshape(*shape, 3)
    st = _canal_world(pts, pts[40, 40, 1])
    st[10:14, 10:14, :] = L.BLASTIC
    img = np.random.default_rng(0).normal(100, 10, shape).astype(np.float32)
    out, n = ref.refine(img, aff, st)
    assert n == 4 and out.shape == st.shape and out.dtype == np.int16
    assert (out[10:14, 10:14, :] == L.BLASTIC).all()
    assert set(np.unique(out).tolist()) <= {0, L.SAC, L.CORD, L.EPIDURAL, L.BLASTIC}
    # nothing to refine without a canal
    empty, n0 = ref.refine(img, aff, np.zeros(shape, np.int16))
    assert n0 == 0 and not empty.any()


def test_canal_card_must_name_the_canal_classes(tmp_path):
    folder = _tiny_canal_model(tmp_path / "bad")
    text = (folder / "card.yaml").read_text().replace("epidural", "tumour")
    (folder / "card.yaml").write_text(text)
    with pytest.raises(ConfigError, match="classes"):
        CanalCard.load(folder)
    with pytest.raises(ConfigError, match="no canal model card"):
        CanalCard.load(tmp_path / "missing")


def test_canal_training_recipe_writes_a_loadable_model(tmp_path):
    """Two synthetic seeds, a few steps: examples cached, card + pinned weights written."""
    import yaml

    from pipeline.train.canal import CanalTrainConfig, load_canal_config, make_examples, train

    cfg = CanalTrainConfig(
        task="canal_refine", out_dir=str(tmp_path / "model"), cache_dir=str(tmp_path / "cache"),
        train_seeds=[9100000, 9100002], val_seeds=[9190000, 9190001], crop_px=48,
        channels=[4, 8], strides=[2], num_res_units=0, batch_size=4, steps=3, val_every=3,
        num_threads=1,
    )  # fmt: skip
    x, y = make_examples(9100000, cfg)
    assert x.shape[1:] == (48, 48) and x.dtype == np.float32 and len(x) == len(y) > 5
    assert set(np.unique(y).tolist()) >= {0, 1, 2}  # sac and cord on every crop set
    cfg.time_budget_s = 0.0  # "interrupted" after its first step: checkpoint at step 1
    train(cfg, log=lambda m: None)
    cfg.time_budget_s = None
    logs: list[str] = []
    out = train(cfg, log=logs.append)
    assert any("resumed" in m and "step 1" in m for m in logs)
    card = yaml.safe_load((out / "card.yaml").read_text())
    assert card["crop"]["size_px"] == 48 and card["sha256"]
    assert set(card["metrics"]["validation"]["dice"]) == {"sac", "cord", "epidural"}
    assert card["training"]["steps"] == 3
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 3
    ref = CanalRefiner(out, torch.device("cpu"))
    assert ref.card.crop_px == 48
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"task": "canal_refine", "out_dir": "o",
                                                     "cache_dir": "c", "stepz": 1}))  # fmt: skip
    with pytest.raises(ConfigError, match="canal training config"):
        load_canal_config(tmp_path / "c.yaml")


def test_slice_axis_of_a_near_isotropic_ct_is_the_head_feet_axis():
    # 0.8 mm pixels, 1 mm slices along array axis 0: not "clearly thickest" by spacing
    aff = np.eye(4)
    aff[:3, :3] = np.stack([[0, 0, 1.0], [0.8, 0, 0], [0, 0.8, 0]], axis=1)
    assert slice_axis(aff) == 0
    from pipeline.segment.canal import axial_tilt_deg

    assert axial_tilt_deg(aff) == pytest.approx(0.0)
    assert axial_tilt_deg(_axial_affine(tilt=30.0)) == pytest.approx(30.0)
    sag = np.diag([4.0, 0.7, 0.7, 1.0])  # sagittal slab: slices along L
    assert axial_tilt_deg(sag) == pytest.approx(90.0)


def test_crop_spec_window_planes_and_stack_edges():
    from pipeline.segment.canal import CropSpec

    spec = CropSpec.from_card({"size_px": 16, "pixel_mm": 0.5, "planes": 5, "plane_step_mm": 1.0,
                               "window": [-100, 150]})  # fmt: skip
    assert CropSpec.from_card(spec.as_card()) == spec
    assert "HU window -100 to 150" in spec.as_card()["normalisation"]
    for bad in ({"window": [150, -100]}, {"planes": 0}):
        with pytest.raises(ValueError, match="window|planes"):
            CropSpec.from_card({"size_px": 16, "pixel_mm": 0.5, **bad})
    # CT-like noise on 1 mm slices: the 5-plane mean is about sqrt(5) less noisy
    rng = np.random.default_rng(0)
    aff = np.diag([0.8, 0.8, 1.0, 1.0])
    img = (25.0 + rng.normal(0, 20, (60, 60, 30))).astype(np.float32)
    centre, e_l, e_p = np.array([24.0, 24.0, 15.0]), np.array([1.0, 0, 0]), np.array([0, 1.0, 0])
    one = CropSpec(16, 0.5, 1, 1.0, (-100.0, 150.0)).sample(img, aff, centre, e_l, e_p)
    five = spec.sample(img, aff, centre, e_l, e_p)
    assert one.dtype == np.float32 and one.shape == (16, 16)
    assert abs(five.mean() - (25 + 100) / 250) < 0.02
    assert five.std() < 0.6 * one.std()
    # on the first slice the planes beyond the stack are left out, not read as 0 HU (0.4)
    img0 = np.full((60, 60, 30), 80.0, np.float32)
    edge = spec.sample(img0, aff, np.array([24.0, 24.0, 0.0]), e_l, e_p)
    assert np.allclose(edge, (80 + 100) / 250, atol=1e-4)
    # MR: no window, the crop's own percentiles
    mr = CropSpec(16, 0.5).sample(img, aff, centre, e_l, e_p)
    assert (
        mr.min() >= -0.5
        and mr.max() <= 1.5
        and np.percentile(mr, 50) == pytest.approx(0.5, abs=0.1)
    )


def test_canal_training_config_ct(tmp_path):
    """A CT recipe renders crops of the 3 mm slab in the soft-tissue window."""
    from pipeline.train.canal import load_canal_config, make_examples

    cfg = load_canal_config(Path(__file__).resolve().parents[2] / "configs" / "train_canal_ct.yaml",
                            crop_px=48, ct_span_mm=20)  # fmt: skip
    assert cfg.modality == "CT" and cfg.crop.planes == 5 and cfg.crop.window == (-100.0, 150.0)
    assert cfg.config_path is not None and cfg.config_path.endswith("train_canal_ct.yaml")
    x, y = make_examples(9200000, cfg)
    assert x.shape[1:] == (48, 48) and len(x) == len(y) > 3
    assert 0.0 <= x.min() and x.max() <= 1.0
    assert set(np.unique(y).tolist()) >= {0, 1}
    (tmp_path / "c.yaml").write_text(
        "task: canal_refine\nout_dir: o\ncache_dir: c\nmodality: PET\n"
    )
    with pytest.raises(ConfigError, match="modality must be MR or CT"):
        load_canal_config(tmp_path / "c.yaml")


def test_tumour_gate_keeps_epidural_tumour_near_the_coarse_tumour_or_lesion(tmp_path, monkeypatch):
    """With a gate, the 2-D model may redraw epidural tumour only near the 3-D model's
    epidural tumour or osseous lesion; without one (the MR model), anywhere."""
    import yaml

    folder = _tiny_canal_model(tmp_path / "gated")
    card = yaml.safe_load((folder / "card.yaml").read_text())
    card["gate"] = {"coarse_tumour_within_mm": 5.0}
    (folder / "card.yaml").write_text(yaml.safe_dump(card))
    ref = CanalRefiner(folder, torch.device("cpu"))
    assert ref.tumour_gate_mm == 5.0

    def all_tumour(crops, batch=32):  # a network that calls every pixel epidural tumour
        p = np.zeros((len(crops), 4, *crops.shape[1:]), np.float32)
        p[:, 3] = 0.7
        p[:, 1] = 0.3
        return p

    monkeypatch.setattr(ref, "_predict", all_tumour)
    aff = _axial_affine()
    shape = (80, 80, 4)
    idx = np.indices(shape).reshape(3, -1).T
    pts = (idx @ aff[:3, :3].T + aff[:3, 3]).reshape(*shape, 3)
    st = _canal_world(pts, pts[40, 40, 1])
    st[st == L.EPIDURAL] = L.SAC  # the coarse model found no tumour
    img = np.zeros(shape, np.float32)
    out, n = ref.refine(img, aff, st)
    assert n == 4 and not (out == L.EPIDURAL).any()
    # a coarse lytic lesion at one spot: tumour allowed within 5 mm of it only
    st2 = st.copy()
    st2[30, 40, :] = L.LYTIC  # 7 mm from the canal centre
    out2, _ = ref.refine(img, aff, st2)
    tum = np.argwhere(out2 == L.EPIDURAL)
    assert len(tum) > 0
    d = np.linalg.norm((tum[:, :2] - [30, 40]) * 0.7, axis=1)
    assert d.max() <= 5.0 + 0.7
    # no gate: the network's tumour stands
    ref.tumour_gate_mm = None
    out3, _ = ref.refine(img, aff, st)
    assert (out3 == L.EPIDURAL).sum() > (out2 == L.EPIDURAL).sum()
    card["gate"] = {"coarse_tumour_within_mm": -1}
    (folder / "card.yaml").write_text(yaml.safe_dump(card))
    with pytest.raises(ConfigError, match="coarse_tumour_within_mm"):
        CanalCard.load(folder)
