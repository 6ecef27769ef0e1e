"""``spinemet score``: the scoring calculator on the command line.

``spinemet score INPUT`` reads one case-format ``inputs`` object (JSON or YAML; ``-``
for standard input) or a CSV with one patient per row (dotted columns such as
``sins.pain``; ``sins.levels`` separated by ``;``) and writes the scores as JSON to
standard output, under the keys of the case file's ``expected``.

Exit codes: 0 scored (possibly partial: see ``flags`` and ``*_total_range``);
1 at least one score refused (the JSON carries ``error`` and ``errors``);
2 the input could not be read or parsed (the JSON carries ``error``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

from pipeline.scoring.base import ScoringError
from pipeline.scoring.calculator import score_case
from pipeline.scoring.explain import format_explanation
from pipeline.scoring.record import parse_document, rows_from_csv
from pipeline.scoring.tables import load_tables

EXIT_OK, EXIT_REFUSED, EXIT_UNREADABLE = 0, 1, 2


def register(subparsers: Any) -> None:
    """Add the ``score`` subcommand."""
    p = subparsers.add_parser(
        "score",
        help="score a case (SINS, Bilsky, NOMS, Tokuhashi, Tomita, modified Bauer, NESMS)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "input", help="JSON/YAML inputs object, CSV (one row per patient), or - for stdin"
    )
    p.add_argument(
        "--explain",
        action="store_true",
        help="add, for each point, the rule and source that gave it",
    )
    p.add_argument(
        "--format",
        choices=("json", "text"),
        default="json",
        help="json (default) or a text explanation",
    )
    p.add_argument("--input-format", choices=("auto", "json", "yaml", "csv"), default="auto")
    p.add_argument(
        "--convention",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override an engine convention of configs/scoring.yaml (repeatable)",
    )
    p.set_defaults(func=run)


def _read(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ScoringError("INPUT_UNREADABLE", f"cannot read {path}: {exc.strerror}") from exc


def _fmt(path: str, text: str, requested: str) -> str:
    if requested != "auto":
        return requested
    suffix = Path(path).suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".yaml", ".yml"):
        return "yaml"
    if suffix == ".json":
        return "json"
    return "json" if text.lstrip().startswith(("{", "[")) else "yaml"


def score_text(
    text: str, fmt: str, *, explain: bool = False, conventions: dict[str, Any] | None = None
) -> tuple[Any, int]:
    """Score a document (the CLI's work, without I/O); returns (JSON-able result, exit code)."""
    tables = load_tables()
    if conventions:
        tables = tables.with_conventions(**conventions)
    try:
        if fmt == "csv":
            docs: Any = rows_from_csv(text)
        else:
            docs = parse_document(text, fmt)
    except ScoringError as exc:
        return {
            "error": exc.code,
            "errors": [exc.code],
            "error_messages": {exc.code: exc.message},
        }, EXIT_UNREADABLE
    if fmt == "csv" or isinstance(docs, list):
        results = []
        for i, doc in enumerate(docs):
            res = score_case(doc, explain=explain, tables=tables)
            ident = doc.get("id") if isinstance(doc, dict) else None
            results.append({"row": i + 1, **({"id": ident} if ident is not None else {}), **res})
        code = EXIT_REFUSED if any("error" in r for r in results) else EXIT_OK
        return results, code
    res = score_case(docs, explain=explain, tables=tables)
    return res, EXIT_REFUSED if "error" in res else EXIT_OK


def run(args: argparse.Namespace) -> int:
    """Score and print; see the module docstring for exit codes."""
    conventions = {}
    for item in args.convention:
        name, _, value = item.partition("=")
        conventions[name.strip()] = yaml.safe_load(value) if value.strip() else None
    try:
        text = _read(args.input)
    except ScoringError as exc:
        print(
            json.dumps(
                {
                    "error": exc.code,
                    "errors": [exc.code],
                    "error_messages": {exc.code: exc.message},
                },
                indent=2,
            )
        )
        return EXIT_UNREADABLE
    fmt = _fmt(args.input, text, args.input_format)
    result, code = score_text(
        text, fmt, explain=args.explain or args.format == "text", conventions=conventions
    )
    if args.format == "text":
        for res in result if isinstance(result, list) else [result]:
            keys = [k for k in res if k not in ("explanation", "recommendation_detail")]
            for k in keys:
                print(f"{k}: {json.dumps(res[k])}")
            if res.get("explanation"):
                print(format_explanation(res["explanation"]))
            for line in (res.get("recommendation_detail") or {}).get("what_would_change", []):
                print(f"what would change it: {line}")
            print()
    else:
        print(json.dumps(result, indent=2, ensure_ascii=False))
    return code
