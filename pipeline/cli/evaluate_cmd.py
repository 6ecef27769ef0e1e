"""``spinemet evaluate REPORTS TRUTH``: compare a cohort's reports with its truth."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from pipeline.errors import InputError


def register(sub: Any) -> None:
    """Add the ``evaluate`` subcommand."""
    p = sub.add_parser(
        "evaluate",
        help="compare report.json files with truth.json (Bilsky, SINS components, levels)",
        description=(
            "Match REPORTS/<study>/report.json with TRUTH/<study>/truth.json and print the "
            "acceptance metrics with bootstrap 95%% intervals as JSON."
        ),
    )
    p.add_argument("reports", help="folder of <study>/report.json")
    p.add_argument("truth", help="folder of <study>/truth.json")
    p.add_argument("--out", metavar="FILE", help="also write the metrics JSON here")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples (default 1000)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from pipeline.evaluate import evaluate_pairs, find_pairs

    pairs = find_pairs(Path(args.reports), Path(args.truth))
    if not pairs:
        raise InputError(
            "NO_PAIRS", f"no <study>/report.json in {args.reports} with a truth in {args.truth}"
        )
    res = evaluate_pairs(pairs, n_boot=args.bootstrap, seed=args.seed)
    text = json.dumps(res, indent=2)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0
