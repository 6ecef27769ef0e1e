"""Tomita score (Tomita 2001), pure functions.

Primary growth 1/2/4, visceral metastases 0/2/4, bone metastases 1/2; total 2-10;
bands 2-3 / 4-5 / 6-7 / 8-10 with treatment goal and surgical strategy. Only the six
printed histologies (breast, thyroid; kidney, uterus; lung, stomach) are mapped; any
other needs an explicit, clinician-confirmed growth category (``HISTOLOGY_UNMAPPED``).
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.scoring import histology as hist
from pipeline.scoring.base import Component, ScoreResult, ScoringError
from pipeline.scoring.intervals import common_band, reachable_sums
from pipeline.scoring.tables import Tables

SYSTEM = "tomita"


@dataclass(frozen=True)
class TomitaInput:
    """``visceral``: none / treatable / untreatable / present; ``bone``: solitary / multiple."""

    histology: str | None = None
    growth: str | None = None
    visceral: str | None = None
    bone: str | None = None


def growth_of(histology: str, tables: Tables) -> str | None:
    """Printed growth category of a histology term, or None when Tomita does not list it."""
    name = hist.canonical(histology, tables)
    if name is None:
        return None
    site = hist.site(name, tables)
    for cat, row in tables.raw["tomita"]["growth"].items():
        if site in row["histologies"]:
            return str(cat)
    return None


def _enum_item(
    name: str, value: str | None, table: dict, flags: set[str], present: tuple[str, ...] = ()
) -> Component:
    if value is None:
        flags.add(f"INCOMPLETE_{name.upper()}_MISSING")
        opts = tuple(sorted({int(r["points"]) for r in table.values()}))
        return Component(
            SYSTEM,
            name,
            opts,
            None,
            f"{name} missing: any of {list(opts)}",
            next(iter(table.values()))["source"],
        )
    if value == "present" and present:
        flags.add(f"INCOMPLETE_{name.upper()}_MISSING")
        opts = tuple(sorted({int(table[p]["points"]) for p in present}))
        return Component(
            SYSTEM,
            name,
            opts,
            value,
            f"{name} present, treatability unknown: any of {list(opts)}",
            table[present[0]]["source"],
        )
    if value not in table:
        raise ScoringError(
            "INVALID_VALUE", f"tomita.{name} must be one of {list(table)}, got {value!r}"
        )
    r = table[value]
    return Component(
        SYSTEM, name, (int(r["points"]),), value, f"{name} {value} -> {r['points']}", r["source"]
    )


def score_tomita(inp: TomitaInput, tables: Tables) -> ScoreResult:
    """Score Tomita; raises ``HISTOLOGY_UNMAPPED`` for unlisted histology without ``growth``."""
    cfg = tables.raw["tomita"]
    flags: set[str] = set()
    growth_tbl = cfg["growth"]
    if inp.growth is not None:
        if inp.growth not in growth_tbl:
            raise ScoringError(
                "INVALID_VALUE",
                f"tomita.growth must be one of {list(growth_tbl)}, got {inp.growth!r}",
            )
        r = growth_tbl[inp.growth]
        printed = growth_of(inp.histology, tables) if inp.histology else None
        note = "" if printed in (None, inp.growth) else f" (overrides printed '{printed}')"
        g = Component(
            SYSTEM,
            "primary_growth",
            (int(r["points"]),),
            inp.growth,
            f"growth {inp.growth} given explicitly{note} -> {r['points']}",
            r["source"],
        )
    elif inp.histology is not None:
        cat = growth_of(inp.histology, tables)
        if cat is None:
            raise ScoringError(
                "HISTOLOGY_UNMAPPED",
                f"Tomita prints growth categories only for breast, thyroid, kidney, uterus, lung "
                f"and stomach; give tomita.growth (slow/moderate/rapid) for {inp.histology!r}",
            )
        r = growth_tbl[cat]
        g = Component(
            SYSTEM,
            "primary_growth",
            (int(r["points"]),),
            inp.histology,
            f"{inp.histology}: {cat} growth -> {r['points']}",
            r["source"],
        )
    else:
        flags.add("INCOMPLETE_PRIMARY_MISSING")
        opts = tuple(sorted({int(r["points"]) for r in growth_tbl.values()}))
        g = Component(
            SYSTEM,
            "primary_growth",
            opts,
            None,
            f"histology missing: any of {list(opts)}",
            "tomita2001",
        )
    comps = [
        g,
        _enum_item(
            "visceral", inp.visceral, cfg["visceral"], flags, present=("treatable", "untreatable")
        ),
        _enum_item("bone", inp.bone, cfg["bone"], flags),
    ]
    totals = reachable_sums([c.options for c in comps])
    band = common_band(totals, cfg["bands"])
    return ScoreResult(
        SYSTEM,
        comps,
        totals,
        band["name"] if band else None,
        flags,
        extra={"surgery": band["surgery"] if band else None},
    )
