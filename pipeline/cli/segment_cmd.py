"""``spinemet segment``: label maps for one study (built-in model or imported labels)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    """Add the ``segment`` subcommand."""
    p = sub.add_parser(
        "segment",
        help="segment one study: vertebrae (levels), structures, parts as NIfTI on the source grid",
    )
    p.add_argument("input", help="DICOM folder / file or NIfTI image")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--backend", choices=("builtin", "labels"), default="builtin")
    p.add_argument(
        "--labels", help="labels backend: NIfTI map, TotalSegmentator folder or DICOM SEG"
    )
    p.add_argument("--class-map", help="labels backend: verse, total, total_mr, spineps")
    p.add_argument("--model", help="built-in model name or folder (default: the shipped model)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--modality", choices=("CT", "MR"), help="modality of a NIfTI input")
    p.add_argument(
        "--refine-canal",
        action="store_true",
        help="builtin: re-segment the canal of an axial series at 0.5 mm with the canal model "
        "the model card names (what spinemet run does to the series it grades Bilsky on)",
    )
    p.add_argument(
        "--refine-lesions",
        action="store_true",
        help="builtin: re-segment the bone lesions of an axial CT at 1 mm with the lesion model "
        "the model card names (what spinemet run does to every CT)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Segment and write ``vertebrae/structures/parts.nii.gz`` and ``segmentation.json``."""
    from pipeline.errors import InputError
    from pipeline.io import open_study, write_nifti
    from pipeline.segment import get_segmenter

    for flag in ("refine_canal", "refine_lesions"):
        if getattr(args, flag) and args.backend != "builtin":
            raise InputError(
                "OPTION_INVALID", f"--{flag.replace('_', '-')} needs the builtin backend"
            )
    study = open_study(args.input, modality=args.modality)
    vol = study.primary
    kw: dict[str, Any] = {}
    if args.backend == "labels":
        kw = {"path": args.labels, "class_map": args.class_map}
    else:
        kw = {"model": args.model}
    backend = get_segmenter(args.backend, device=args.device, **kw)
    seg = backend.segment(vol)
    if args.refine_lesions:
        seg = backend.refine_lesions(vol, seg)  # type: ignore[attr-defined]
        print(f"lesion refinement: {seg.meta['lesion_refine']['note']}")
    if args.refine_canal:
        seg = backend.refine_canal(vol, seg)  # type: ignore[attr-defined]
        print(f"canal refinement: {seg.meta['canal_refine']['note']}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in ("vertebrae", "structures", "parts"):
        write_nifti(getattr(seg, name), out / f"{name}.nii.gz", dtype="int16")
    summary = {
        "levels": seg.levels,
        "level_confidence": seg.level_confidence,
        "numbering_uncertain": seg.numbering_uncertain,
        "meta": seg.meta,
    }
    (out / "segmentation.json").write_text(json.dumps(summary, indent=2, default=str))
    print(f"levels: {', '.join(seg.levels) or 'none'}; written to {out}")
    return 0
