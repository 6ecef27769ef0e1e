"""NOMS decision framework (Laufer 2013; table reconstructed in SCORING.md 3.1).

N: ESCC low- vs high-grade (1c by convention, flagged); O: radiosensitivity of the
histology to cEBRT; M: SINS (0-6 stable, 7-12 potentially unstable, 13-18 unstable);
S: ability to tolerate surgery (clinician input). Unknown N or M are enumerated: the
decision is given only when every possibility leads to the same one. S is asked for only
where the table needs it (``SYSTEMIC_STATUS_MISSING``).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from pipeline.scoring import histology as hist
from pipeline.scoring.base import Component, ScoringError
from pipeline.scoring.bilsky import GRADES, is_high_grade, one_c_decides
from pipeline.scoring.intervals import band_of
from pipeline.scoring.tables import Tables

SYSTEM = "noms"
RADIOSENSITIVITY_VALUES = {
    "radiosensitive": "radiosensitive",
    "sensitive": "radiosensitive",
    "moderately_sensitive": "radiosensitive",
    "moderately_radiosensitive": "radiosensitive",
    "radioresistant": "radioresistant",
    "resistant": "radioresistant",
}
NEEDS_S = "NEEDS_SYSTEMIC_STATUS"


@dataclass(frozen=True)
class NomsInput:
    """Projected inputs. ``escc_possible``/``sins_reachable`` None means unknown."""

    escc_possible: tuple[str, ...] | None = None
    histology: str | None = None
    radiosensitivity: str | None = None
    sins_reachable: tuple[int, ...] | None = None
    able_to_tolerate_surgery: bool | None = None
    myelopathy: bool | None = None


@dataclass
class NomsResult:
    """The four assessments, the decision (or None) and what it rests on."""

    N: str | None
    O: str | None  # noqa: E741 - the "O" of NOMS
    M: str | None
    S: str | None
    recommendation: str | None
    flags: set[str]
    components: list[Component]
    options: list[dict] = field(default_factory=list)
    alternatives: list[dict] = field(default_factory=list)
    inputs: NomsInput | None = None


def radiosensitivity(
    histology: str | None, explicit: str | None, tables: Tables
) -> tuple[str, str, str]:
    """(class, rule, source) for O; raises ``RADIOSENSITIVITY_UNDETERMINED``."""
    if explicit is not None:
        key = hist.normalise_term(explicit)
        if key not in RADIOSENSITIVITY_VALUES:
            raise ScoringError(
                "INVALID_VALUE",
                f"radiosensitivity must be one of {sorted(RADIOSENSITIVITY_VALUES)}, got {explicit!r}",
            )
        cls = RADIOSENSITIVITY_VALUES[key]
        return cls, f"radiosensitivity {explicit} given explicitly -> {cls}", "laufer2013"
    name = hist.canonical(histology, tables) if histology else None
    if name is not None:
        for cls, row in tables.raw["noms"]["radiosensitivity"].items():
            if name in row["histologies"]:
                o = "radioresistant" if cls == "radioresistant" else "radiosensitive"
                return o, f"{histology}: {cls.replace('_', ' ')} -> {o}", str(row["source"])
    raise ScoringError(
        "RADIOSENSITIVITY_UNDETERMINED",
        f"histology {histology!r} is not on the NOMS radiosensitivity lists; give "
        "noms.radiosensitivity (radiosensitive/radioresistant) explicitly",
    )


def m_class(total: int, tables: Tables) -> str:
    """M assessment of a SINS total."""
    return str(band_of(total, tables.raw["sins"]["bands"])["name"])


def _lookup(n: str, o: str, m: str, s: str | None, tables: Tables) -> tuple[str, str]:
    """Decision for fully known N, O, M (stable/unstable) and S (None = unknown)."""
    rows = [
        r
        for r in tables.raw["noms"]["decisions"]
        if r["N"] == n and r["O"] == o and r["M"] in (m, "any")
    ]
    if s is not None:
        hit = [r for r in rows if r["S"] in (s, "any")]
        return str(hit[0]["decision"]), str(hit[0]["source"])
    decisions = {r["decision"] for r in rows}
    if len(decisions) == 1:
        return str(rows[0]["decision"]), str(rows[0]["source"])
    return NEEDS_S, "laufer2013"


def decide(n: str, o: str, m: str, s: str | None, tables: Tables) -> tuple[str, set[str], str]:
    """Decision for one (N, O, M, S) with the engine conventions (SCORING.md 3.1).

    M ``potentially_unstable`` follows ``noms_7_12_primary`` and is flagged; known
    inability to tolerate surgery drops any operation from the decision and flags
    ``UNSTABLE_NO_SURGICAL_OPTION`` when the spine is unstable.
    """
    flags: set[str] = set()
    m_eff = m
    if m == "potentially_unstable":
        flags.add("SINS_7_12_SURGICAL_CONSULTATION")
        with_stab = tables.convention("noms_7_12_primary") == "with_stabilization"
        m_eff = "unstable" if with_stab else "stable"
    decision, src = _lookup(n, o, m_eff, s, tables)
    if s == "unable" and ("stabilization" in decision or "surgery" in decision):
        decision, src = _lookup(n, o, "stable", s, tables)
        if "surgery" in decision or "stabilization" in decision:  # pragma: no cover - table guard
            raise ScoringError("NOMS_TABLE_INCOMPLETE", "no non-operative row for an unfit patient")
    if s == "unable" and m == "unstable":
        flags.add("UNSTABLE_NO_SURGICAL_OPTION")
    return decision, flags, src


def assess(inp: NomsInput, tables: Tables) -> NomsResult:
    """Run NOMS over every still-possible N and M; raise on O or S that the table needs."""
    flags: set[str] = set()
    comps: list[Component] = []
    o, o_rule, o_src = radiosensitivity(inp.histology, inp.radiosensitivity, tables)
    comps.append(Component(SYSTEM, "O", (0,), o, o_rule, o_src))

    grades = inp.escc_possible if inp.escc_possible else GRADES
    if not inp.escc_possible:
        flags.add("INCOMPLETE_ESCC_MISSING")
    if inp.escc_possible and one_c_decides(tuple(grades), tables):
        flags.add("ESCC_1C_CONTROVERSIAL")
    n_set = sorted({"high" if is_high_grade(g, tables) else "low" for g in grades})
    n = n_set[0] if len(n_set) == 1 else None
    src_n = tables.convention_source("escc_1c_class") if "1c" in grades else "bilsky2010"
    comps.append(
        Component(SYSTEM, "N", (0,), n, f"ESCC {list(grades)} -> {n or 'low or high'}-grade", src_n)
    )

    if inp.sins_reachable:
        m_set = sorted({m_class(t, tables) for t in inp.sins_reachable})
    else:
        flags.add("INCOMPLETE_SINS_MISSING")
        m_set = ["stable", "potentially_unstable", "unstable"]
    m = m_set[0] if len(m_set) == 1 else None
    sins_txt = list(inp.sins_reachable) if inp.sins_reachable else "unknown"
    comps.append(
        Component(
            SYSTEM, "M", (0,), m, f"SINS {sins_txt} -> {m or ' or '.join(m_set)}", "fourney2011"
        )
    )

    s = (
        None
        if inp.able_to_tolerate_surgery is None
        else ("able" if inp.able_to_tolerate_surgery else "unable")
    )
    comps.append(
        Component(
            SYSTEM, "S", (0,), s, f"able to tolerate surgery: {s or 'not given'}", "laufer2013"
        )
    )
    if inp.myelopathy and "low" in n_set:
        # The reconstructed table's low-grade rows assume no myelopathy (SCORING.md 3.1).
        comps.append(
            Component(
                SYSTEM,
                "myelopathy",
                (0,),
                "present",
                "myelopathy with low-grade ESCC lies outside the reconstructed NOMS rows "
                "(low-grade rows assume no myelopathy): discuss with the spine surgeon",
                "laufer2013",
            )
        )

    outcomes: list[dict] = []
    for nn, mm in itertools.product(n_set, m_set):
        dec, fl, src = decide(nn, o, mm, s, tables)
        outcomes.append(
            {"N": nn, "M": mm, "recommendation": dec, "flags": sorted(fl), "source": src}
        )
    decisions = {x["recommendation"] for x in outcomes}
    if decisions == {NEEDS_S} or (n is not None and m is not None and NEEDS_S in decisions):
        raise ScoringError(
            "SYSTEMIC_STATUS_MISSING",
            "high-grade ESCC with a radioresistant histology: the decision depends on whether the "
            "patient can tolerate surgery (noms.able_to_tolerate_surgery)",
        )
    rec = decisions.pop() if len(decisions) == 1 else None
    if n is not None and m is not None:
        flags |= set(outcomes[0]["flags"])
        comps.append(
            Component(
                SYSTEM,
                "decision",
                (0,),
                rec,
                f"N {n}, O {o}, M {m}, S {s or 'n/a'} -> {rec}",
                outcomes[0]["source"],
            )
        )
    alternatives: list[dict] = []
    if m == "potentially_unstable" and n is not None:
        other = (
            "unstable"
            if tables.convention("noms_7_12_primary") == "without_stabilization"
            else "stable"
        )
        alt, _, _ = decide(n, o, other, s, tables)
        if alt != rec:
            alternatives.append(
                {
                    "recommendation": alt,
                    "when": f"if the surgical consultation judges the spine {other} (SINS 7-12)",
                }
            )
    return NomsResult(
        n, o, m, s, rec, flags, comps, outcomes if rec is None else [], alternatives, inputs=inp
    )
