"""``spinemet synth``: synthetic studies with ground truth (``study``, ``cohort``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.errors import ConfigError


def _study(args: argparse.Namespace) -> int:
    from pipeline.synth.generator import StudyOptions
    from pipeline.synth.study import generate_study

    opts = StudyOptions(region=args.region, grade=args.grade, lesion_type=args.lesion, collapse=args.collapse,
                        alignment=args.alignment, posterolateral=args.posterolateral)  # fmt: skip
    try:
        res = generate_study(args.seed, Path(args.out), opts, modality=args.modality,
                             orientation=None if args.orientation == "random" else args.orientation,
                             ct_matrix=args.ct_matrix, mr_matrix=args.mr_matrix, extra_mr=args.extra_mr,
                             write_dicom=not args.no_dicom)  # fmt: skip
    except ValueError as exc:
        raise ConfigError("SYNTH_OPTIONS", str(exc)) from exc
    t = res.truth
    print(f"wrote {args.out}: levels {t['levels'][0]}-{t['levels'][-1]}, worst Bilsky "
          f"{t['escc']['worst_grade']} at {t['escc']['worst_level']}, series {', '.join(s.name for s in res.series)}")  # fmt: skip
    return 0


def _cohort(args: argparse.Namespace) -> int:
    from pipeline.synth.cohort import generate_cohort

    if args.n < 1:
        raise ConfigError("SYNTH_OPTIONS", "--n must be at least 1")
    rows = generate_cohort(args.n, args.seed, Path(args.out),
                           orientation=None if args.orientation == "random" else args.orientation,
                           ct_matrix=args.ct_matrix, mr_matrix=args.mr_matrix, write_dicom=not args.no_dicom)  # fmt: skip
    print(f"wrote {len(rows)} studies and manifest.csv/json to {args.out}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``spinemet synth study|cohort``."""
    from pipeline.synth.config import GRADES
    from pipeline.synth.generator import (
        ALIGNMENTS,
        COLLAPSE_KINDS,
        LESION_TYPES,
        POSTEROLATERAL,
        REGIONS,
    )

    p = subparsers.add_parser("synth", help="generate synthetic spine studies with ground truth")
    sub = p.add_subparsers(dest="synth_command", metavar="{study,cohort}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--seed", type=int, default=0, help="random seed (same seed, same bytes)")
    common.add_argument("--out", required=True, help="output folder")
    common.add_argument("--orientation", choices=["standard", "flipped", "oblique", "random"], default="random",
                        help="orientation of the series (default: drawn per series)")  # fmt: skip
    common.add_argument("--ct-matrix", type=int, default=256)
    common.add_argument("--mr-matrix", type=int, default=320)
    common.add_argument("--no-dicom", action="store_true", help="write NIfTI and truth only")
    s = sub.add_parser(
        "study", parents=[common], help="one study: DICOM + NIfTI + labels + truth.json"
    )
    s.add_argument("--modality", choices=["CT", "MR", "both"], default="both")
    s.add_argument("--region", choices=list(REGIONS))
    s.add_argument("--grade", choices=list(GRADES), help="Bilsky grade of the epidural tumour")
    s.add_argument("--lesion", choices=list(LESION_TYPES))
    s.add_argument("--collapse", choices=list(COLLAPSE_KINDS))
    s.add_argument("--alignment", choices=list(ALIGNMENTS))
    s.add_argument("--posterolateral", choices=list(POSTEROLATERAL))
    s.add_argument("--extra-mr", action="store_true", help="also T1 and STIR sagittal series")
    s.set_defaults(func=_study)
    c = sub.add_parser("cohort", parents=[common], help="N balanced studies with manifest.csv/json")
    c.add_argument("--n", type=int, required=True)
    c.set_defaults(func=_cohort)
