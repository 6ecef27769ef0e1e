"""``spinemet run PATH``: one study end to end (see :mod:`pipeline.run`)."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def register(sub: Any) -> None:
    """Add the ``run`` subcommand."""
    p = sub.add_parser(
        "run",
        help="assess one study: segment, measure, score, write report.json/report.html",
        description=(
            "Load a DICOM folder or NIfTI file, segment the spine, measure imaging features "
            "(levels, involvement, SINS components, Bilsky grade), score, and write "
            "OUT/<study>/report.json, report.html, run.json and the label maps. Research use only."
        ),
    )
    p.add_argument("path", help="DICOM folder/file or NIfTI image")
    p.add_argument(
        "--modality", choices=["CT", "MR"], help="modality of a NIfTI input (else guessed)"
    )
    p.add_argument(
        "--clinical", metavar="FILE", help="clinical inputs (YAML/JSON, scoring case-file format)"
    )
    p.add_argument(
        "--out", default="outputs", metavar="DIR", help="output folder (default: outputs)"
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    p.add_argument("--segmenter", choices=["builtin", "labels"], default="builtin")
    p.add_argument(
        "--model",
        metavar="NAME|DIR",
        help="built-in model: a folder with card.yaml, or a name under models/ "
        "(default spinemet-unet-2mm)",
    )
    p.add_argument("--labels", metavar="PATH", help="label source for --segmenter labels")
    p.add_argument(
        "--class-map",
        help="class map of a multilabel NIfTI for --segmenter labels (verse, total, total_mr, spineps)",
    )
    p.add_argument(
        "--features-config",
        metavar="YAML",
        help="feature tolerances (default configs/features.yaml)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress messages")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from pipeline.run import run_study

    res = run_study(
        args.path,
        args.out,
        modality=args.modality,
        clinical=args.clinical,
        device=args.device,
        segmenter=args.segmenter,
        model=args.model,
        labels=args.labels,
        class_map=args.class_map,
        features_config=args.features_config,
        progress=None if args.quiet else (lambda m: print(m, file=sys.stderr, flush=True)),
    )
    r = res.report
    if not res.assessable:
        print(
            f"spinemet: the study could not be assessed: {'; '.join(r.get('messages', []))}",
            file=sys.stderr,
        )
        print(f"report: {res.out_dir / 'report.html'}")
        return 1
    e = r["escc"]
    s = r.get("scores", {})
    sins = s.get("sins_total") if s.get("sins_total") is not None else s.get("sins_total_range")
    print(f"levels: {', '.join(r['levels'])}")
    print(f"involved: {', '.join(r['summary']['involved_levels']) or 'none'}")
    where = f" at {e['worst_level']}" if e.get("worst_level") else ""
    if e.get("worst_grade") is None:
        print(f"Bilsky: not assessable ({e.get('why')})")
    else:
        print(f"Bilsky worst: {e['worst_grade']}{where} ({e.get('provenance')})")
    if r["summary"].get("index_level"):
        cat = s.get("sins_category") or ""
        print(f"SINS ({r['summary']['index_level']}): {sins} {cat}".rstrip())
    else:
        print("SINS: no involved vertebra")
    if s.get("recommendation"):
        print(f"recommendation: {s['recommendation']}")
    for m in r.get("messages", []):
        print(f"note: {m}", file=sys.stderr)
    print(f"report: {res.out_dir / 'report.html'}")
    return 0
