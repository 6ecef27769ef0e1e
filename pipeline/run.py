"""One study end to end: load -> segment -> features -> clinical inputs -> score -> write.

``run_study`` is what ``spinemet run`` calls. Each stage is timed; ``run.json`` holds the
timings, versions, configuration hash and device; ``report.json`` holds only content
(identical for the same input and configuration).

A study that cannot be assessed (nothing loadable, no spine segmented) still gets a
``report.json`` / ``report.html`` saying why, and the returned status says so.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import labels as L
from pipeline.errors import InputError, SpinemetError
from pipeline.features import extract_features, load_config
from pipeline.features.crossseries import adopt_numbering, numbering_check
from pipeline.features.record import scoring_inputs, sins_block
from pipeline.features.types import ImagingFeatures
from pipeline.io.volume import Volume

Progress = Callable[[str], None]


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


@dataclass
class RunResult:
    """What ``run_study`` produced."""

    out_dir: Path
    report: dict[str, Any]
    run_info: dict[str, Any]
    assessable: bool
    files: list[str] = field(default_factory=list)


def study_name(path: str | Path) -> str:
    """Output sub-folder name from the input path (file stem or folder name)."""
    p = Path(path).resolve()
    name = re.sub(r"\.nii(\.gz)?$", "", p.name)
    if name.lower() in ("dicom", "dcm", "images") and p.parent.name:
        name = p.parent.name
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name) or "study"


def read_clinical(path: str | Path | None) -> dict[str, Any] | None:
    """Read the clinician's record (YAML or JSON, case-file format)."""
    if path is None:
        return None
    from pipeline.scoring.record import parse_document

    p = Path(path)
    if not p.exists():
        raise InputError("CLINICAL_NOT_FOUND", f"no such clinical file: {p}")
    fmt = "json" if p.suffix.lower() == ".json" else "yaml"
    doc = parse_document(p.read_text(encoding="utf-8"), fmt)
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise InputError("CLINICAL_INVALID", f"{p.name} must hold one mapping of clinical fields")
    return doc


def _choose(volumes: dict[str, Volume]) -> tuple[str, Volume, str | None]:
    """Primary role for levels/SINS, and the role on which Bilsky is graded (if other).

    CT, when the study has it, is the primary (bone: levels, lesions, SINS); else the
    sagittal MR. Bilsky is read on the axial T2 whenever the study has one, CT or not
    (the reference standard, Bilsky et al. 2010); otherwise it is estimated on the primary.
    """
    escc = "mr_axial_t2" if "mr_axial_t2" in volumes else None
    roles = ("ct_axial", "ct", "mr_sagittal_t2", "mr_sagittal_t1", "mr_sagittal_stir", "mr",
             "mr_axial_t2")  # fmt: skip
    role = next((r for r in roles if r in volumes), next(iter(volumes)))
    return role, volumes[role], (escc if escc != role else None)


def _say_canal_refined(features: ImagingFeatures, seg: Any) -> None:
    """Add the canal refinement to the reasons of the Bilsky grade when it was applied."""
    info = (getattr(seg, "meta", None) or {}).get("canal_refine")
    if (
        isinstance(info, dict)
        and info.get("applied")
        and features.escc.provenance != "not_assessable"
    ):
        features.escc.why = f"{features.escc.why}; {info['note']} ({info['model']})"


def _study_info(
    role: str, vol: Volume, loaded: Any, seg_meta: dict[str, Any], path: Path
) -> dict[str, Any]:
    meta = vol.meta or {}
    return {
        "input_kind": "nifti" if str(path).lower().endswith((".nii", ".nii.gz")) else "dicom",
        "modality": vol.modality,
        "role": role,
        "roles_loaded": sorted(loaded.volumes) if loaded is not None else [],
        "series_description": meta.get("series_description") or meta.get("description"),
        "shape": list(vol.shape),
        "spacing_mm": [round(float(s), 4) for s in vol.spacing],
        "segmenter": seg_meta.get("backend") or seg_meta.get("name"),
        "model": seg_meta.get("model"),
    }


def _score(
    features: ImagingFeatures, clinical: dict[str, Any] | None
) -> tuple[dict[str, Any], dict[str, Any], str | None, dict[str, Any], list[str]]:
    from pipeline.report.build import pick_index_vertebra
    from pipeline.scoring import score_case

    per_vertebra: dict[str, Any] = {}
    for v in features.vertebrae:
        if not v.involved:
            continue
        r = score_case({"sins": sins_block(v)})
        per_vertebra[v.level] = {
            k: r.get(k)
            for k in ("sins_total", "sins_total_range", "sins_category", "flags", "error")
            if k in r
        }
    index = pick_index_vertebra(features)
    inputs, entered = scoring_inputs(features, index, clinical)
    scores = score_case(inputs, explain=True) if inputs else {}
    return scores, inputs, (index.level if index else None), per_vertebra, entered


