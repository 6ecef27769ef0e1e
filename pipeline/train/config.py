"""Training configuration (YAML in ``configs/train*.yaml``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from pipeline.errors import ConfigError
from pipeline.paths import PROJECT_ROOT, load_yaml


@dataclass
class TrainConfig:
    """Everything that defines one training run (seeded, so it can be rerun)."""

    name: str = "spinemet-unet-2mm"
    run_dir: str = "runs/spinemet-unet-2mm"
    cache_dir: str = "runs/cache-2mm"
    export_dir: str = "models/spinemet-unet-2mm"
    spacing_mm: float = 2.0
    patch_size: int = 64
    roi_size: int = 96
    batch_size: int = 2
    steps: int = 4000
    lr: float = 2e-3
    weight_decay: float = 1e-5
    seed: int = 0
    num_threads: int = 1
    # DataLoader worker processes drawing patches (0: in the training process). On a GPU
    # the patch sampler, not the network, limits the step rate without workers.
    num_workers: int = 0
    # Wall-clock training budget in seconds (0: none): the run stops when it is spent and
    # the learning rate decays by whichever of steps or time is further along.
    time_budget_s: float = 0.0
    # Steps between looks at the cache folder (new cases, late_train_glob); each look also
    # restarts the DataLoader workers, so GPU runs with many workers use a longer interval.
    reload_every: int = 100
    cpu_autocast: str = "none"
    ckpt_every: int = 100
    log_every: int = 20
    val_every: int = 500
    val_cases: int = 4
    foreground_crop_prob: float = 0.9
    # Share of patches cut to a thin slab along one axis and edge-padded (see
    # pipeline.train.loop.thin_slab): thin real inputs are padded that way at inference.
    thin_slab_prob: float = 0.0
    level_loss_weight: float = 1.0
    # Warm start: a safetensors file of the same architecture (e.g. the shipped model) that
    # a new run starts from; ignored when the run resumes from its own checkpoint.
    init_weights: str = ""
    # Which cached training cases to use (glob), and from which step on: lets a run start on
    # everything (domain-randomised + realistic) and finish on a subset.
    train_glob: str = "*.npz"
    late_train_glob: str = ""
    late_from_step: int = 0
    architecture: dict[str, Any] = field(
        default_factory=lambda: {
            "type": "monai.networks.nets.UNet",
            "spatial_dims": 3,
            "in_channels": 2,
            "out_channels": 12,
            "channels": [16, 32, 64, 128, 256],
            "strides": [2, 2, 2, 2],
            "num_res_units": 1,
            "norm": "instance",
        }
    )
    # Cache contents (synthetic pairs; train and validation seeds never overlap).
    train_seeds: list[int] = field(default_factory=lambda: [0, 160])
    val_seeds: list[int] = field(default_factory=lambda: [100000, 100008])
    modalities: list[str] = field(default_factory=lambda: ["CT", "MR"])
    real_data: list[str] = field(default_factory=list)

    def path(self, attr: str) -> Path:
        """Resolve a path field relative to the project root."""
        p = Path(getattr(self, attr))
        return p if p.is_absolute() else PROJECT_ROOT / p

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (for the card and logs)."""
        return asdict(self)


def load_train_config(path: str | Path | None = None, **overrides: Any) -> TrainConfig:
    """Read a training YAML (default ``configs/train.yaml``) and apply overrides."""
    raw = load_yaml(path or "train.yaml") or {}
    raw.update({k: v for k, v in overrides.items() if v is not None})
    known = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError("TRAIN_CONFIG_INVALID", f"unknown training options: {', '.join(unknown)}")
    return TrainConfig(**raw)
