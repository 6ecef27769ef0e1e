"""Training the canal refinement model (:mod:`pipeline.segment.canal`) on synthetic axial stacks.

Each seed draws a synthetic spine with an epidural tumour of a random Bilsky grade (grade 0
a fifth of the time) and renders the axial stack Bilsky is read on: for ``modality: MR``
the axial T2 (:func:`pipeline.synth.acquisition.mr_axial`: 3-4 mm slices, 0.6-0.8 mm
pixels, random row / column order and obliquity), for ``modality: CT`` a CT stack of the
levels around the tumour (:func:`pipeline.synth.acquisition.ct_axial`: 0.7-0.9 mm pixels,
1-2 mm slices, 100-140 kVp noise). It then cuts, on every slice through the canal, the crop
the refiner will see: centred on the true canal centre plus a random offset (the coarse
model's centre is not exact), rotated a few degrees, sampled by the card's
:class:`~pipeline.segment.canal.CropSpec`. Labels are the generator's sac, cord and
epidural tumour in the crop's central plane.

With ``target: lesion`` (``configs/train_lesion_ct.yaml``) the same recipe trains the
bone-lesion model of :mod:`pipeline.segment.lesion`: CT stacks around the index lesion,
crops centred in front of the canal (``posterior_offset_mm``), labels background / bone /
lytic / blastic.

``spinemet train --config configs/train_canal.yaml`` (MR) or ``configs/train_canal_ct.yaml``
(CT) runs :func:`train`: it renders the
examples (cached as ``.npz`` per seed, so a rerun or a resume skips them), trains a 2-D
MONAI UNet with Dice + cross-entropy, validates on separate seeds and writes
``model.safetensors`` and ``card.yaml`` with the measured Dice. A ``checkpoint.pt`` written
at each validation lets an interrupted run resume where it stopped.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from pipeline import labels as L
from pipeline.errors import ConfigError
from pipeline.io.volume import index_to_lps, sample_at_points
from pipeline.paths import load_yaml
from pipeline.segment.canal import (
    CANAL_CLASSES,
    CropSpec,
    canal_centres,
    crop_frame,
    crop_points,
    slice_axis,
)
from pipeline.segment.lesion import LESION_CLASSES, lesion_targets
from pipeline.segment.sagittal import SAGITTAL_CLASSES, sagittal_frame, vertebra_crop_centres

#: Classes the model of each training target predicts.
TARGET_CLASSES: dict[str, tuple[str, ...]] = {"canal": CANAL_CLASSES, "lesion": LESION_CLASSES}

#: Grade mix of the training spines: grade 0 (no epidural tumour) one time in five.
_GRADES = ("0", "1a", "1b", "1c", "2", "3")
_GRADE_P = (0.2, 0.16, 0.16, 0.16, 0.16, 0.16)
#: CT slice thicknesses drawn (mm): those :func:`pipeline.synth.acquisition.ct_axial` uses.
_CT_SLICE_MM = (1.0, 1.25, 1.5, 2.0, 2.5, 3.0)


@dataclass
class CanalTrainConfig:
    """``configs/train_canal.yaml``; see the file for what each option means."""

    task: str
    out_dir: str
    cache_dir: str
    name: str = "spinemet-canal-t2ax"
    seed: int = 0
    modality: str = "MR"
    target: str = "canal"
    train_seeds: list[int] = field(default_factory=lambda: [0, 200])
    val_seeds: list[int] = field(default_factory=lambda: [900100, 900120])
    crop_px: int = 96
    pixel_mm: float = 0.5
    planes: int = 1
    plane_step_mm: float = 1.0
    window: list[float] | None = None
    posterior_offset_mm: float = 0.0
    #: slices the model reads: "axial" (canal and CT lesion models) or "sagittal" (the MR
    #: lesion model of :mod:`pipeline.segment.sagittal`: T1, T2 or STIR sagittal stacks)
    plane: str = "axial"
    #: sagittal: at most this many crops per seed (all with a lesion or epidural tumour,
    #: the rest drawn at random from the crops without)
    max_crops_per_seed: int = 80
    #: share of each batch drawn from crops that hold a class >= 2 (a lesion: rare pixels
    #: that plain uniform batches teach the network to ignore); 0: uniform batches
    positive_fraction: float = 0.0
    #: per-class weights of a plain cross-entropy loss, used instead of Dice + CE (rare
    #: classes: with Dice + CE the lesion model learnt no lesion at all in 1,000 steps,
    #: with cross-entropy weighted 1, 1, 10, 10 it drew them within 300); None: Dice + CE
    class_weights: list[float] | None = None
    ct_span_mm: float = 80.0
    centre_jitter_mm: float = 2.5
    rotate_deg: float = 10.0
    channels: list[int] = field(default_factory=lambda: [16, 32, 64, 128])
    strides: list[int] = field(default_factory=lambda: [2, 2, 2])
    num_res_units: int = 2
    batch_size: int = 32
    learning_rate: float = 2e-3
    steps: int = 3000
    val_every: int = 500
    num_threads: int = 2
    time_budget_s: float | None = None
    #: the YAML this configuration was read from (recorded in the card)
    config_path: str | None = None

    @property
    def crop(self) -> CropSpec:
        """The crop the model is trained on (and its card declares)."""
        return CropSpec.from_card(
            {"size_px": self.crop_px, "pixel_mm": self.pixel_mm, "planes": self.planes,
             "plane_step_mm": self.plane_step_mm, "window": self.window,
             "posterior_offset_mm": self.posterior_offset_mm}
        )  # fmt: skip

    @property
    def classes(self) -> tuple[str, ...]:
        """The model's output classes."""
        return SAGITTAL_CLASSES if self.plane == "sagittal" else TARGET_CLASSES[self.target]


