"""Ground truth of a synthetic study, in the ``truth.json`` schema of :mod:`pipeline.schema`.

Values come from the plan and the continuous world, never from a sampled grid:
volumes and involvement fractions are integrated on a fine local grid (0.4 mm) of the
analytic shapes; collapse, translation and angulation are the construction parameters.
"""

from __future__ import annotations

from typing import Any

from pipeline.labels import BODY, level_name
from pipeline.schema import SCHEMA_VERSION, validate_report
from pipeline.synth import config as C
from pipeline.synth.generator import Plan
from pipeline.synth.world import World, body_involvement, lesion_volume_ml


def _lesion_quality(kinds: set[str]) -> str | None:
    if not kinds:
        return None
    if kinds == {"lytic"}:
        return "lytic"
    if kinds == {"blastic"}:
        return "blastic"
    return "mixed"


def collapse_category(collapse_pct: float, involvement_pct: float) -> str:
    """SINS collapse category from the true numbers (SCORING.md 1.5: collapse first)."""
    if collapse_pct > C.COLLAPSE_THRESHOLD_PCT:
        return "gt50"
    if collapse_pct > 0:
        return "lt50"
    if involvement_pct > C.INVOLVEMENT_THRESHOLD_PCT:
        return "no_collapse_gt50_involved"
    return "none"


def build_truth(world: World, plan: Plan, study: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``truth.json`` document for ``world``/``plan`` (validated against the schema)."""
    lay = world.layout
    levels = [level_name(n) for n in plan.numbers]
    verts = []
    for n in plan.numbers:
        les = [le for le in world.lesions if le.number == n]
        kinds = {le.kind for le in les}
        involved = bool(les)
        inv = body_involvement(world, n)
        vol = lesion_volume_ml(world, n)
        g = lay.vertebrae[n]
        collapse_pct = 100.0 * g.collapse
        trans = float(lay.translation.get(n, 0.0))
        kyph = float(lay.kyphosis.get(n, 0.0))
        scol = float(lay.scoliosis.get(n, 0.0))
        if abs(trans) >= C.TRANSLATION_THRESHOLD_MM:
            alignment = "subluxation_translation"
        elif max(abs(kyph), abs(scol)) >= C.DEFORMITY_THRESHOLD_DEG:
            alignment = "de_novo_deformity"
        else:
            alignment = "normal"
        sides = {le.site for le in les if le.site in ("pedicle_left", "pedicle_right")}
        postero = {0: "none", 1: "unilateral", 2: "bilateral"}[len(sides)]
        name = level_name(n)
        verts.append(
            {
                "level": name,
                "label": int(n),
                "involved": involved,
                # where the report puts it too (schema 1.1): levels are matched by position
                "body_centre_lps": [round(float(c), 3) for c in g.centre],
                "sins": {
                    "levels": [name],
                    "lesion": _lesion_quality(kinds),
                    "alignment": alignment,
                    "collapse": collapse_category(collapse_pct, inv),
                    "posterolateral": postero,
                },
                "measurements": {
                    "lesion_volume_ml": round(vol, 3),
                    "body_involvement_pct": round(inv, 2),
                    "collapse_pct": round(collapse_pct, 2),
                    "collapse_shape": ("wedge" if g.wedge else "uniform")
                    if g.collapse > 0
                    else None,
                    "translation_mm": round(trans, 2),
                    "kyphosis_deg": round(kyph, 2),
                    "scoliosis_deg": round(scol, 2),
                    "lesion_sites": sorted({le.site for le in les}),
                    "alignment_segment": f"{name}-{level_name(plan.numbers[plan.numbers.index(n) + 1])}"
                    if alignment != "normal"
                    else None,
                },
                "provenance": {
                    k: "truth"
                    for k in ("lesion", "alignment", "collapse", "posterolateral", "involved")
                },
            }
        )
    per_level = {level_name(n): "0" for n in plan.numbers}
    escc_meas: dict[str, Any] = {}
    worst_level, worst_grade = None, "0"
    for e in world.epidurals:
        name = level_name(e.number)
        per_level[name] = e.grade
        worst_level, worst_grade = name, e.grade
        escc_meas[name] = {
            "plateau_half_length_mm": round(e.plateau, 2),
            "taper_mm": round(e.taper, 2),
            "sac_indentation_mm": round(e.d_1b, 2) if e.grade == "1b" else None,
            "cord_ap_factor": round(e.kv, 3),
            "cord_width_factor": round(e.ku, 3),
            "posterior_csf_mm": round(e.p_csf, 2) if e.grade == "2" else None,
            "worst_section_arc_mm": round(e.w0, 2),
        }
    doc: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "kind": "truth",
        "study": study or {},
        "assessable": True,
        "messages": [],
        "levels": levels,
        "escc": {
            "worst_level": worst_level,
            "worst_grade": worst_grade,
            "per_level": per_level,
            "provenance": "truth",
            "measurements": escc_meas,
        },
        "vertebrae": verts,
        "summary": {
            "plan": plan.as_dict(),
            "thresholds": {
                "translation_mm": C.TRANSLATION_THRESHOLD_MM,
                "deformity_deg": C.DEFORMITY_THRESHOLD_DEG,
                "involvement_pct": C.INVOLVEMENT_THRESHOLD_PCT,
                "collapse_pct": C.COLLAPSE_THRESHOLD_PCT,
            },
            "conus_below_level": None,
        },
        "scores": {},
    }
    validate_report(doc)
    return doc


__all__ = ["BODY", "body_involvement", "build_truth", "collapse_category", "lesion_volume_ml"]
