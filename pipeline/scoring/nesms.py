"""New England Spinal Metastasis Score (Ghori 2015 / Schoenfeld 2016).

2 points for modified Bauer >= 3, 1 for intact (independent) ambulation, 1 for serum
albumin >= 3.5 g/dL; total = min(sum, 3) (SCORING.md 6.2: the raw sum is kept too). A
missing item is enumerated; the capped total is reported whenever every completion
gives the same value (e.g. mBauer >= 3 and ambulatory: 3 whatever the albumin).
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.scoring.base import Component, ScoreResult, ScoringError
from pipeline.scoring.intervals import map_reachable, reachable_sums
from pipeline.scoring.tables import Tables

SYSTEM = "nesms"


@dataclass(frozen=True)
class NesmsInput:
    """``mbauer_ge3`` may be a set of possibilities when mBauer is itself a range."""

    mbauer_ge3: bool | None = None
    ambulatory_independent: bool | None = None
    albumin_g_dl: float | None = None
    albumin_ge_3_5: bool | None = None


def albumin_ok(inp: NesmsInput, tables: Tables) -> bool | None:
    """Whether albumin >= threshold (g/dL); conflicting inputs are refused."""
    thr = float(tables.raw["nesms"]["items"]["albumin_ge_3_5_g_dl"]["threshold_g_dl"])
    if inp.albumin_g_dl is None:
        return inp.albumin_ge_3_5
    ok = inp.albumin_g_dl >= thr
    if inp.albumin_ge_3_5 is not None and inp.albumin_ge_3_5 != ok:
        raise ScoringError(
            "CONTRADICTION_ALBUMIN", "albumin_ge_3_5_g_dl disagrees with albumin_g_dl"
        )
    return ok


def score_nesms(inp: NesmsInput, tables: Tables) -> ScoreResult:
    """Score NESMS; ``reachable`` holds capped totals, ``extra['raw']`` the raw sums."""
    cfg = tables.raw["nesms"]
    items = cfg["items"]
    flags: set[str] = set()
    comps: list[Component] = []
    thr = items["albumin_ge_3_5_g_dl"]["threshold_g_dl"]
    alb = albumin_ok(inp, tables)
    spec = [
        ("modified_bauer_ge3", inp.mbauer_ge3, "modified Bauer >= 3", "MODIFIED_BAUER"),
        (
            "ambulatory_independent",
            inp.ambulatory_independent,
            "independent ambulation",
            "AMBULATORY",
        ),
        (
            "albumin_ge_3_5_g_dl",
            alb,
            f"albumin >= {thr} g/dL"
            + (f" ({inp.albumin_g_dl:g} g/dL)" if inp.albumin_g_dl is not None else ""),
            "ALBUMIN",
        ),
    ]
    for key, value, label, flag in spec:
        row = items[key]
        pts = int(row["points"])
        if value is None:
            flags.add(f"INCOMPLETE_{flag}_MISSING")
            comps.append(
                Component(
                    SYSTEM, key, (0, pts), None, f"{label}: unknown -> 0 or {pts}", row["source"]
                )
            )
        else:
            p = pts if value else 0
            comps.append(
                Component(
                    SYSTEM,
                    key,
                    (p,),
                    str(bool(value)).lower(),
                    f"{label}: {'yes' if value else 'no'} -> {p}",
                    row["source"],
                )
            )
    raw = reachable_sums([c.options for c in comps])
    ceiling = int(tables.convention("nesms_ceiling"))
    capped = map_reachable(raw, lambda t: min(t, ceiling))
    comps.append(
        Component(
            SYSTEM,
            "ceiling",
            (0,),
            str(ceiling),
            f"total = min(raw sum, {ceiling})",
            cfg["ceiling"]["source"],
        )
    )
    return ScoreResult(SYSTEM, comps, capped, None, flags, extra={"raw": raw})