def load_canal_config(path: str | Path, **overrides: Any) -> CanalTrainConfig:
    """Read a canal training YAML and apply overrides (``None`` values ignored)."""
    raw = load_yaml(path) or {}
    raw.update({k: v for k, v in overrides.items() if v is not None})
    try:
        cfg = CanalTrainConfig(**{"config_path": str(path), **raw})
        if cfg.modality not in ("MR", "CT"):
            raise ValueError(f"modality must be MR or CT, not {cfg.modality!r}")
        if cfg.target not in TARGET_CLASSES:
            raise ValueError(f"target must be one of {sorted(TARGET_CLASSES)}, not {cfg.target!r}")
        if cfg.plane not in ("axial", "sagittal"):
            raise ValueError(f"plane must be axial or sagittal, not {cfg.plane!r}")
        if cfg.plane == "sagittal" and (cfg.target, cfg.modality) != ("lesion", "MR"):
            raise ValueError("the sagittal plane is trained for target lesion on MR only")
        if cfg.plane == "axial" and cfg.target == "lesion" and cfg.modality != "CT":
            raise ValueError("the axial lesion target is trained on CT only")
        cfg.crop  # noqa: B018 - validates the crop options
    except (TypeError, ValueError) as exc:
        raise ConfigError("TRAIN_CONFIG_INVALID", f"canal training config: {exc}") from exc
    return cfg


def make_examples(
    seed: int, cfg: CanalTrainConfig
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.uint8]]:
    """Crops (m, n, n) and their labels (0-3, the target's classes) from one synthetic
    axial stack."""
    from pipeline.synth.acquisition import acquire, ct_axial, mr_axial
    from pipeline.synth.generator import StudyOptions, random_world

    rng = np.random.default_rng(seed)
    grade = str(rng.choice(_GRADES, p=_GRADE_P))
    world, plan = random_world(rng, StudyOptions(grade=grade))
    if cfg.plane == "sagittal":
        return _sagittal_examples(world, rng, cfg)
    level = plan.epidural_level or plan.index_level
    if cfg.target == "lesion":
        level = plan.index_level
    orientation = str(rng.choice(["standard", "flipped", "oblique"]))
    if cfg.modality == "CT":
        # the slice thicknesses of a spine CT, up to the 3 mm a long run is reconstructed at
        slice_mm = float(rng.choice(_CT_SLICE_MM))
        series = ct_axial(world, rng, orientation=orientation, centre_level=level, slice_mm=slice_mm,
                          n_slices=int(np.ceil(cfg.ct_span_mm / slice_mm)))  # fmt: skip
    else:
        series = mr_axial(world, rng, level, orientation=orientation)
    img, labels = acquire(world, series, rng)
    st = np.asarray(labels["structures"])
    canal = np.where(np.isin(st, (L.SAC, L.CORD, L.EPIDURAL)), st, 0).astype(np.uint8)
    target = canal if cfg.target == "canal" else lesion_targets(labels["vertebrae"], st)
    aff = np.asarray(series.affine, dtype=np.float64)
    axis = slice_axis(aff)
    e_l0, e_p0 = crop_frame(aff, axis)
    # the crop's central plane: labels of the slab centre (image planes average around it)
    xs, ys = [], []
    # the true canal centre of every slice through sac or cord (as the refiner finds it)
    for c in canal_centres(canal, axis, tumour_fallback=False).values():
        x, y = _jittered_crop(rng, cfg, img, target, aff, index_to_lps(c, aff), e_l0, e_p0)
        xs.append(x)
        ys.append(y)
    if not xs:
        n = cfg.crop_px
        return np.zeros((0, n, n), np.float32), np.zeros((0, n, n), np.uint8)
    return np.stack(xs), np.stack(ys)


