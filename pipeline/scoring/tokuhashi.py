"""Revised Tokuhashi score (Tokuhashi 2005, NICE CG75 reproduction), pure functions.

Six items, total 0-15; bands 0-8 (< 6 months, conservative), 9-11 (>= 6 months,
palliative surgery; excisional surgery may be considered for a single lesion without
major-organ metastases), 12-15 (>= 1 year, excisional surgery). KPS is required in steps of
10; ECOG is converted only through a named mapping (SCORING.md 7.3), and ambiguity is
carried as a set of points, never guessed.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.scoring import histology as hist
from pipeline.scoring import performance as ps
from pipeline.scoring.base import Component, ScoreResult, ScoringError, missing_component
from pipeline.scoring.intervals import common_band, reachable_sums
from pipeline.scoring.tables import Tables

SYSTEM = "tokuhashi"
VISCERAL = ("none", "removable", "unremovable")


@dataclass(frozen=True)
class TokuhashiInput:
    """Canonical facts projected into the Tokuhashi items.

    ``visceral`` is ``none`` / ``removable`` / ``unremovable`` or ``present`` (removability
    unknown); ``primary`` is a histology term (or ``others``); ``frankel_from_asia`` marks a
    Frankel grade substituted from ASIA.
    """

    kps: int | None = None
    ecog: int | None = None
    ecog_mapping: str | None = None
    extraspinal_bone_mets: int | None = None
    vertebral_body_mets: int | None = None
    visceral: str | None = None
    primary: str | None = None
    frankel: str | None = None
    frankel_from_asia: bool = False


def _count_row(rows: list[dict], n: int) -> dict:
    for r in rows:
        if r["min"] <= n and (r["max"] is None or n <= r["max"]):
            return r
    raise ScoringError("INVALID_VALUE", f"count {n} matches no Tokuhashi category")


def _count_item(name: str, n: int | None, rows: list[dict], flags: set[str]) -> Component:
    if n is None:
        pts = (r["points"] for r in rows)
        return missing_component(SYSTEM, name, pts, f"{name} missing", rows[0]["source"], flags)
    r = _count_row(rows, n)
    hi = "+" if r["max"] is None else ("" if r["max"] == r["min"] else f"-{r['max']}")
    return Component(
        SYSTEM,
        name,
        (int(r["points"]),),
        str(n),
        f"{name} = {n} (category {r['min']}{hi}) -> {r['points']}",
        r["source"],
    )


def primary_points(primary: str, tables: Tables) -> tuple[int, str, str]:
    """(points, site group, source) of a histology term; raises HISTOLOGY_UNMAPPED."""
    rows = tables.raw["tokuhashi"]["primary"]
    if hist.normalise_term(primary) == "others":
        site = "others"
    else:
        name = hist.canonical(primary, tables)
        if name is None:
            raise ScoringError(
                "HISTOLOGY_UNMAPPED",
                f"primary {primary!r} is not in the histology vocabulary; give a listed site "
                "or 'others' (Tokuhashi primary site)",
            )
        site = hist.site(name, tables)
    for r in rows:
        if site in r["sites"]:
            return int(r["points"]), site, str(r["source"])
    parts = tables.raw["histology"].get(site, {}).get("includes", [])
    hint = f" (say which of {', '.join(parts)}: their points differ)" if parts else ""
    raise ScoringError(
        "HISTOLOGY_UNMAPPED", f"primary site {site!r} has no Tokuhashi category{hint}"
    )


def general_condition(inp: TokuhashiInput, tables: Tables, flags: set[str]) -> Component:
    """General-condition item from KPS, or from ECOG through a named mapping."""
    rows = tables.raw["tokuhashi"]["general_condition"]

    def pts(kps: int) -> dict:
        return next(r for r in rows if r["kps_min"] <= kps <= r["kps_max"])

    if inp.kps is not None:
        k = ps.check_kps(inp.kps)
        r = pts(k)
        return Component(
            SYSTEM,
            "general_condition",
            (int(r["points"]),),
            f"KPS {k}",
            f"KPS {k} ({r['label']}) -> {r['points']}",
            r["source"],
        )
    if inp.ecog is not None and inp.ecog_mapping is not None:
        e = ps.check_ecog(inp.ecog)
        m = ps.check_mapping(inp.ecog_mapping, tables)
        kpss = ps.ecog_to_kps(e, m, tables)
        opts = tuple(sorted({int(pts(k)["points"]) for k in kpss}))
        flags.add(f"KPS_FROM_ECOG_MAPPING_{m}")
        if len(opts) > 1:
            flags.add("GENERAL_CONDITION_AMBIGUOUS")
        src = tables.raw["performance"]["kps_to_ecog"][m]["source"]
        return Component(
            SYSTEM,
            "general_condition",
            opts,
            f"ECOG {e}",
            f"ECOG {e} -> KPS {list(kpss)} (mapping {m}) -> {list(opts) if len(opts) > 1 else opts[0]}",
            src,
        )
    if inp.ecog is not None:
        ps.check_ecog(inp.ecog)
    why = (
        "ECOG given without a named mapping (no silent conversion)"
        if inp.ecog is not None
        else "KPS missing"
    )
    options = (r["points"] for r in rows)
    return missing_component(
        SYSTEM, "general_condition", options, why, rows[0]["source"], flags, item="kps"
    )


def score_tokuhashi(inp: TokuhashiInput, tables: Tables) -> ScoreResult:
    """Score the revised Tokuhashi items; raises ``ScoringError`` on invalid input."""
    cfg = tables.raw["tokuhashi"]
    flags: set[str] = set()
    for name in ("extraspinal_bone_mets", "vertebral_body_mets"):
        n = getattr(inp, name)
        if n is not None and n < 0:
            raise ScoringError("INVALID_VALUE", f"{name} cannot be negative, got {n}")
    if inp.vertebral_body_mets == 0:
        raise ScoringError(
            "NO_SPINAL_METASTASIS",
            "vertebral_body_mets = 0: the revised Tokuhashi score presupposes a spinal metastasis",
        )
    comps = [general_condition(inp, tables, flags)]
    comps.append(
        _count_item(
            "extraspinal_bone_mets", inp.extraspinal_bone_mets, cfg["extraspinal_bone_mets"], flags
        )
    )
    comps.append(
        _count_item(
            "vertebral_body_mets", inp.vertebral_body_mets, cfg["vertebral_body_mets"], flags
        )
    )

    vis = cfg["visceral_major_organs"]
    if inp.visceral is None:
        comps.append(
            missing_component(
                SYSTEM,
                "visceral_major_organs",
                (r["points"] for r in vis.values()),
                "visceral status missing",
                vis["none"]["source"],
                flags,
                item="visceral",
            )
        )
    elif inp.visceral == "present":
        flags.add("INCOMPLETE_VISCERAL_MISSING")
        comps.append(
            Component(
                SYSTEM,
                "visceral_major_organs",
                (0, 1),
                "present",
                "visceral metastases present, removability unknown: 0 or 1",
                vis["none"]["source"],
            )
        )
    else:
        if inp.visceral not in vis:
            raise ScoringError(
                "INVALID_VALUE",
                f"visceral_major_organs must be one of {list(vis)}, got {inp.visceral!r}",
            )
        r = vis[inp.visceral]
        comps.append(
            Component(
                SYSTEM,
                "visceral_major_organs",
                (int(r["points"]),),
                inp.visceral,
                f"major-organ metastases {inp.visceral} -> {r['points']}",
                r["source"],
            )
        )

    if inp.primary is None:
        pts = (r["points"] for r in cfg["primary"])
        comps.append(
            missing_component(SYSTEM, "primary", pts, "primary missing", "tokuhashi2005", flags)
        )
    else:
        p, site, src = primary_points(inp.primary, tables)
        comps.append(
            Component(
                SYSTEM,
                "primary",
                (p,),
                inp.primary,
                f"primary {inp.primary} (site group '{site}') -> {p}",
                src,
            )
        )

    palsy = cfg["palsy"]
    if inp.frankel is None:
        pts = (r["points"] for r in palsy.values())
        src = palsy["A"]["source"]
        comps.append(
            missing_component(
                SYSTEM, "palsy", pts, "Frankel grade missing", src, flags, item="frankel"
            )
        )
    else:
        g = ps.check_frankel(inp.frankel)
        r = palsy[g]
        if inp.frankel_from_asia:
            flags.add("FRANKEL_FROM_ASIA")
        how = (
            f"ASIA {g} taken as Frankel {g} (approximation)"
            if inp.frankel_from_asia
            else f"Frankel {g}"
        )
        comps.append(
            Component(
                SYSTEM, "palsy", (int(r["points"]),), g, f"{how} -> {r['points']}", r["source"]
            )
        )

    totals = reachable_sums([c.options for c in comps])
    band = common_band(totals, cfg["bands"])
    middle = cfg["bands"][1]["name"]
    exception: bool | None
    ruled_out = (
        (inp.vertebral_body_mets is not None and inp.vertebral_body_mets != 1)
        or (inp.extraspinal_bone_mets is not None and inp.extraspinal_bone_mets != 0)
        or (inp.visceral is not None and inp.visceral != "none")
    )
    if band is not None and band["name"] != middle:
        exception = False
    elif ruled_out:
        exception = False
    elif band is None or None in (inp.vertebral_body_mets, inp.extraspinal_bone_mets, inp.visceral):
        exception = None
    else:
        exception = True
    return ScoreResult(
        SYSTEM,
        comps,
        totals,
        band["name"] if band else None,
        flags,
        extra={"treatment": band["treatment"] if band else None, "excisional_exception": exception},
    )
