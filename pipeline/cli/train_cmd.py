"""``spinemet train``: build the training cache and train the built-in model."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def register(sub: Any) -> None:
    """Add the ``train`` subcommand."""
    p = sub.add_parser(
        "train",
        help="train the built-in segmentation model (synthetic + optional labelled NIfTI data)",
        description="Render a training cache (domain-randomised synthetic studies and any "
        "real_data folders named in the config) onto the model grid, then train a MONAI UNet "
        "on it, resumably; weights and card go to export_dir (models/<name>/).",
    )
    p.add_argument(
        "--config", default="train.yaml", help="training YAML (default configs/train.yaml)"
    )
    p.add_argument("--build-cache", action="store_true", help="render missing cache cases first")
    p.add_argument("--cache-only", action="store_true", help="only render the cache, do not train")
    p.add_argument("--steps", type=int, help="total optimisation steps (overrides the config)")
    p.add_argument("--max-steps", type=int, help="stop this call after N steps (resume later)")
    p.add_argument("--threads", type=int, help="torch CPU threads (overrides num_threads)")
    p.add_argument(
        "--workers", type=int, default=1, help="processes rendering the synthetic cache (default 1)"
    )
    p.add_argument(
        "--train-seeds",
        type=int,
        nargs=2,
        metavar=("FIRST", "END"),
        help="synthetic training seeds [FIRST, END) (overrides train_seeds)",
    )
    p.add_argument(
        "--time-budget", type=float, help="stop training after this many seconds (time_budget_s)"
    )
    p.add_argument("--export-only", action="store_true", help="export the last checkpoint and card")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the training command."""
    from pipeline.paths import load_yaml
    from pipeline.train.config import load_train_config

    overrides = {
        "steps": args.steps,
        "num_threads": args.threads,
        "time_budget_s": args.time_budget,
        "train_seeds": args.train_seeds,
    }
    raw = load_yaml(args.config) or {}
    if isinstance(raw, dict) and raw.get("task") == "canal_refine":
        from pipeline.train.canal import load_canal_config
        from pipeline.train.canal import train as train_canal

        out = train_canal(
            load_canal_config(args.config, **overrides), log=lambda m: print(m, flush=True)
        )
        print(f"model written to {out}", file=sys.stderr)
        return 0

    cfg = load_train_config(args.config, **overrides)

    def log(msg: str) -> None:
        print(msg, flush=True)

    if args.build_cache or args.cache_only:
        build(cfg, log, args.workers)
    if args.cache_only:
        return 0
    if args.export_only:
        from pipeline.train.loop import export_checkpoint

        out = export_checkpoint(cfg)
    else:
        from pipeline.train.loop import train

        out = train(cfg, log=log, max_steps=args.max_steps)
    print(f"model written to {out}", file=sys.stderr)
    return 0


def build(cfg: Any, log: Any, workers: int = 1) -> None:
    """Render the train / val cache of ``cfg`` (skips cases already there)."""
    import torch

    from pipeline.train.cache import build_cache, build_synthetic_cache, nifti_source

    torch.set_num_threads(cfg.num_threads)
    cache = cfg.path("cache_dir")
    for split, (a, b) in (("val", cfg.val_seeds), ("train", cfg.train_seeds)):
        build_synthetic_cache(
            cache / split, range(a, b), cfg.modalities, cfg.spacing_mm, workers, log
        )
    for folder in cfg.real_data:
        build_cache(cache / "train", nifti_source(folder), cfg.spacing_mm, log)