def _jittered_crop(
    rng: np.random.Generator,
    cfg: CanalTrainConfig,
    img: npt.NDArray[Any],
    target: npt.NDArray[Any],
    aff: npt.NDArray[np.float64],
    centre: npt.NDArray[np.float64],
    e_a0: npt.NDArray[np.float64],
    e_b0: npt.NDArray[np.float64],
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.uint8]]:
    """One training crop and its labels: the refiner's crop at ``centre`` with in-plane
    axes ``e_a0``, ``e_b0``, moved by ``centre_jitter_mm`` and turned by up to
    ``rotate_deg`` (the coarse model's centres are not exact), then moved by the crop's
    ``posterior_offset_mm``. Labels are read at the crop's central plane."""
    spec = cfg.crop
    j = rng.normal(0.0, cfg.centre_jitter_mm, 2)
    centre = centre + j[0] * e_a0 + j[1] * e_b0
    t = math.radians(float(rng.uniform(-cfg.rotate_deg, cfg.rotate_deg)))
    e_a = math.cos(t) * e_a0 + math.sin(t) * e_b0
    e_b = np.cross(np.cross(e_a0, e_b0), e_a)
    centre = spec.centre_on(centre, e_b)
    pts = crop_points(centre, e_a, e_b, spec.size_px, spec.pixel_mm)
    y = sample_at_points(target, aff, pts, 0).astype(np.uint8)
    return spec.sample(img, aff, centre, e_a, e_b), y


def _sagittal_examples(
    world: Any, rng: np.random.Generator, cfg: CanalTrainConfig
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.uint8]]:
    """Crops and labels (background, bone, lytic, blastic, epidural) of one sagittal MR
    stack (T1, T2 or STIR), cut as :class:`~pipeline.segment.sagittal.SagittalLesionRefiner`
    cuts them, from the true vertebrae, jittered and rotated in the plane."""
    from pipeline.synth.acquisition import acquire, mr_sagittal

    contrast = str(rng.choice(["T1", "T2", "STIR"]))
    orientation = str(rng.choice(["standard", "flipped", "oblique"]))
    series = mr_sagittal(world, rng, contrast, orientation=orientation)
    img, labels = acquire(world, series, rng)
    st = np.asarray(labels["structures"])
    target = lesion_targets(labels["vertebrae"], st)
    target[st == L.EPIDURAL] = SAGITTAL_CLASSES.index("epidural")
    aff = np.asarray(series.affine, dtype=np.float64)
    axis = slice_axis(aff)
    e_s0, e_p0 = sagittal_frame(aff, axis)
    where = vertebra_crop_centres(labels["vertebrae"], aff, axis, labels["parts"])
    xs, ys = [], []
    for _, _, c in where:
        x, y = _jittered_crop(rng, cfg, img, target, aff, c, e_s0, e_p0)
        xs.append(x)
        ys.append(y)
    n = cfg.crop_px
    if not xs:
        return np.zeros((0, n, n), np.float32), np.zeros((0, n, n), np.uint8)
    x, y = np.stack(xs), np.stack(ys)
    pos = np.flatnonzero((y >= 2).any(axis=(1, 2)))
    neg = np.flatnonzero(~(y >= 2).any(axis=(1, 2)))
    room = max(0, cfg.max_crops_per_seed - len(pos))
    keep = np.sort(np.concatenate([pos, rng.permutation(neg)[:room]]))
    return x[keep], y[keep]


