"""Build ``report.json`` (schema :mod:`pipeline.schema`) from features and scores.

The document holds no timestamps, paths of the output folder or host names, so the same
input and configuration give identical content (run-specific facts go to ``run.json``).
"""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import Any

from pipeline.features.types import ImagingFeatures, VertebraFeatures
from pipeline.schema import SCHEMA_VERSION, validate_report

RESEARCH_NOTICE = (
    "Research use only. Not a medical device; not for diagnosis or treatment decisions. "
    "Every finding must be checked on the images by a qualified reader."
)

SINS_COMPONENT_POINTS = {
    "lesion": {"lytic": 2, "mixed": 1, "blastic": 0},
    "alignment": {"subluxation_translation": 4, "de_novo_deformity": 2, "normal": 0},
    "collapse": {"gt50": 3, "lt50": 2, "no_collapse_gt50_involved": 1, "none": 0},
    "posterolateral": {"bilateral": 3, "unilateral": 1, "none": 0},
}
LOCATION_POINTS = {"junctional": 3, "mobile": 2, "semirigid": 1, "rigid": 0}


def _clean(x: Any) -> Any:
    """JSON-safe copy: finite floats rounded, tuples as lists, numpy scalars as Python."""
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if hasattr(x, "item") and not isinstance(x, (str, bytes)):
        x = x.item()
    if isinstance(x, float):
        if not math.isfinite(x):
            return None
        return round(x, 4)
    return x


def imaging_subscore(v: VertebraFeatures) -> tuple[int, int]:
    """SINS imaging points (location + lesion + alignment + collapse + posterolateral) as a range.

    Components not assessable contribute their full range (interval arithmetic).
    """
    lo = hi = 0
    loc = LOCATION_POINTS.get(v.location.value) if v.location.value else None
    lo += loc if loc is not None else 0
    hi += loc if loc is not None else 3
    for comp, table in SINS_COMPONENT_POINTS.items():
        f = getattr(v, comp)
        if f.value in table:
            lo += table[f.value]
            hi += table[f.value]
        else:
            hi += max(table.values())
    return lo, hi


def pick_index_vertebra(features: ImagingFeatures) -> VertebraFeatures | None:
    """The involved vertebra whose lesion SINS is scored: highest imaging subscore.

    Ties go to the worst Bilsky level, then to the most cranial vertebra.
    """
    inv = [v for v in features.vertebrae if v.involved]
    if not inv:
        return None
    worst = features.escc.worst_level

    def key(iv: tuple[int, VertebraFeatures]) -> tuple[int, int, int, int]:
        i, v = iv
        lo, hi = imaging_subscore(v)
        return (lo, hi, int(v.level == worst), -i)

    return max(enumerate(inv), key=key)[1]


def vertebra_entry(v: VertebraFeatures) -> dict[str, Any]:
    """One ``vertebrae[]`` entry of the report."""
    level = "sacrum" if v.level == "S" else v.level
    return {
        "level": level,
        "label": v.label,
        "involved": v.involved,
        "partly_in_view": v.partly_in_view,
        "sins": {
            "levels": [level],
            "location": v.location.value,
            "lesion": v.lesion.value,
            "alignment": v.alignment.value,
            "collapse": v.collapse.value,
            "posterolateral": v.posterolateral.value,
        },
        "imaging_subscore_range": list(imaging_subscore(v)),
        "measurements": _clean(v.measurements),
        "body_centre_lps": (
            [round(float(c), 2) for c in v.body_centre_lps] if v.body_centre_lps else None
        ),
        "provenance": dict(v.provenance),
        "why": dict(v.why),
    }


def build_report(
    features: ImagingFeatures | None,
    *,
    study: dict[str, Any],
    scores: dict[str, Any] | None = None,
    scoring_inputs: dict[str, Any] | None = None,
    index_level: str | None = None,
    per_vertebra_scores: dict[str, Any] | None = None,
    clinical_entered: list[str] | None = None,
    messages: list[str] | None = None,
    assessable: bool = True,
) -> dict[str, Any]:
    """Assemble and validate the report document.

    Parameters
    ----------
    features : ImagingFeatures or None
        None when the study could not be assessed (``assessable`` False).
    study : dict
        Non-identifying description of the input (modality, series, grid, segmenter).
    scores : dict, optional
        Output of :func:`pipeline.scoring.score_case` for the index lesion.
    scoring_inputs : dict, optional
        What was sent to the scoring engine (imaging + clinical record).
    index_level : str, optional
        The vertebra whose SINS is reported in ``scores``.
    per_vertebra_scores : dict, optional
        Level -> compact SINS result of every involved vertebra.
    clinical_entered : list of str, optional
        Dotted paths where the clinician's value replaced an imaging value.
    messages : list of str, optional
        What the user should know (missing inputs, fallbacks).
    """
    msgs = list(messages or [])
    doc: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "kind": "report",
        "notice": RESEARCH_NOTICE,
        "study": _clean(study),
        "assessable": bool(assessable and features is not None and features.vertebrae),
    }
    if features is None or not features.vertebrae:
        doc.update(
            {
                "messages": msgs or ["no vertebra found: the study cannot be assessed"],
                "levels": [],
                "escc": {
                    "worst_level": None,
                    "worst_grade": None,
                    "per_level": {},
                    "provenance": "not_assessable",
                    "why": "no spine segmented",
                },
                "vertebrae": [],
                "summary": {"involved_count": 0, "involved_levels": [], "segments": []},
                "scores": {},
            }
        )
        validate_report(doc)
        return doc
    e = features.escc
    escc: dict[str, Any] = {
        "worst_level": e.worst_level,
        "worst_grade": e.worst_grade,
        "per_level": dict(e.per_level),
        "provenance": e.provenance,
        "why": e.why,
        "measurements": _clean(
            {
                "worst_slice": asdict(e.worst_slice) if e.worst_slice else None,
                "reference": e.reference,
                "n_slices_graded": len(e.slices),
            }
        ),
    }
    if e.worst_plane:
        escc["worst_plane_lps"] = _clean(e.worst_plane)
    doc.update(
        {
            "messages": msgs + list(features.messages),
            "levels": ["sacrum" if lv == "S" else lv for lv in features.levels],
            "escc": escc,
            "vertebrae": [vertebra_entry(v) for v in features.vertebrae],
            "summary": {
                "modality": features.modality,
                "involved_count": len(features.involved_levels),
                "involved_levels": list(features.involved_levels),
                "segments": [list(s) for s in features.segments],
                "index_level": index_level,
            },
            "scores": _clean(scores or {}),
        }
    )
    if scoring_inputs is not None:
        doc["scoring_inputs"] = _clean(scoring_inputs)
    if per_vertebra_scores:
        doc["per_vertebra_scores"] = _clean(per_vertebra_scores)
    doc["clinical_entered"] = list(clinical_entered or [])
    validate_report(doc)
    return doc
