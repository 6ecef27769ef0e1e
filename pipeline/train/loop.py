"""The training loop: random patches from the cache, DiceCE, AdamW, poly LR, resumable.

Reproducible: sample ``i`` of a run is drawn by a generator seeded ``(seed, i)``, so a run
resumed from a checkpoint, or drawn by a different number of DataLoader workers, sees the
same patches as an uninterrupted one (a wall-clock ``time_budget_s`` decides only where a
run stops and how fast its learning rate decays).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from pipeline.segment.model import LEVEL_CHANNEL, SEMANTIC_CLASSES, build_network, level_to_target
from pipeline.train.cache import load_case
from pipeline.train.config import TrainConfig

Case = dict[str, npt.NDArray[Any]]


def _fg_index(sem: npt.NDArray[Any]) -> dict[int, npt.NDArray[np.int64]]:
    """Voxel coordinates of each foreground class (every second voxel per axis)."""
    sub = sem[::2, ::2, ::2]
    return {int(c): np.argwhere(sub == c) * 2 for c in np.unique(sub) if c > 0}


class PatchSampler(torch.utils.data.Dataset[tuple[Any, Any, Any]]):
    """Random training patches; item ``i`` is drawn by a generator seeded ``(seed, i)``.

    Reproducible whatever the number of DataLoader workers: sample ``i`` of a run is the
    same whether it is drawn in the main process, in a worker, or after a resume.
    Foreground coordinates and the padding value of each case are indexed once here
    (before workers fork), so a draw only crops.
    """

    def __init__(
        self, cases: list[Case], size: int, fg_prob: float, seed: int, slab_prob: float = 0.0
    ) -> None:
        self.size, self.fg_prob, self.seed, self.slab_prob = size, fg_prob, seed, slab_prob
        self.cases: list[Case] = []
        self.fg: list[dict[int, npt.NDArray[np.int64]]] = []
        self.lo: list[float] = []
        self.extend(cases)

    def extend(self, cases: list[Case]) -> None:
        """Add cases (a cache that is still being rendered grows during a run)."""
        self.cases += cases
        self.fg += [_fg_index(c["sem"]) for c in cases]
        self.lo += [float(c["image"].min()) for c in cases]

    def __len__(self) -> int:
        return 2**62

    def __getitem__(self, i: int) -> tuple[Any, Any, Any]:
        rng = np.random.default_rng([self.seed, int(i)])
        k = int(rng.integers(len(self.cases)))
        return sample_patch(
            self.cases[k], self.size, rng, self.fg_prob, self.fg[k], self.lo[k], self.slab_prob
        )


def _crop(a: npt.NDArray[Any], start: Any, size: int, value: float) -> npt.NDArray[Any]:
    """``a[start:start+size]`` per axis, padded with ``value`` where the volume is smaller."""
    sl = tuple(slice(int(s), int(s) + size) for s in start)
    c = a[sl]
    pads = [(0, size - n) for n in c.shape]
    return np.pad(c, pads, constant_values=value) if any(p[1] for p in pads) else c


def sample_patch(
    case: Case,
    size: int,
    rng: np.random.Generator,
    fg_prob: float,
    fg: dict[int, npt.NDArray[np.int64]] | None = None,
    lo: float | None = None,
    slab_prob: float = 0.0,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """One (2, s, s, s) input patch, its (1, s, s, s) class target and level target.

    The level target is :func:`level_to_target` on vertebra voxels and NaN elsewhere
    (masked out of the loss).

    With probability ``fg_prob`` the patch is centred (with jitter) on a voxel of a class
    drawn uniformly among the classes present, so rare classes (cord, tumour) are seen
    as often as bone. ``fg`` and ``lo`` (foreground coordinates and padding value) are
    computed from the case when not given. With probability ``slab_prob`` the patch is
    cut to a thin slab (see :func:`thin_slab`).
    """
    sem = case["sem"]
    fg = _fg_index(sem) if fg is None else fg
    lo = float(case["image"].min()) if lo is None else lo
    shape = np.array(sem.shape)
    if fg and rng.random() < fg_prob:
        idx = fg[list(fg)[int(rng.integers(len(fg)))]]
        centre = idx[int(rng.integers(len(idx)))] + rng.integers(-size // 4, size // 4 + 1, 3)
    else:
        centre = rng.integers(0, shape)
    start = np.clip(centre - size // 2, 0, np.maximum(shape - size, 0))
    x = _crop(case["image"], start, size, lo).astype(np.float32)
    y = _crop(sem, start, size, 0).astype(np.int64)
    lev = case["level"] if "level" in case else np.zeros(sem.shape, np.float16)
    lv = _crop(lev, start, size, 0).astype(np.float32)
    if rng.random() < 0.5:  # left-right mirror: our classes are side-free (pedicle L/R comes later)
        x, y, lv = x[::-1].copy(), y[::-1].copy(), lv[::-1].copy()
    lt = np.where(lv > 0, level_to_target(lv), np.nan).astype(np.float32)
    is_ct = bool(case["ct"])
    a, b = rng.uniform(0.85, 1.15), rng.uniform(-0.1, 0.1)
    if not is_ct and rng.random() < 0.5:
        x = (np.sign(x) * np.abs(x) ** rng.uniform(0.7, 1.5)).astype(np.float32)
    x = x * a + b + rng.uniform(0, 0.05) * rng.standard_normal(x.shape, dtype=np.float32)
    if slab_prob > 0 and rng.random() < slab_prob:
        x, y, lt = thin_slab((x, y, lt), rng)
    inp = np.stack([x, np.full_like(x, 1.0 if is_ct else 0.0)]).astype(np.float32)
    return inp, y[None], lt[None]


def thin_slab(
    arrays: tuple[npt.NDArray[Any], ...], rng: np.random.Generator, min_vox: int = 6
) -> tuple[npt.NDArray[Any], ...]:
    """Cut same-shaped patches to one slab along a random axis, edge-padded back to shape.

    Real inputs are often thin along one axis (a 15-20 slice sagittal MR slab, a 20-slice
    CT, a crop): smaller than the inference window, which sliding-window inference then
    fills by replicating the edge slices (``padding_mode="replicate"``). Training patches
    cut from whole synthetic volumes never look like that; this makes some of them do,
    image and targets alike (the replicated voxels keep the labels of the slice they copy).
    """
    shape = arrays[0].shape
    ax = int(rng.integers(3))
    n = shape[ax]
    t = int(rng.integers(min(min_vox, n), max(min_vox, int(0.6 * n)) + 1))
    start = int(rng.integers(0, n - t + 1))
    pad = [(0, 0)] * 3
    pad[ax] = (start, n - start - t)
    sl = [slice(None)] * 3
    sl[ax] = slice(start, start + t)
    return tuple(np.pad(a[tuple(sl)], pad, mode="edge") for a in arrays)


def _dice_per_class(pred: npt.NDArray[Any], ref: npt.NDArray[Any], n: int) -> list[float]:
    out = []
    for c in range(1, n):
        p, r = pred == c, ref == c
        denom = p.sum() + r.sum()
        out.append(float(2 * (p & r).sum() / denom) if denom else math.nan)
    return out


def validate(net: torch.nn.Module, cases: list[Case], roi: int, autocast: Any) -> dict[str, float]:
    """Mean Dice per semantic class over the validation cases (model grid)."""
    from monai.inferers import sliding_window_inference

    net.eval()
    dev = next(net.parameters()).device
    scores: list[list[float]] = []
    level_err: list[float] = []
    with torch.inference_mode():
        for case in cases:
            x = torch.from_numpy(
                np.stack(
                    [
                        case["image"].astype(np.float32),
                        np.full(case["image"].shape, float(bool(case["ct"])), np.float32),
                    ]
                )
            )[None]
            with autocast():
                logits: Any = sliding_window_inference(
                    x,
                    (roi,) * 3,
                    4,
                    net,
                    overlap=0.25,
                    mode="gaussian",
                    sw_device=dev,
                    device="cpu",
                )
            logits = logits.float()
            nc = len(SEMANTIC_CLASSES)
            scores.append(_dice_per_class(logits[0, :nc].argmax(0).numpy(), case["sem"], nc))
            if "level" in case and logits.shape[1] > nc:
                lv = case["level"].astype(np.float32)
                est = logits[0, LEVEL_CHANNEL].float().numpy() * 6.0 + 13.0
                m = lv > 0
                level_err.append(float(np.mean(np.abs(est[m] - lv[m]))) if m.any() else math.nan)
    net.train()
    arr = np.array(scores, dtype=float)
    with np.errstate(all="ignore"):
        means = np.nanmean(arr, axis=0) if len(arr) else []
    out = {name: round(float(v), 4) for name, v in zip(SEMANTIC_CLASSES[1:], means, strict=False)}
    if level_err:
        out["level_mae_voxelwise"] = round(float(np.nanmean(level_err)), 3)
    return out


def _autocast(cfg: TrainConfig) -> Callable[[], Any]:
    import contextlib

    if torch.cuda.is_available():
        return lambda: torch.autocast("cuda", dtype=torch.bfloat16)
    if cfg.cpu_autocast == "bf16":
        return lambda: torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext


def _train_glob_at(cfg: TrainConfig, step: int) -> str:
    """The cache glob in force at ``step`` (``late_train_glob`` from ``late_from_step`` on)."""
    late = cfg.late_train_glob and cfg.late_from_step and step >= cfg.late_from_step
    return cfg.late_train_glob if late else cfg.train_glob


def _load_cases(files: list[Path]) -> list[Case]:
    return [load_case(p) for p in files]


def _sampler(cfg: TrainConfig, cases: list[Case]) -> PatchSampler:
    return PatchSampler(
        cases, cfg.patch_size, cfg.foreground_crop_prob, cfg.seed, cfg.thin_slab_prob
    )


def _batches(cfg: TrainConfig, data: PatchSampler, first_step: int, last_step: int) -> Any:
    """Batches for steps ``[first_step, last_step)``: sample ``i`` of the run is item ``i``
    of ``data`` (drawn by ``num_workers`` processes when configured)."""
    bs = cfg.batch_size
    return torch.utils.data.DataLoader(
        data,
        batch_size=bs,
        sampler=range(first_step * bs, last_step * bs),
        num_workers=cfg.num_workers,
        pin_memory=torch.cuda.is_available(),
        prefetch_factor=4 if cfg.num_workers else None,
    )


def train(
    cfg: TrainConfig, log: Callable[[str], None] = print, max_steps: int | None = None
) -> Path:
    """Train (or resume) and export the model; returns the export folder.

    ``max_steps`` stops this call early (the run resumes later from its checkpoint).
    With ``cfg.time_budget_s`` the run also stops once that much training time (summed
    over resumes) is spent, and the poly learning-rate decay follows whichever of steps
    or time is further along, so a budget-limited run still ends at a low rate.
    """
    from monai.losses import DiceCELoss

    torch.set_num_threads(cfg.num_threads)
    torch.manual_seed(cfg.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.backends.cudnn.benchmark = True  # fixed patch size: let cuDNN pick its kernels once
    run = cfg.path("run_dir")
    run.mkdir(parents=True, exist_ok=True)
    cache = cfg.path("cache_dir")
    net = build_network(cfg.architecture).to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True, include_background=False, batch=True)
    ckpt = run / "checkpoint.pt"
    step, spent = 0, 0.0
    if ckpt.exists():
        state = torch.load(ckpt, map_location=device, weights_only=True)
        net.load_state_dict(state["model"])
        opt.load_state_dict(state["optim"])
        step = int(state["step"])
        spent = float(state.get("elapsed_s", 0.0))
        log(f"resumed from step {step}")
    elif cfg.init_weights:
        from safetensors.torch import load_file

        init = cfg.path("init_weights")
        if not init.exists():
            from pipeline.errors import ConfigError

            raise ConfigError("TRAIN_INIT_MISSING", f"init_weights {init} not found")
        net.load_state_dict(load_file(str(init), device="cpu"))
        log(f"warm start from {init}")
    pattern = _train_glob_at(cfg, step)
    train_files = sorted((cache / "train").glob(pattern))
    val_files = sorted((cache / "val").glob("*.npz"))[: cfg.val_cases]
    if not train_files:
        from pipeline.errors import ConfigError

        raise ConfigError(
            "TRAIN_CACHE_EMPTY",
            f"no training cases in {cache / 'train'} (run spinemet train --build-cache)",
        )
    val = _load_cases(val_files)
    data = _sampler(cfg, _load_cases(train_files))
    log(f"{len(data.cases)} training cases, {len(val)} validation cases, device {device}")
    metrics_log = run / "metrics.jsonl"
    autocast = _autocast(cfg)
    stop = cfg.steps if max_steps is None else min(cfg.steps, step + max_steps)
    budget = cfg.time_budget_s or math.inf
    started = time.perf_counter() - spent
    t0, running, last_val = time.perf_counter(), [], -1

    def elapsed() -> float:
        return time.perf_counter() - started

    def record(rec: dict[str, Any]) -> None:
        log(json.dumps(rec))
        with open(metrics_log, "a") as fh:
            fh.write(json.dumps(rec) + "\n")

    def validate_and_log() -> None:
        record({"step": step, "val_dice": validate(net, val, cfg.roi_size, autocast)})

    out_of_time = spent >= budget  # a fresh run makes at least one step
    net.train()
    while step < stop and not out_of_time:
        # Cases are re-read every reload_every steps: the glob may switch (late_train_glob)
        # and the cache may still be growing (rendered by a parallel job).
        want = _train_glob_at(cfg, step)
        more = sorted((cache / "train").glob(want))
        if want != pattern or len(more) > len(train_files):
            if want != pattern:
                data = _sampler(cfg, _load_cases(more))
            else:
                known = set(train_files)
                data.extend(_load_cases([p for p in more if p not in known]))
            pattern, train_files = want, more
            log(f"step {step}: {len(data.cases)} training cases ({pattern})")
        if len(val) < cfg.val_cases:
            val = _load_cases(sorted((cache / "val").glob("*.npz"))[: cfg.val_cases])
        every = cfg.reload_every
        chunk_end = min(stop, (step // every + 1) * every)
        for x, y, lt in _batches(cfg, data, step, chunk_end):
            x, y, lt = (t.to(device, non_blocking=True) for t in (x, y, lt))
            progress = max(step / cfg.steps, elapsed() / budget)
            lr = cfg.lr * max(0.0, 1 - progress) ** 0.9
            for g in opt.param_groups:
                g["lr"] = lr
            with autocast():
                out = net(x)
            out = out.float()
            loss = loss_fn(out[:, :LEVEL_CHANNEL], y)
            mask = ~torch.isnan(lt)
            if mask.any():
                reg = torch.nn.functional.smooth_l1_loss(
                    out[:, LEVEL_CHANNEL : LEVEL_CHANNEL + 1][mask], lt[mask], beta=0.1
                )
                loss = loss + cfg.level_loss_weight * reg
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            running.append(loss.item())
            out_of_time = elapsed() >= budget
            if step % cfg.log_every == 0 or step == stop or out_of_time:
                rec = {
                    "step": step,
                    "loss": round(float(np.mean(running)), 4),
                    "lr": round(lr, 6),
                    "s_per_step": round((time.perf_counter() - t0) / len(running), 3),
                    "elapsed_s": round(elapsed(), 1),
                }
                running, t0 = [], time.perf_counter()
                record(rec)
            if step % cfg.ckpt_every == 0 or step == stop or out_of_time:
                tmp = ckpt.with_suffix(".tmp")
                state = {
                    "model": net.state_dict(),
                    "optim": opt.state_dict(),
                    "step": step,
                    "elapsed_s": elapsed(),
                }
                torch.save(state, tmp)
                tmp.replace(ckpt)
            if val and step % cfg.val_every == 0:
                validate_and_log()
                last_val = step
            if out_of_time:
                log(f"time budget of {cfg.time_budget_s:.0f} s spent at step {step}")
                break
    if val and last_val != step and (step == cfg.steps or out_of_time):
        validate_and_log()
    return export(cfg, net, step, run)


DESIGN_NOTES = [
    "One network for CT and MR: a CT-flag input channel; intensities of both normalised by "
    "volume percentiles, so domain-randomised and realistic renders share one input scale.",
    "Semantic classes (body, pedicle, posterior elements, disc, sac/CSF, cord, epidural tumour, "
    "lytic, blastic, sacrum) instead of one class per level: 26 look-alike level classes are too "
    "many for a 2.4 M-parameter CPU model. Levels come from body instances along the column.",
    "A 12th output channel regresses each bone voxel's column position (learned level estimate); "
    "numbering counts up from the sacrum when it is visible, else fits the consecutive sequence "
    "closest to the per-instance estimates and flags numbering_uncertain.",
    "2 mm grid, 96^3 inference windows. CPU recipe (configs/train.yaml): 64^3 patches, batch 2, "
    "about 1 s per step in fp32 with one thread (bf16 autocast measured slower: 1.5-1.8 s), so "
    "cpu_autocast is off. GPU recipe (configs/train_gpu.yaml): 96^3 patches, batch 8, bf16 "
    "autocast, 0.05-0.09 s per step on one H200 with 10 DataLoader workers.",
]


def export(cfg: TrainConfig, net: torch.nn.Module, step: int, run: Path) -> Path:
    """Write ``model.safetensors`` and ``card.yaml`` into the export folder."""
    import yaml
    from safetensors.torch import save_file

    from pipeline.segment.model import file_sha256

    out = cfg.path("export_dir")
    out.mkdir(parents=True, exist_ok=True)
    wpath = out / "model.safetensors"
    save_file(
        {k: v.detach().float().cpu().contiguous() for k, v in net.state_dict().items()}, str(wpath)
    )
    val = []
    mpath = run / "metrics.jsonl"
    if mpath.exists():
        val = [json.loads(line) for line in mpath.read_text().splitlines() if "val_dice" in line]
    # The learned level estimate is used only if validation showed it is informative.
    mae = (val[-1]["val_dice"].get("level_mae_voxelwise") if val else None) or float("inf")
    level_mode = "learned" if mae <= 2.0 else "widths"
    level_why = f"validation voxel-wise level error {mae:.2f} levels; learned is used when <= 2"
    card_path = out / "card.yaml"
    old = yaml.safe_load(card_path.read_text()) if card_path.exists() else {}
    card = {
        "name": cfg.name,
        "version": 1,
        "weights": wpath.name,
        "sha256": file_sha256(wpath),
        "parameters": int(sum(p.numel() for p in net.parameters())),
        "architecture": cfg.architecture,
        "classes": list(SEMANTIC_CLASSES),
        "level_channel": LEVEL_CHANNEL,
        "level_channel_meaning": "column position (C1=1..L5=24, T13=19.5, L6=24.5, sacrum=25) = 6 * output + 13",
        "input": {
            "channels": ["intensity", "ct_flag"],
            "modalities": ["CT", "MR"],
            "orientation": "canonical (axis0 ~ +L, axis1 ~ +P, axis2 ~ +S), see pipeline.io.volume",
            "normalisation": "CT and MR alike: (x - p0.5) / (p99.5 - p0.5) over the volume, clipped to [-0.5, 1.5]",
        },
        "spacing_mm": [cfg.spacing_mm] * 3,
        "patch_size": [cfg.patch_size] * 3,
        "inference": {
            "roi_size": [cfg.roi_size] * 3,
            "overlap": 0.25,
            "mode": "gaussian",
            "cpu_autocast": cfg.cpu_autocast,
            "level_estimate": level_mode,
        },
        "levels": (
            "semantic classes only; vertebra levels from body instances ordered along the column, "
            "counted up from the sacrum when visible, else from the learned level estimate "
            "(level_estimate: learned) or typical body widths (level_estimate: widths), flagged "
            f"numbering_uncertain - see pipeline.segment.levels. Chosen: {level_mode} ({level_why})"
        ),
        "training": {
            "recipe": "pipeline.train (spinemet train)",
            "config": cfg.to_dict(),
            "steps_done": step,
            "data": (
                "synthetic pairs from pipeline.synth.make_training_pair, seeds train_seeds: modality "
                "alternating CT/MR, half domain-randomised, half realistic renders; rendered on the 2 mm grid"
            ),
            "validation_dice_model_grid": val[-1]["val_dice"] if val else None,
        },
        "design": DESIGN_NOTES,
        "metrics": old.get("metrics", {}),
        "license": "Apache-2.0 (trained on generated data only)",
    }
    card_path.write_text(yaml.safe_dump(card, sort_keys=False))
    return out


def export_checkpoint(cfg: TrainConfig) -> Path:
    """Export the run's last checkpoint (weights + card) without training further."""
    from pipeline.errors import ConfigError

    run = cfg.path("run_dir")
    ckpt = run / "checkpoint.pt"
    if not ckpt.exists():
        raise ConfigError("TRAIN_NO_CHECKPOINT", f"no checkpoint in {run}")
    net = build_network(cfg.architecture)
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    net.load_state_dict(state["model"])
    return export(cfg, net, int(state["step"]), run)