def _load_split(
    cfg: CanalTrainConfig, seeds: list[int], log: Callable[[str], None]
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.uint8]]:
    cache = Path(cfg.cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    xs, ys = [], []
    t0 = time.perf_counter()
    for i, s in enumerate(range(seeds[0], seeds[1])):
        f = (
            cache / f"{cfg.target}_{cfg.modality}{'_sag' if cfg.plane == 'sagittal' else ''}_{s}_"
            f"{cfg.crop_px}_{cfg.pixel_mm:g}_{cfg.planes}.npz"
        )
        if not f.exists():
            x, y = make_examples(s, cfg)
            np.savez_compressed(f, x=x, y=y)
        z = np.load(f)
        xs.append(z["x"])
        ys.append(z["y"])
        if (i + 1) % 20 == 0:
            log(f"examples: {i + 1}/{seeds[1] - seeds[0]} seeds ({time.perf_counter() - t0:.0f} s)")
    return np.concatenate(xs), np.concatenate(ys)


def dice_per_class(
    pred: npt.NDArray[Any], truth: npt.NDArray[Any], classes: tuple[str, ...] = CANAL_CLASSES
) -> dict[str, float | None]:
    """Dice of classes 1.. over all pixels given (None where neither has the class)."""
    out: dict[str, float | None] = {}
    for c in range(1, len(classes)):
        a, b = pred == c, truth == c
        den = int(a.sum() + b.sum())
        out[classes[c]] = None if den == 0 else round(2.0 * float((a & b).sum()) / den, 4)
    return out


def _augment(x: Any, y: Any, gen: Any) -> tuple[Any, Any]:
    """Left-right flip (no sided classes), gamma, contrast / offset and noise."""
    import torch

    flip = torch.rand(x.shape[0], generator=gen) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(2), x)
    y = torch.where(flip[:, None, None], y.flip(1), y)
    g = torch.exp(torch.randn(x.shape[0], 1, 1, 1, generator=gen) * 0.25)
    x = x.clamp(min=0) ** g
    x = x * (1 + 0.15 * torch.randn(x.shape[0], 1, 1, 1, generator=gen))
    x = x + 0.05 * torch.randn(x.shape[0], 1, 1, 1, generator=gen)
    x = x + 0.03 * torch.rand(x.shape[0], 1, 1, 1, generator=gen) * torch.randn(
        x.shape, generator=gen
    )
    return x, y


