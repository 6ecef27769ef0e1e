"""Project imaging features into the scoring engine's input (the case-file format).

The imaging pipeline supplies what images show (SINS location, lesion, alignment,
collapse, posterolateral; the ESCC findings at the worst level; the number of involved
vertebrae); the clinician's record (YAML/JSON, all optional) supplies the rest. A value
the clinician entered wins over the image and is reported as ``entered``.
"""

from __future__ import annotations

import copy
from typing import Any

from pipeline.features.types import ImagingFeatures, VertebraFeatures

SINS_KEYS = ("lesion", "alignment", "collapse", "posterolateral")


def sins_block(v: VertebraFeatures) -> dict[str, Any]:
    """The ``sins`` input block of one vertebra (only what the image could assess)."""
    level = "sacrum" if v.level == "S" else v.level
    out: dict[str, Any] = {"levels": [level]}
    for k in SINS_KEYS:
        f = getattr(v, k)
        if f.provenance != "not_assessable" and f.value is not None:
            out[k] = f.value
    return out


def escc_features_block(features: ImagingFeatures) -> dict[str, Any] | None:
    """Booleans of the Bilsky decision at the worst slice (None when not assessable)."""
    e = features.escc
    if e.provenance == "not_assessable" or e.worst_grade is None:
        return None
    w = e.worst_slice
    if w is None or e.worst_grade == "0":
        return {
            "epidural_tumour": False,
            "thecal_sac_deformed": False,
            "cord_abutment": False,
            "cord_compressed": False,
            "csf_visible_around_cord": True,
        }
    csf = w.csf_ring_fraction is not None and w.grade != "3"
    return {
        "epidural_tumour": True,
        "thecal_sac_deformed": w.sac_deformed,
        "cord_abutment": w.cord_contact,
        "cord_compressed": w.cord_compressed,
        "csf_visible_around_cord": bool(csf),
    }


def _merge(
    base: dict[str, Any], over: dict[str, Any], path: str, entered: list[str]
) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in over.items():
        p = f"{path}.{k}" if path else k
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v, p, entered)
        else:
            if k in out and out[k] != v:
                entered.append(p)
            out[k] = copy.deepcopy(v)
    return out


def scoring_inputs(
    features: ImagingFeatures, index: VertebraFeatures | None, clinical: dict[str, Any] | None
) -> tuple[dict[str, Any], list[str]]:
    """Build the scoring-engine input for the study.

    Parameters
    ----------
    features : ImagingFeatures
    index : VertebraFeatures or None
        The vertebra whose lesion SINS is scored (None: no SINS block).
    clinical : dict or None
        The clinician's record in the case-file format.

    Returns
    -------
    inputs : dict
        Case-file ``inputs`` for :func:`pipeline.scoring.score_case`.
    overridden : list of str
        Dotted paths where an entered value replaced an imaging value.
    """
    img: dict[str, Any] = {}
    if index is not None:
        img["sins"] = sins_block(index)
    ef = escc_features_block(features)
    if ef is not None:
        img["escc_features"] = ef
    clin = copy.deepcopy(clinical or {})
    n_inv = len(features.involved_levels)
    if n_inv > 0:
        tok = clin.get("tokuhashi")
        if (
            not (isinstance(tok, dict) and "vertebral_body_mets" in tok)
            and "vertebral_body_mets" not in clin
        ):
            img.setdefault("tokuhashi", {})["vertebral_body_mets"] = n_inv
    noms = clin.get("noms")
    wants_noms = isinstance(noms, dict) or any(
        clin.get(k) is not None
        for k in ("histology", "primary", "radiosensitivity", "able_to_tolerate_surgery")
    )
    if wants_noms:
        if features.escc.worst_grade is not None and not (
            isinstance(noms, dict) and "escc" in noms
        ):
            img.setdefault("noms", {})["escc"] = features.escc.worst_grade
    overridden: list[str] = []
    merged = _merge(img, clin, "", overridden)
    return merged, overridden
