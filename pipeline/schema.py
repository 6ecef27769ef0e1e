"""The versioned schema of ``report.json`` and ``truth.json``.

``truth.json`` (written by ``pipeline.synth`` for synthetic studies) and ``report.json``
(written by ``spinemet run``) share this schema so that evaluation is a field-by-field
comparison. The SINS vocabulary is that of ``shared/clinical/scoring_cases.json``:

* ``sins.lesion``: ``lytic`` | ``mixed`` | ``blastic`` | null (not involved / not assessable)
* ``sins.alignment``: ``subluxation_translation`` | ``de_novo_deformity`` | ``normal``
* ``sins.collapse``: ``gt50`` | ``lt50`` | ``no_collapse_gt50_involved`` | ``none``
* ``sins.posterolateral``: ``bilateral`` | ``unilateral`` | ``none``
* Bilsky grades: ``"0"``, ``"1a"``, ``"1b"``, ``"1c"``, ``"2"``, ``"3"``.

Every vertebra carries ``provenance``: for each reported feature, one of
``measured`` (from the image), ``estimated`` (from the image, with a method of known
lower reliability, e.g. ESCC on CT), ``not_assessable`` (with a reason), or ``truth``
(synthetic ground truth by construction).

Bump ``SCHEMA_VERSION`` on any incompatible change and describe it in ``docs/``.
"""

from __future__ import annotations

from typing import Any

import jsonschema

from pipeline.errors import SpinemetError

SCHEMA_VERSION = "1.1"

GRADES = ["0", "1a", "1b", "1c", "2", "3"]
LEVEL_PATTERN = r"^(C[1-7]|T([1-9]|1[0-3])|L[1-6]|S[1-5]?|sacrum)$"

_nullable_str = {"type": ["string", "null"]}
_num = {"type": ["number", "null"]}
_provenance = {"enum": ["measured", "estimated", "not_assessable", "truth", "entered", "missing"]}

REPORT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "spinemet report / truth",
    "type": "object",
    "required": ["schema_version", "levels", "escc", "vertebrae"],
    "properties": {
        "schema_version": {"const": SCHEMA_VERSION},
        "kind": {"enum": ["report", "truth"]},
        "study": {"type": "object"},
        "assessable": {"type": "boolean"},
        "messages": {"type": "array", "items": {"type": "string"}},
        "levels": {"type": "array", "items": {"type": "string", "pattern": LEVEL_PATTERN}},
        "escc": {
            "type": "object",
            "required": ["worst_level", "worst_grade", "per_level"],
            "properties": {
                "worst_level": _nullable_str,
                "worst_grade": {"enum": [*GRADES, None]},
                "per_level": {
                    "type": "object",
                    "additionalProperties": {"enum": GRADES},
                },
                "provenance": _provenance,
                "measurements": {"type": "object"},
            },
        },
        "vertebrae": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["level", "involved", "sins"],
                "properties": {
                    "level": {"type": "string", "pattern": LEVEL_PATTERN},
                    "label": {"type": "integer"},
                    "involved": {"type": "boolean"},
                    "sins": {
                        "type": "object",
                        "required": ["levels", "lesion", "alignment", "collapse", "posterolateral"],
                        "properties": {
                            "levels": {"type": "array", "items": {"type": "string"}},
                            "location": {
                                "enum": ["junctional", "mobile", "semirigid", "rigid", None]
                            },
                            "lesion": {"enum": ["lytic", "mixed", "blastic", None]},
                            "alignment": {
                                "enum": [
                                    "subluxation_translation",
                                    "de_novo_deformity",
                                    "normal",
                                    None,
                                ]
                            },
                            "collapse": {
                                "enum": ["gt50", "lt50", "no_collapse_gt50_involved", "none", None]
                            },
                            "posterolateral": {"enum": ["bilateral", "unilateral", "none", None]},
                        },
                    },
                    "measurements": {
                        "type": "object",
                        "properties": {
                            "lesion_volume_ml": _num,
                            "body_involvement_pct": _num,
                            "collapse_pct": _num,
                            "translation_mm": _num,
                            "kyphosis_deg": _num,
                            "scoliosis_deg": _num,
                        },
                    },
                    "body_centre_lps": {
                        "type": ["array", "null"],
                        "items": {"type": "number"},
                        "minItems": 3,
                        "maxItems": 3,
                    },
                    "provenance": {"type": "object", "additionalProperties": _provenance},
                },
            },
        },
        "summary": {"type": "object"},
        "scores": {"type": "object"},
    },
}


def validate_report(doc: dict[str, Any]) -> None:
    """Validate a report/truth document, raising ``SpinemetError('REPORT_SCHEMA', ...)``."""
    try:
        jsonschema.validate(doc, REPORT_SCHEMA)
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "<root>"
        raise SpinemetError("REPORT_SCHEMA", f"{where}: {exc.message}") from exc
