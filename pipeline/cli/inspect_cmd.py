"""``spinemet inspect PATH``: studies, series, classification, geometry checks, selection."""

from __future__ import annotations

import argparse
import json
import logging
from typing import Any

import numpy as np

from pipeline.errors import InputError
from pipeline.io.discovery import Discovery, discover_all
from pipeline.io.model import LoadedStudy, Series
from pipeline.io.nifti import is_nifti
from pipeline.io.selection import choose_study, load_rules
from pipeline.io.study import open_study
from pipeline.io.volume import Volume

TS_NAMES = {
    "1.2.840.10008.1.2": "Implicit VR LE",
    "1.2.840.10008.1.2.1": "Explicit VR LE",
    "1.2.840.10008.1.2.2": "Explicit VR BE",
    "1.2.840.10008.1.2.5": "RLE",
    "1.2.840.10008.1.2.4.50": "JPEG baseline",
    "1.2.840.10008.1.2.4.51": "JPEG extended",
    "1.2.840.10008.1.2.4.57": "JPEG lossless",
    "1.2.840.10008.1.2.4.70": "JPEG lossless SV1",
    "1.2.840.10008.1.2.4.80": "JPEG-LS lossless",
    "1.2.840.10008.1.2.4.81": "JPEG-LS near-lossless",
    "1.2.840.10008.1.2.4.90": "JPEG 2000 lossless",
    "1.2.840.10008.1.2.4.91": "JPEG 2000",
}


def register(subparsers: Any) -> None:
    """Add the ``inspect`` subcommand."""
    p = subparsers.add_parser(
        "inspect",
        help="list studies and series, their classification, geometry checks and selection",
        description=(
            "Read DICOM headers under PATH (or a NIfTI file), group them into studies and "
            "series, classify them, run the geometry checks and show which series the "
            "rules in configs/series_selection.yaml select; then load the selected series "
            "and print their geometry and value range."
        ),
    )
    p.add_argument("path", help="DICOM folder or file, or a .nii/.nii.gz file")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.add_argument(
        "--modality",
        choices=["CT", "MR"],
        help="modality of a NIfTI input (guessed and reported when omitted)",
    )
    p.add_argument("--rules", help="selection rules YAML (default configs/series_selection.yaml)")
    p.add_argument(
        "--no-load", action="store_true", help="headers only: do not decode the selected series"
    )
    p.add_argument(
        "--study",
        metavar="UID",
        help="select and load this study (default: the one filling the most roles)",
    )
    p.set_defaults(func=run)


