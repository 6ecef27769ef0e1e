"""Modified Bauer score (Leithner 2008): four one-point items, total 0-4.

No visceral metastases; no lung cancer; primary breast, kidney, lymphoma or multiple
myeloma; one solitary skeletal metastasis (whole-skeleton count = 1). Bands 0-1 poor,
2 moderate, 3-4 good.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.scoring import histology as hist
from pipeline.scoring.base import Component, ScoreResult, ScoringError
from pipeline.scoring.intervals import common_band, reachable_sums
from pipeline.scoring.tables import Tables

SYSTEM = "mbauer"


@dataclass(frozen=True)
class BauerInput:
    """``skeletal_mets_total`` counts every skeletal metastasis (spine + elsewhere)."""

    primary: str | None = None
    visceral_mets: bool | None = None
    skeletal_mets_total: int | None = None


def score_bauer(inp: BauerInput, tables: Tables) -> ScoreResult:
    """Score the modified Bauer items; unknown items contribute {0, 1}."""
    items = tables.raw["modified_bauer"]["items"]
    flags: set[str] = set()
    comps: list[Component] = []

    def item(key: str, value: bool | None, label: str, why: str) -> None:
        row = items[key]
        if value is None:
            flags.add(f"INCOMPLETE_{why.upper()}_MISSING")
            comps.append(
                Component(
                    SYSTEM,
                    key,
                    (0, int(row["points"])),
                    None,
                    f"{label}: unknown -> 0 or {row['points']}",
                    row["source"],
                )
            )
        else:
            p = int(row["points"]) if value else 0
            comps.append(
                Component(
                    SYSTEM,
                    key,
                    (p,),
                    str(value).lower(),
                    f"{label}: {'yes' if value else 'no'} -> {p}",
                    row["source"],
                )
            )

    item(
        "no_visceral_mets",
        None if inp.visceral_mets is None else not inp.visceral_mets,
        "no visceral metastases",
        "visceral",
    )
    site: str | None = None
    if inp.primary is not None:
        name = hist.canonical(inp.primary, tables)
        if name is None:
            raise ScoringError(
                "HISTOLOGY_UNMAPPED", f"primary {inp.primary!r} is not in the histology vocabulary"
            )
        site = hist.site(name, tables)
    item("no_lung_cancer", None if site is None else site != "lung", "no lung cancer", "primary")
    fav = items["favourable_primary"]["histologies"]
    item(
        "favourable_primary",
        None if site is None else site in fav,
        "primary breast/kidney/lymphoma/myeloma",
        "primary",
    )
    n = inp.skeletal_mets_total
    if n is not None and n < 1:
        raise ScoringError(
            "NO_SPINAL_METASTASIS",
            f"skeletal_mets_total = {n}: at least the spinal metastasis counts",
        )
    item(
        "solitary_skeletal_met",
        None if n is None else n == 1,
        f"solitary skeletal metastasis (total {n})",
        "skeletal_mets_total",
    )
    totals = reachable_sums([c.options for c in comps])
    band = common_band(totals, tables.raw["modified_bauer"]["bands"])
    return ScoreResult(SYSTEM, comps, totals, band["name"] if band else None, flags)