def run_study(
    path: str | Path,
    out: str | Path = "outputs",
    *,
    modality: str | None = None,
    clinical: str | Path | None = None,
    device: str = "auto",
    segmenter: str = "builtin",
    model: str | Path | None = None,
    labels: str | Path | None = None,
    class_map: str | None = None,
    features_config: str | Path | None = None,
    progress: Progress | None = _stderr,
    write_images: bool = True,
) -> RunResult:
    """Assess one study and write its outputs under ``out/<study>/``.

    Raises
    ------
    SpinemetError
        Only for problems with the command itself (input path missing, bad clinical
        file, bad configuration); an input that cannot be assessed gives a report.
    """
    say = progress or (lambda _m: None)
    src = Path(path)
    if not src.exists():
        raise InputError("INPUT_NOT_FOUND", f"no such file or folder: {src}")
    out_dir = Path(out) / study_name(src)
    out_dir.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    options = {
        "modality": modality,
        "segmenter": segmenter,
        "model": str(model) if model else None,
        "labels": str(labels) if labels else None,
        "class_map": class_map,
        "clinical": Path(clinical).name if clinical else None,
        "device": device,
        "features_config": str(features_config) if features_config else None,
    }
    cfg = load_config(str(features_config) if features_config else None)
    clin = read_clinical(clinical)

    def stage(name: str, n: int, fn: Callable[[], Any]) -> Any:
        say(f"[{n}/6] {name} ...")
        t = time.perf_counter()
        try:
            return fn()
        finally:
            timings[name] = time.perf_counter() - t

    messages: list[str] = []
    loaded = None
    try:
        from pipeline.io import open_study

        loaded = stage("load", 1, lambda: open_study(src, modality=modality))  # type: ignore[arg-type]
    except SpinemetError as exc:
        if exc.code == "INPUT_NOT_FOUND":
            raise
        messages.append(f"the input could not be loaded [{exc.code}]: {exc.message}")
        return _write_unassessable(out_dir, src, options, device, timings, messages, say)
    messages += [str(getattr(w, "message", w)) for w in loaded.warnings]
    role, vol, escc_role = _choose(loaded.volumes)

    seg_kw: dict[str, Any] = (
        {"path": labels, "class_map": class_map}
        if segmenter == "labels"
        else ({"model": model} if model is not None else {})
    )

    def segment_series(volume: Volume, graded: bool) -> Any:
        """Segment one series; the built-in model refines the bone lesions of a CT or a
        sagittal MR and the canal of the graded series."""
        from pipeline.segment import get_segmenter

        backend = get_segmenter(segmenter, device=device, **seg_kw)
        out = backend.segment(volume)
        if segmenter == "builtin":  # CT, or a sagittal MR (the card says which)
            out = backend.refine_lesions(volume, out)  # type: ignore[attr-defined]
        if graded and segmenter == "builtin":
            out = backend.refine_canal(volume, out)  # type: ignore[attr-defined]
        return out

    def do_segment() -> Any:
        if segmenter == "labels" and labels is None:
            raise InputError("LABELS_NEEDED", "--segmenter labels needs --labels PATH")
        return segment_series(vol, graded=escc_role is None)

    seg = stage("segment", 2, do_segment)
    seg_meta = dict(getattr(seg, "meta", {}) or {})
    dev_used = str(seg_meta.get("device", device if segmenter == "builtin" else "cpu"))
    if getattr(seg, "numbering_uncertain", False):
        messages.append(
            "vertebra numbering is uncertain (no sacrum/C2 anchor or partial coverage): check the levels"
        )
    messages += [str(w) for w in seg_meta.get("warnings", [])]
    les = seg_meta.get("lesion_refine") or {}
    if les.get("applied"):  # where lesions come from, and what its gate left out
        messages.append(f"{les.get('model')}: {les.get('note')}")

    # The series (and its structures) the Bilsky grade was read on, when not the primary:
    # the report's axial picture is drawn from it.
    escc_view: dict[str, Any] = {}

    def do_features() -> ImagingFeatures:
        f = extract_features(
            vol, seg.vertebrae, seg.structures, seg.parts, escc_source=role, config=cfg
        )
        _say_canal_refined(f, seg)
        if escc_role is not None and segmenter == "builtin":
            ax = loaded.volumes[escc_role]
            aseg = segment_series(ax, graded=True)
            seg_meta["escc_series"] = {
                "role": escc_role,
                **{k: aseg.meta[k] for k in ("model", "canal_refine", "timings") if k in aseg.meta},
            }
            fa = extract_features(
                ax, aseg.vertebrae, aseg.structures, aseg.parts, escc_source=escc_role, config=cfg
            )
            if fa.escc.provenance != "not_assessable":
                f.escc = fa.escc
                clash = adopt_numbering(fa, f) if f.modality == "CT" else numbering_check(fa, f)
                if clash:
                    f.escc.why += f"; {clash}"
                    f.messages.append(clash)
                _say_canal_refined(f, aseg)
                escc_view["image"], escc_view["structures"] = ax, aseg.structures.array
        return f

    features = stage("features", 3, do_features)
    if not features.vertebrae:
        messages.append("no vertebra was found in the field of view: the study cannot be assessed")
    scores: dict[str, Any] = {}
    inputs: dict[str, Any] | None = None
    index = None
    per_v: dict[str, Any] = {}
    entered: list[str] = []
    if features.vertebrae:
        scores, inputs, index, per_v, entered = stage("score", 4, lambda: _score(features, clin))
    else:
        timings["score"] = 0.0
    from pipeline.report import build_report

    study = _study_info(role, vol, loaded, seg_meta, src)
    if getattr(seg, "level_confidence", None):
        study["level_confidence"] = {k: round(float(v), 3) for k, v in seg.level_confidence.items()}
        study["numbering_uncertain"] = bool(seg.numbering_uncertain)
    report = build_report(
        features,
        study=study,
        scores=scores,
        scoring_inputs=inputs,
        index_level=index,
        per_vertebra_scores=per_v,
        clinical_entered=entered,
        messages=messages,
    )

    def do_write() -> list[str]:
        from pipeline.io.nifti import write_nifti

        files = []
        for name in L.NATIVE_LABELS:
            lab = getattr(seg, name)
            write_nifti(lab, out_dir / f"{name}.nii.gz", dtype=np.uint8)  # codes < 256
            files.append(f"{name}.nii.gz")
        files += _write_report_files(
            out_dir, report, vol, seg, features, write_images, escc_view or None
        )
        return files

    files = stage("write", 5, do_write)
    say("[6/6] done")
    info = _write_run_json(
        out_dir,
        src,
        options,
        dev_used,
        timings,
        files,
        seg_meta,
        "ok" if report["assessable"] else "not_assessable",
    )
    say(f"report: {out_dir / 'report.html'}")
    return RunResult(out_dir, report, info, bool(report["assessable"]), files + ["run.json"])