def volume_summary(vol: Volume) -> dict[str, Any]:
    """Geometry and value range of a loaded volume (no patient data)."""
    a = vol.array
    sample = a.ravel()[:: max(1, a.size // 2_000_000)]
    p1, p50, p99 = (float(x) for x in np.percentile(sample, [1, 50, 99]))
    return {
        "modality": vol.modality,
        "shape": list(vol.shape),
        "spacing_mm": [round(float(x), 6) for x in vol.spacing],
        "origin_lps_mm": [round(float(x), 3) for x in vol.origin],
        "direction": np.round(vol.direction, 5).tolist(),
        "min": float(a.min()),
        "max": float(a.max()),
        "p1": p1,
        "p50": p50,
        "p99": p99,
        "series_key": vol.meta.get("series_key"),
        "modality_source": vol.meta.get("modality_source"),
    }


def _series_line(s: Series, picked_roles: list[str]) -> list[str]:
    d = s.as_dict()
    c = s.classification
    kind = [s.modality, c.plane if c else "?"]
    if c and c.weighting:
        kind.append(c.weighting + (" fat-sat" if c.fat_sat else ""))
    if c and c.kernel_class:
        kind.append(f"kernel {d['kernel'] or '-'} ({c.kernel_class})")
    flags = [n for n in ("localizer", "derived", "secondary") if c and getattr(c, n)]
    geo = f"{s.n_frames} image(s)"
    if d["rows"]:
        geo += f", {d['columns']}x{d['rows']}"
    if d["pixel_spacing"]:
        geo += f", pixel {d['pixel_spacing'][1]:.3f}x{d['pixel_spacing'][0]:.3f} mm"
    if s.slice_spacing is not None:
        geo += f", slice spacing {s.slice_spacing:.3f} mm"
    if d["slice_thickness"]:
        geo += f" (thickness {d['slice_thickness']:g})"
    ts = d["transfer_syntax"] or ""
    lines = [
        f"  series {s.key}  #{s.series_number if s.series_number is not None else '-'} "
        f"'{s.description}'" + (f"  <- {', '.join(picked_roles)}" if picked_roles else ""),
        f"    {', '.join(kind)}{' [' + ', '.join(flags) + ']' if flags else ''}; {geo}; "
        f"{TS_NAMES.get(ts, ts or '?')}",
    ]
    if s.findings:
        for f in s.findings:
            lines.append(f"    {f.severity.upper():7s} {f.code}: {f.message}")
    else:
        lines.append("    checks: OK")
    return lines


def _merge_reasons(reasons: list[str]) -> list[str]:
    """Join roles that share one reason: 'a, b: rejected (modality CT, not MR)'."""
    by_reason: dict[str, list[str]] = {}
    for line in reasons:
        role, _, why = line.partition(": ")
        by_reason.setdefault(why, []).append(role)
    return [f"{', '.join(roles)}: {why}" for why, roles in by_reason.items()]


def text_report(disc: Discovery, loaded: LoadedStudy | None, sel_study: str | None) -> str:
    """Human-readable inspect output."""
    out = [
        f"{disc.n_files} file(s), {len(disc.studies)} study(ies), "
        f"{sum(len(s.series) for s in disc.studies)} series, {len(disc.skipped)} skipped"
    ]
    codes: dict[str, int] = {}
    for sk in disc.skipped:
        codes[sk.code] = codes.get(sk.code, 0) + 1
    if codes:
        out.append("skipped: " + ", ".join(f"{k} x{v}" for k, v in sorted(codes.items())))
    sel = loaded.selection if loaded else None
    for st in disc.studies:
        mark = "  (selected study)" if st.study_uid == sel_study and len(disc.studies) > 1 else ""
        out.append(f"study {st.study_uid}{mark}")
        for s in st.series:
            roles = [r for r, ps in (sel.picked.items() if sel else []) if ps is s]
            out.extend(_series_line(s, roles))
            if sel and s.key in sel.reasons and st.study_uid == sel_study:
                out.extend(f"    select  {line}" for line in _merge_reasons(sel.reasons[s.key]))
    return "\n".join(out)


def _run_nifti(args: argparse.Namespace) -> int:
    loaded = open_study(args.path, modality=args.modality)
    vols = {role: volume_summary(v) for role, v in loaded.volumes.items()}
    if args.json:
        doc = {
            "input": "nifti",
            "volumes": vols,
            "messages": loaded.messages,
            "warnings": [w.as_dict() for w in loaded.warnings],
        }
        print(json.dumps(doc, indent=2))
    else:
        for m in loaded.messages:
            print(m)
        for w in loaded.warnings:
            print(f"WARNING {w.code}: {w.message}")
        for role, v in vols.items():
            print(_volume_line(role, v))
    return 0


def run(args: argparse.Namespace) -> int:
    """Run ``spinemet inspect``."""
    if not getattr(args, "debug", False):
        # pydicom logs every odd header value; the checks report what matters.
        logging.getLogger("pydicom").setLevel(logging.ERROR)
    if is_nifti(args.path):
        return _run_nifti(args)
    rules = load_rules(args.rules)
    disc = discover_all(args.path, rules)
    loaded: LoadedStudy | None = None
    sel_study: str | None = None
    error: InputError | None = None
    if disc.studies:
        wanted = [st for st in disc.studies if st.study_uid == args.study] if args.study else []
        study, sel = choose_study(wanted or disc.studies, rules)
        sel_study = study.study_uid
        loaded = LoadedStudy(volumes={}, study_uid=sel_study, selection=sel)
        if not args.no_load:
            try:
                loaded = open_study(
                    args.path,
                    modality=args.modality,
                    rules=rules,
                    discovery=disc,
                    study_uid=args.study,
                )
            except InputError as exc:  # print the listing first, then the one-line error
                error = exc
    vols = {role: volume_summary(v) for role, v in (loaded.volumes.items() if loaded else [])}
    if args.json:
        doc: dict[str, Any] = {
            "input": "dicom",
            **disc.as_dict(),
            "selected_study": sel_study,
            "selection": loaded.selection.as_dict() if loaded and loaded.selection else None,
            "volumes": vols,
            "warnings": [w.as_dict() for w in loaded.warnings] if loaded else [],
        }
        print(json.dumps(doc, indent=2))
    else:
        print(text_report(disc, loaded, sel_study))
        if loaded:
            if loaded.selection and not loaded.selection.picked:
                print("selection: no series matches any role")
            for role, v in vols.items():
                print(_volume_line(role, v))
            for w in loaded.warnings:
                if w.code == "MULTIPLE_STUDIES" or w.code.startswith("PIXEL"):
                    print(f"WARNING {w.code}: {w.message}")
    if not disc.studies:
        # Nothing usable: let open_study raise its named error (one line via the CLI).
        open_study(args.path, modality=args.modality, rules=rules, discovery=disc)
    if error is not None:
        raise error
    return 0


def _volume_line(role: str, v: dict[str, Any]) -> str:
    sp = "x".join(f"{x:.3f}" for x in v["spacing_mm"])
    return (
        f"loaded {role}: {v['modality']} shape {tuple(v['shape'])} spacing {sp} mm, "
        f"values {v['min']:.0f}..{v['max']:.0f} (p1 {v['p1']:.0f}, median {v['p50']:.0f}, "
        f"p99 {v['p99']:.0f})"
    )
