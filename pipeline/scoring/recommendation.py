"""The recommendation: NOMS decision plus prognostic context, in decision-support language.

Built from the scored results: a ranked list of options with their reasons, the flags
that apply (explained), the prognostic scores (Tokuhashi, Tomita, modified Bauer, NESMS)
as context, and the inputs that would change the result ("if pain is mechanical, SINS
becomes 13: unstable"). It suggests options for a multidisciplinary team; it does not
prescribe, and it never gives a dose.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from pipeline.scoring.base import ScoreResult, ScoringError
from pipeline.scoring.intervals import common_band, map_reachable, reachable_sums
from pipeline.scoring.noms import NomsInput, NomsResult, assess
from pipeline.scoring.sins import score_sins
from pipeline.scoring.tables import Tables

OPTION_TEXT = {
    "cEBRT": "conventional external beam radiotherapy (cEBRT)",
    "SRS": "stereotactic radiosurgery / SBRT (SRS)",
    "separation_surgery+SRS": "separation surgery (epidural decompression) followed by SRS (hybrid therapy)",
    "stabilization+cEBRT": "spinal stabilisation followed by cEBRT",
    "stabilization+SRS": "spinal stabilisation followed by SRS",
    "separation_surgery_with_stabilization+SRS": "separation surgery with stabilisation, followed by SRS",
}
FLAG_TEXT = {
    "MULTI_LEVEL_LOCATION_CONVENTION_MAX": "lesion spans location classes; SINS location took the highest (engine convention)",
    "MULTI_LEVEL_LOCATION_CONVENTION_MIN": "lesion spans location classes; SINS location took the lowest (engine convention)",
    "COLLAPSE_AT_50_BOUNDARY": "collapse measured at exactly 50%; scored by engine convention",
    "SACRUM_SEGMENT_UNRESOLVED": "sacral lesion not localised to S1 (junctional) or S2-S5 (rigid)",
    "ESCC_1C_CONTROVERSIAL": "ESCC 1c: management (radiation vs surgery) is controversial",
    "SINS_7_12_SURGICAL_CONSULTATION": "SINS 7-12 (potentially unstable): surgical consultation recommended by SOSG",
    "UNSTABLE_NO_SURGICAL_OPTION": "unstable spine but the patient cannot tolerate surgery: consider percutaneous options",
    "GENERAL_CONDITION_AMBIGUOUS": "ECOG->KPS conversion leaves the Tokuhashi general condition ambiguous",
    "FRANKEL_FROM_ASIA": "Frankel grade substituted from ASIA (approximation)",
}
PROGNOSIS_TEXT = {
    "tokuhashi": {
        "<6_months": "predicted survival < 6 months",
        ">=6_months": "predicted survival >= 6 months",
        ">=1_year": "predicted survival >= 1 year",
    },
    "tomita": {
        "long_term_local_control": "goal: long-term local control",
        "middle_term_local_control": "goal: middle-term local control",
        "short_term_palliation": "goal: short-term palliation",
        "terminal_care": "goal: terminal care",
    },
    "mbauer": {
        "poor": "poor prognosis group",
        "moderate": "moderate prognosis group",
        "good": "good prognosis group",
    },
}
BANDS = {
    "tokuhashi": ("tokuhashi", "bands"),
    "tomita": ("tomita", "bands"),
    "mbauer": ("modified_bauer", "bands"),
}
DISCLAIMER = (
    "Decision support for a multidisciplinary spine oncology team, based on published scores "
    "(research use). It suggests options to consider; it is not a treatment order."
)


def flag_meaning(code: str) -> str:
    """One line explaining a flag code."""
    if code in FLAG_TEXT:
        return FLAG_TEXT[code]
    if code.startswith("INCOMPLETE_") and code.endswith("_MISSING"):
        item = code[len("INCOMPLETE_") : -len("_MISSING")].replace("_", " ").lower()
        return f"{item} not given: never imputed; the score is reported as the range it could take"
    if code.startswith("KPS_FROM_ECOG_MAPPING_"):
        return f"KPS derived from ECOG through the named mapping {code[-1]} (SCORING.md 7.3)"
    return code.replace("_", " ").lower()


def _fmt_range(reach: tuple[int, ...]) -> str:
    return str(reach[0]) if len(reach) == 1 else f"{reach[0]}-{reach[-1]}"


def _sins_changes(
    rec: Any, sins: ScoreResult, noms: NomsResult | None, base: NomsInput | None, tables: Tables
) -> list[str]:
    out: list[str] = []
    if rec.sins is None:
        return out
    cfg = tables.raw["sins"]
    for comp in ("pain", "lesion", "alignment", "posterolateral", "collapse"):
        current = getattr(rec.sins, comp)
        if comp == "collapse" and (current is not None or rec.sins.collapse_pct is not None):
            continue
        if comp != "pain" and current is not None:
            continue
        for value in cfg[comp]:
            if value == current:
                continue
            try:
                alt = score_sins(dataclasses.replace(rec.sins, **{comp: value}), tables)
            except ScoringError:
                continue
            if alt.band == sins.band and len(alt.reachable) == len(sins.reachable):
                continue
            cat = alt.band or "category undetermined"
            text = f"if {comp} is {value.replace('_', ' ')}, SINS becomes {_fmt_range(alt.reachable)}: {cat}"
            if noms is not None and base is not None and rec.sins_total_given is None:
                alt_noms = _noms_with(base, tables, sins_reachable=alt.reachable)
                if alt_noms is not None and alt_noms != noms.recommendation:
                    text += f", and NOMS would suggest {alt_noms}"
            out.append(text)
    return out


def _noms_with(base: NomsInput, tables: Tables, **changes: Any) -> str | None:
    """NOMS decision with some inputs changed (None when the change makes it undecidable)."""
    try:
        return assess(dataclasses.replace(base, **changes), tables).recommendation
    except ScoringError:
        return None


def _generic_changes(name: str, res: ScoreResult, tables: Tables) -> list[str]:
    out: list[str] = []
    for i, comp in enumerate(res.components):
        if comp.known or comp.name == "ceiling":
            continue
        for p in comp.options:
            opts = [
                c.options if j != i else (p,)
                for j, c in enumerate(res.components)
                if c.name != "ceiling"
            ]
            reach = reachable_sums(opts)
            if name == "nesms":
                reach = map_reachable(
                    reach, lambda t: min(t, int(tables.convention("nesms_ceiling")))
                )
                band_txt = ""
            else:
                sec, key = BANDS[name]
                band = common_band(reach, tables.raw[sec][key])
                band_txt = f": {band['name']}" if band else ""
            if reach != res.reachable:
                out.append(
                    f"if {name} {comp.name.replace('_', ' ')} scores {p}, {name} becomes {_fmt_range(reach)}{band_txt}"
                )
    return out


def build_recommendation(rec: Any, results: dict[str, Any], tables: Tables) -> dict[str, Any]:
    """Ranked options with reasons, flags, prognostic context and what would change it."""
    noms: NomsResult | None = results.get("noms")
    sins: ScoreResult | None = results.get("sins")
    escc = results.get("escc")
    detail: dict[str, Any] = {"disclaimer": DISCLAIMER}
    ranked: list[dict[str, Any]] = []
    changes: list[str] = []
    base: NomsInput | None = noms.inputs if noms is not None else None
    if noms is not None:
        reasons = [c.rule for c in noms.components if c.name in ("N", "O", "M", "S", "myelopathy")]
        if noms.recommendation is not None:
            ranked.append(
                {
                    "rank": 1,
                    "option": noms.recommendation,
                    "text": f"consider {OPTION_TEXT.get(noms.recommendation, noms.recommendation)}",
                    "reasons": reasons,
                    "source": "laufer2013",
                }
            )
            for alt in noms.alternatives:
                ranked.append(
                    {
                        "rank": len(ranked) + 1,
                        "option": alt["recommendation"],
                        "text": f"consider {OPTION_TEXT.get(alt['recommendation'], alt['recommendation'])} {alt['when']}",
                        "reasons": reasons,
                        "source": "spec_3_1",
                    }
                )
            if noms.S is not None and base is not None:
                flip = _noms_with(base, tables, able_to_tolerate_surgery=noms.S != "able")
                if flip is not None and flip != noms.recommendation:
                    who = "could not" if noms.S == "able" else "could"
                    changes.append(
                        f"if the patient {who} tolerate surgery, NOMS would suggest {flip}"
                    )
            if base is not None and escc is not None and "1c" in escc.possible:
                other = "high" if tables.convention("escc_1c_class") == "low" else "low"
                flip = _noms_with(base, tables.with_conventions(escc_1c_class=other))
                if flip is not None and flip != noms.recommendation:
                    changes.append(
                        f"if ESCC 1c is treated as {other}-grade, NOMS would suggest {flip}"
                    )
        else:
            options = sorted({o["recommendation"] for o in noms.options})
            for i, opt in enumerate(options):
                when = [
                    f"N {o['N']}, M {o['M']}" for o in noms.options if o["recommendation"] == opt
                ]
                ranked.append(
                    {
                        "rank": i + 1,
                        "option": opt,
                        "text": f"possible: {OPTION_TEXT.get(opt, opt)}",
                        "reasons": [f"if {w}" for w in when],
                        "source": "laufer2013",
                    }
                )
        detail["summary"] = (
            f"NOMS suggests considering {OPTION_TEXT.get(noms.recommendation, noms.recommendation)}."
            if noms.recommendation
            else "NOMS decision undetermined until the missing inputs are known."
        )
    if sins is not None:
        changes[:0] = _sins_changes(rec, sins, noms, base, tables)
    prognosis: list[dict[str, Any]] = []
    for name in ("tokuhashi", "tomita", "mbauer", "nesms"):
        res: ScoreResult | None = results.get(name)
        if res is None:
            continue
        entry: dict[str, Any] = {
            "system": name,
            "total": res.total,
            "total_range": res.total_range,
            "band": res.band,
        }
        ctx = PROGNOSIS_TEXT.get(name, {}).get(res.band or "")
        if name == "tokuhashi" and res.extra.get("treatment"):
            ctx = f"{ctx}; suggested treatment in the source: {res.extra['treatment'].replace('_', ' ')}"
            if res.extra.get("excisional_exception"):
                ctx += " (excisional surgery may be considered: single lesion, no major-organ metastases)"
        if name == "nesms":
            ctx = "NESMS 3 is the reference group for 1-year mortality (validation cohort); lower scores carry higher risk"
        entry["context"] = ctx
        prognosis.append(entry)
        changes += _generic_changes(name, res, tables)
    detail["ranked"] = ranked
    detail["prognosis"] = prognosis
    flags = set()
    for r in results.values():
        if r is not None and hasattr(r, "flags"):
            flags |= set(r.flags)
    detail["flags"] = [{"code": f, "meaning": flag_meaning(f)} for f in sorted(flags)]
    detail["what_would_change"] = changes
    return detail