def _report_bytes(report: dict[str, Any]) -> bytes:
    return (json.dumps(report, indent=2, ensure_ascii=False, allow_nan=False) + "\n").encode(
        "utf-8"
    )


def _write_report_files(
    out_dir: Path,
    report: dict[str, Any],
    vol: Volume | None,
    seg: Any,
    features: ImagingFeatures | None,
    images: bool,
    escc_view: dict[str, Any] | None = None,
) -> list[str]:
    """report.json and report.html; the axial picture from ``escc_view`` when given."""
    from pipeline.report import axial_png, render_html, sagittal_png

    (out_dir / "report.json").write_bytes(_report_bytes(report))
    sag = ax = None
    if (
        images
        and vol is not None
        and seg is not None
        and features is not None
        and features.vertebrae
    ):
        sag = sagittal_png(
            vol,
            seg.vertebrae.array,
            seg.structures.array,
            set(features.involved_levels),
            features.escc.worst_level,
        )
        if features.escc.worst_plane:
            ax_img, ax_st = (
                (escc_view["image"], escc_view["structures"])
                if escc_view
                else (vol, seg.structures.array)
            )
            ax = axial_png(ax_img, ax_st, features.escc.worst_plane)
    (out_dir / "report.html").write_text(render_html(report, sag, ax), encoding="utf-8")
    return ["report.json", "report.html"]


def _write_run_json(
    out_dir: Path,
    src: Path,
    options: dict[str, Any],
    device: str,
    timings: dict[str, float],
    files: list[str],
    seg_meta: dict[str, Any],
    status: str,
) -> dict[str, Any]:
    from pipeline.report import build_run_info

    rep = out_dir / "report.json"
    sha = hashlib.sha256(rep.read_bytes()).hexdigest() if rep.exists() else None
    clean_meta = json.loads(json.dumps(seg_meta, default=str))
    info = build_run_info(
        input_path=str(src),
        options=options,
        device=device,
        timings=timings,
        outputs=files,
        segmenter_meta=clean_meta,
        status=status,
        report_sha256=sha,
    )
    (out_dir / "run.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return info


def _write_unassessable(
    out_dir: Path,
    src: Path,
    options: dict[str, Any],
    device: str,
    timings: dict[str, float],
    messages: list[str],
    say: Progress,
) -> RunResult:
    from pipeline.report import build_report

    report = build_report(
        None, study={"input_kind": "unknown"}, messages=messages, assessable=False
    )
    files = _write_report_files(out_dir, report, None, None, None, False)
    info = _write_run_json(out_dir, src, options, device, timings, files, {}, "not_assessable")
    for m in messages:
        say(f"not assessable: {m}")
    say(f"report: {out_dir / 'report.html'}")
    return RunResult(out_dir, report, info, False, files + ["run.json"])