def train(cfg: CanalTrainConfig, log: Callable[[str], None] = print) -> Path:
    """Render examples, train, validate and write the model folder; returns its path."""
    import torch

    from pipeline.segment.model import build_network, file_sha256

    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.num_threads)
    x_tr, y_tr = _load_split(cfg, cfg.train_seeds, log)
    x_va, y_va = _load_split(cfg, cfg.val_seeds, log)
    log(f"train crops {len(x_tr)}, validation crops {len(x_va)}")
    arch = {
        "type": "monai.networks.nets.UNet",
        "spatial_dims": 2,
        "in_channels": 1,
        "out_channels": len(cfg.classes),
        "channels": list(cfg.channels),
        "strides": list(cfg.strides),
        "num_res_units": cfg.num_res_units,
    }
    net = build_network(arch)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.learning_rate, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg.learning_rate, total_steps=cfg.steps)
    loss_fn = _loss(cfg)
    gen = torch.Generator().manual_seed(cfg.seed)
    xt, yt = torch.from_numpy(x_tr[:, None]), torch.from_numpy(y_tr.astype(np.int64))
    history: list[dict[str, Any]] = []
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ckpt = out / "checkpoint.pt"
    start = 0
    if ckpt.exists():  # resume: tensors and plain containers only (weights_only)
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
        net.load_state_dict(state["net"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        gen.set_state(state["gen"])
        start, history = int(state["step"]), list(state["history"])
        log(f"resumed from {ckpt} at step {start}")
    t0 = time.perf_counter()
    positives = torch.from_numpy(np.flatnonzero((y_tr >= 2).any(axis=(1, 2))))
    if cfg.positive_fraction > 0:
        log(f"crops with a class >= 2: {len(positives)} of {len(xt)}")
    step = start
    for step in range(start + 1, cfg.steps + 1):
        net.train()
        idx = _batch_indices(len(xt), positives, cfg, gen)
        xb, yb = _augment(xt[idx], yt[idx], gen)
        loss = loss_fn(net(xb), yb[:, None])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 50 == 0:
            log(
                f"step {step}/{cfg.steps} loss {loss.item():.4f} ({time.perf_counter() - t0:.0f} s)"
            )
        over = cfg.time_budget_s is not None and time.perf_counter() - t0 > cfg.time_budget_s
        if step % cfg.val_every == 0 or step == cfg.steps or over:
            d = validate(net, x_va, y_va, cfg.classes)
            history.append({"step": step, "dice": d})
            log(f"validation at step {step}: {json.dumps(d)}")
            torch.save(
                {"net": net.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                 "gen": gen.get_state(), "step": step, "history": history},
                ckpt,
            )  # fmt: skip
        if over:
            log(f"time budget {cfg.time_budget_s:g} s reached at step {step}")
            break
    from safetensors.torch import save_file

    save_file(
        {k: v.contiguous() for k, v in net.state_dict().items()}, str(out / "model.safetensors")
    )
    sha = file_sha256(out / "model.safetensors")
    _write_card(cfg, arch, out, history, step, time.perf_counter() - t0, len(x_tr), sha)
    return out


def _loss(cfg: CanalTrainConfig) -> Callable[[Any, Any], Any]:
    """Dice + cross-entropy, or weighted cross-entropy with ``cfg.class_weights``."""
    import torch
    from monai.losses import DiceCELoss

    if cfg.class_weights is None:
        return DiceCELoss(to_onehot_y=True, softmax=True)
    if len(cfg.class_weights) != len(cfg.classes):
        raise ConfigError(
            "TRAIN_CONFIG_INVALID",
            f"class_weights needs {len(cfg.classes)} values ({', '.join(cfg.classes)})",
        )
    ce = torch.nn.CrossEntropyLoss(weight=torch.tensor(cfg.class_weights, dtype=torch.float32))
    return lambda out, target: ce(out, target[:, 0])


def _batch_indices(n: int, positives: Any, cfg: CanalTrainConfig, gen: Any) -> Any:
    """Crop indices of one batch: uniform, with ``cfg.positive_fraction`` of them drawn
    from ``positives`` (when there are any)."""
    import torch

    idx = torch.randint(0, n, (cfg.batch_size,), generator=gen)
    k = int(round(cfg.positive_fraction * cfg.batch_size))
    if k and len(positives):
        idx[:k] = positives[torch.randint(0, len(positives), (k,), generator=gen)]
    return idx


def validate(
    net: Any,
    x: npt.NDArray[np.float32],
    y: npt.NDArray[np.uint8],
    classes: tuple[str, ...] = CANAL_CLASSES,
) -> dict[str, Any]:
    """Dice per class on the validation crops."""
    import torch

    net.eval()
    preds = []
    with torch.inference_mode():
        for i in range(0, len(x), 64):
            preds.append(net(torch.from_numpy(x[i : i + 64, None])).argmax(1).numpy())
    return dice_per_class(np.concatenate(preds), y, classes)


def _write_card(
    cfg: CanalTrainConfig,
    arch: dict[str, Any],
    out: Path,
    history: list[dict[str, Any]],
    steps: int,
    seconds: float,
    n_train: int,
    sha256: str,
) -> None:
    import yaml

    what = "T2 MR" if cfg.modality == "MR" else "CT"
    plane = "axial"
    task = (
        f"canal refinement on axial {what} slices (pipeline.segment.canal)"
        if cfg.target == "canal"
        else f"bone-lesion refinement on axial {what} slices (pipeline.segment.lesion)"
    )
    if cfg.plane == "sagittal":
        what, plane = "T1 / T2 / STIR MR", "sagittal"
        task = (
            "bone-lesion and epidural-tumour refinement on sagittal MR slices, vertebra by "
            "vertebra (pipeline.segment.sagittal)"
        )
    card = {
        "name": cfg.name,
        "task": task,
        "architecture": arch,
        "classes": list(cfg.classes),
        "input": {"modalities": [cfg.modality], "plane": plane},
        "crop": cfg.crop.as_card(),
        **(
            {
                "class_weights": list(cfg.class_weights),
                "class_weights_note": "trained with cross-entropy weighted so; inference divides "
                "the class probabilities by these weights (undoes the prior "
                "shift the weights cause) before the arg-max",
            }
            if cfg.class_weights is not None
            else {}
        ),  # fmt: skip
        "weights": "model.safetensors",
        "sha256": sha256,
        "training": {
            "data": f"synthetic {plane} {what} stacks, seeds {cfg.train_seeds[0]}-{cfg.train_seeds[1] - 1} "
            f"({n_train} crops); centre jitter {cfg.centre_jitter_mm} mm, rotation "
            f"+-{cfg.rotate_deg} deg, flips, gamma / contrast / noise",
            "steps": steps,
            "batch_size": cfg.batch_size,
            "seconds": round(seconds),
            "config": cfg.config_path,
        },
        "metrics": {
            "validation": {
                "data": f"synthetic {plane} {what} crops, seeds {cfg.val_seeds[0]}-"
                f"{cfg.val_seeds[1] - 1} (true "
                + ("vertebra centroids" if plane == "sagittal" else "canal centre")
                + " + jitter)",
                "dice": history[-1]["dice"] if history else None,
            }
        },
    }
    (out / "card.yaml").write_text(yaml.safe_dump(card, sort_keys=False))
