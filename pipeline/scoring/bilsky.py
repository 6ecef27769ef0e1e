"""Bilsky epidural spinal cord compression (ESCC) grade from observed features.

Grades "0" < "1a" < "1b" < "1c" < "2" < "3" (Bilsky 2010). Features that are unknown
(None) are enumerated over their consistent completions, so a missing CSF status with a
compressed cord gives {"2", "3"}: grade unknown, class (high-grade) known (SCORING.md 2).
Cord abutment or compression without deformation of the thecal sac is impossible (the
cord lies inside the sac) and is refused with ``CONTRADICTION_ESCC_FEATURES``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from pipeline.scoring.base import Component, ScoringError
from pipeline.scoring.tables import Tables

SYSTEM = "escc"
GRADES: tuple[str, ...] = ("0", "1a", "1b", "1c", "2", "3")
FEATURES: tuple[str, ...] = (
    "epidural_tumour",
    "thecal_sac_deformed",
    "cord_abutment",
    "cord_compressed",
    "csf_visible_around_cord",
)


@dataclass(frozen=True)
class EsccFeatures:
    """Observed features at the level of worst compression (None = not assessable)."""

    epidural_tumour: bool | None = None
    thecal_sac_deformed: bool | None = None
    cord_abutment: bool | None = None
    cord_compressed: bool | None = None
    csf_visible_around_cord: bool | None = None


@dataclass(frozen=True)
class EsccResult:
    """Grade (None when several remain possible), the possible grades and the class."""

    grade: str | None
    possible: tuple[str, ...]
    high_grade: bool | None
    flags: frozenset[str]
    components: tuple[Component, ...]


def _consistent(f: dict[str, bool]) -> bool:
    if not f["epidural_tumour"] and (
        f["thecal_sac_deformed"] or f["cord_abutment"] or f["cord_compressed"]
    ):
        return False
    if (f["cord_abutment"] or f["cord_compressed"]) and not f["thecal_sac_deformed"]:
        return False
    # compression implies contact with the cord
    return not (f["cord_compressed"] and not f["cord_abutment"])


def _grade(f: dict[str, bool]) -> str:
    if not f["epidural_tumour"]:
        return "0"
    if f["cord_compressed"]:
        return "2" if f["csf_visible_around_cord"] else "3"
    if f["cord_abutment"]:
        return "1c"
    if f["thecal_sac_deformed"]:
        return "1b"
    return "1a"


def is_high_grade(grade: str, tables: Tables) -> bool:
    """High-grade class for NOMS; 1c follows the ``escc_1c_class`` convention."""
    if grade == "1c":
        return tables.convention("escc_1c_class") == "high"
    return bool(tables.raw["escc"]["grades"][grade]["high_grade"])


def one_c_decides(possible: tuple[str, ...], tables: Tables) -> bool:
    """True when the 1c convention changes the low/high class of these possible grades."""
    if "1c" not in possible:
        return False
    other = tables.with_conventions(
        escc_1c_class="high" if tables.convention("escc_1c_class") == "low" else "low"
    )

    def cls(t: Tables) -> bool | None:
        vals = {is_high_grade(g, t) for g in possible}
        return vals.pop() if len(vals) == 1 else None

    return cls(tables) != cls(other)


def classify(possible: tuple[str, ...], tables: Tables) -> EsccResult:
    """Result for a set of possible grades (e.g. a grade measured by the imaging pipeline)."""
    for g in possible:
        if g not in GRADES:
            raise ScoringError(
                "INVALID_VALUE", f"ESCC grade must be one of {list(GRADES)}, got {g!r}"
            )
    possible = tuple(g for g in GRADES if g in possible)
    classes = {is_high_grade(g, tables) for g in possible}
    flags = {"ESCC_1C_CONTROVERSIAL"} if one_c_decides(possible, tables) else set()
    grade = possible[0] if len(possible) == 1 else None
    grades_cfg = tables.raw["escc"]["grades"]
    comps: list[Component] = []
    for g in possible:
        src = tables.convention_source("escc_1c_class") if g == "1c" else grades_cfg[g]["source"]
        cls = "high-grade" if is_high_grade(g, tables) else "low-grade"
        comps.append(
            Component(
                SYSTEM,
                "grade",
                (GRADES.index(g),),
                g,
                f"ESCC {g}: {grades_cfg[g]['definition']} ({cls})",
                src,
            )
        )
    return EsccResult(
        grade,
        possible,
        classes.pop() if len(classes) == 1 else None,
        frozenset(flags),
        tuple(comps),
    )


def grade_escc(features: EsccFeatures, tables: Tables) -> EsccResult:
    """Grade from features; unknown features are enumerated over consistent completions."""
    known = {k: getattr(features, k) for k in FEATURES}
    unknown = [k for k, v in known.items() if v is None]
    possible: set[str] = set()
    for combo in itertools.product((False, True), repeat=len(unknown)):
        f = {**known, **dict(zip(unknown, combo, strict=True))}
        if _consistent(f):
            possible.add(_grade(f))
    if not possible:
        raise ScoringError(
            "CONTRADICTION_ESCC_FEATURES",
            "ESCC features are inconsistent (cord abutment/compression requires a deformed thecal "
            "sac and epidural tumour; compression requires contact with the cord)",
        )
    res = classify(tuple(possible), tables)
    if len(res.possible) > 1:
        missing = {f"INCOMPLETE_{k.upper()}_MISSING" for k in unknown}
        return EsccResult(
            res.grade, res.possible, res.high_grade, res.flags | missing, res.components
        )
    return res
