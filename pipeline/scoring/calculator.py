"""The calculator: case-file ``inputs`` in, ``expected``-keyed outputs out.

:func:`score_case` is the one entry point used by ``spinemet score``, by tests and by the
imaging pipeline. Each requested system is scored from the canonical record; a system
that cannot be scored reports its error code and is withheld, while independent systems
are still reported. A contradiction between shared facts withholds every score.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pipeline.scoring import performance as ps
from pipeline.scoring.base import ScoreResult, ScoringError, error_sort_key
from pipeline.scoring.bauer import BauerInput, score_bauer
from pipeline.scoring.bilsky import EsccResult, classify, grade_escc
from pipeline.scoring.explain import explain_components
from pipeline.scoring.nesms import NesmsInput, score_nesms
from pipeline.scoring.noms import NomsInput, NomsResult, assess, m_class
from pipeline.scoring.recommendation import build_recommendation
from pipeline.scoring.record import PatientRecord, build_record
from pipeline.scoring.sins import score_sins
from pipeline.scoring.tables import Tables, load_tables
from pipeline.scoring.tokuhashi import TokuhashiInput, score_tokuhashi
from pipeline.scoring.tomita import TomitaInput, score_tomita

_TOKU_VISCERAL = {
    "none": "none",
    "treatable": "removable",
    "untreatable": "unremovable",
    "present": "present",
}


def _error_output(errors: list[ScoringError]) -> dict[str, Any]:
    uniq: dict[str, ScoringError] = {}
    for e in errors:
        uniq.setdefault(e.code, e)
    codes = sorted(uniq, key=error_sort_key)
    return {
        "error": codes[0],
        "errors": codes,
        "error_messages": {c: uniq[c].message for c in codes},
    }


def _range_out(prefix: str, res: ScoreResult, out: dict[str, Any]) -> None:
    out[f"{prefix}_total"] = res.total
    out[f"{prefix}_total_range"] = res.total_range
    out[f"{prefix}_reachable_totals"] = list(res.reachable)


class _Run:
    """Scores of one record; each ``run_*`` stores its result or its error."""

    def __init__(self, rec: PatientRecord, tables: Tables) -> None:
        self.rec, self.t = rec, tables
        self.results: dict[str, Any] = {}
        self.errors: list[ScoringError] = []

    def attempt(self, name: str, fn: Any) -> Any:
        try:
            self.results[name] = fn()
        except ScoringError as exc:
            self.errors.append(exc)
            self.results[name] = None
        return self.results[name]

    # ---- systems
    def sins(self) -> ScoreResult:
        assert self.rec.sins is not None
        return score_sins(self.rec.sins, self.t)

    def escc(self) -> EsccResult:
        rec = self.rec
        res = grade_escc(rec.escc_features, self.t) if rec.escc_features is not None else None
        if rec.escc_grades:
            given = classify(rec.escc_grades, self.t)
            if res is not None:
                both = tuple(g for g in res.possible if g in given.possible)
                if not both:
                    raise ScoringError(
                        "CONTRADICTION_ESCC_GRADE",
                        f"noms.escc {list(given.possible)} contradicts the ESCC features ({list(res.possible)})",
                    )
                return classify(both, self.t)
            return given
        assert res is not None
        return res

    def tokuhashi(self) -> ScoreResult:
        r = self.rec
        return score_tokuhashi(
            TokuhashiInput(
                kps=r.kps,
                ecog=r.ecog,
                ecog_mapping=r.ecog_mapping,
                extraspinal_bone_mets=r.extraspinal_bone_mets,
                vertebral_body_mets=r.vertebral_body_mets,
                visceral=None if r.visceral is None else _TOKU_VISCERAL[r.visceral],
                primary=r.histology,
                frankel=r.frankel,
                frankel_from_asia=r.frankel_from_asia,
            ),
            self.t,
        )

    def tomita(self) -> ScoreResult:
        r = self.rec
        solitary = int(self.t.convention("tomita_solitary_total"))
        bone = r.tomita_bone
        if bone is None and r.skeletal_mets_total is not None:
            bone = "solitary" if r.skeletal_mets_total <= solitary else "multiple"
        return score_tomita(TomitaInput(r.histology, r.tomita_growth, r.visceral, bone), self.t)

    def mbauer(self) -> ScoreResult:
        r = self.rec
        vis = None if r.visceral is None else r.visceral != "none"
        return score_bauer(BauerInput(r.histology, vis, r.skeletal_mets_total), self.t)

    def nesms(self) -> ScoreResult:
        r = self.rec
        ge3 = r.mbauer_ge3
        mb = self.results.get("mbauer")
        if mb is None and "mbauer" not in self.results:
            try:
                mb = self.mbauer()
            except ScoringError:
                mb = None
        if mb is not None:
            thr = int(self.t.raw["nesms"]["items"]["modified_bauer_ge3"]["threshold"])
            vals = {t >= thr for t in mb.reachable}
            computed = vals.pop() if len(vals) == 1 else None
            if ge3 is not None and computed is not None and computed != ge3:
                raise ScoringError(
                    "CONTRADICTION_MODIFIED_BAUER",
                    "modified_bauer_ge3 disagrees with the modified Bauer score",
                )
            ge3 = computed if ge3 is None else ge3
        return score_nesms(
            NesmsInput(ge3, r.ambulatory_independent, r.albumin_g_dl, r.albumin_ge_3_5), self.t
        )

    def noms(self) -> NomsResult | None:
        r = self.rec
        escc = self.results.get("escc")
        sins = self.results.get("sins")
        if ((r.escc_features is not None or r.escc_grades) and escc is None) or (
            r.sins is not None and sins is None
        ):
            return None  # withheld: the ESCC or SINS error is already reported
        reach: tuple[int, ...] | None = None
        if r.sins_total_given is not None:
            if not 0 <= r.sins_total_given <= 18:
                raise ScoringError(
                    "INVALID_VALUE", f"noms.sins must lie in 0-18, got {r.sins_total_given}"
                )
            if sins is not None and r.sins_total_given not in sins.reachable:
                raise ScoringError(
                    "CONTRADICTION_SINS_TOTAL",
                    f"noms.sins = {r.sins_total_given} but the sins block gives {list(sins.reachable)}",
                )
            reach = (r.sins_total_given,)
        elif sins is not None:
            reach = sins.reachable
        cat = r.sins_category_given
        if cat is not None:
            in_band = tuple(t for t in range(19) if m_class(t, self.t) == cat)
            have = reach if reach is not None else in_band
            reach = tuple(t for t in have if t in in_band)
            if not reach:
                raise ScoringError(
                    "CONTRADICTION_SINS_TOTAL",
                    f"noms.sins_category {cat!r} contradicts the SINS total",
                )
        return assess(
            NomsInput(
                escc_possible=escc.possible if escc is not None else None,
                histology=r.histology,
                radiosensitivity=r.radiosensitivity,
                sins_reachable=reach,
                able_to_tolerate_surgery=r.able_to_tolerate_surgery,
                myelopathy=r.myelopathy,
            ),
            self.t,
        )


def score_record(rec: PatientRecord, tables: Tables, *, explain: bool = False) -> dict[str, Any]:
    """Score every requested system of a canonical record (see :func:`score_case`)."""
    run = _Run(rec, tables)
    req = rec.requested
    if "sins" in req:
        run.attempt("sins", run.sins)
    if "escc_features" in req or rec.escc_grades:
        run.attempt("escc", run.escc)
    if "tokuhashi" in req:
        run.attempt("tokuhashi", run.tokuhashi)
    if "tomita" in req:
        run.attempt("tomita", run.tomita)
    if "modified_bauer" in req:
        run.attempt("mbauer", run.mbauer)
    if "nesms" in req:
        run.attempt("nesms", run.nesms)
    if "noms" in req:
        run.attempt("noms", run.noms)

    out: dict[str, Any] = {}
    flags: set[str] = set()
    comps = []
    res = run.results
    if res.get("sins") is not None:
        s: ScoreResult = res["sins"]
        _range_out("sins", s, out)
        out["sins_category"] = s.band
        out["reachable_totals"] = list(s.reachable)
        out["sins_components"] = {
            c.name: c.points if c.known else list(c.options) for c in s.components
        }
        out["sins_location_per_level"] = s.extra["location_per_level"]
        flags |= s.flags
        comps += s.components
    if res.get("escc") is not None:
        e: EsccResult = res["escc"]
        out["escc_grade"] = e.grade
        out["escc_possible_grades"] = list(e.possible)
        out["escc_high_grade"] = e.high_grade
        flags |= e.flags
        comps += e.components
    if res.get("tokuhashi") is not None:
        tk: ScoreResult = res["tokuhashi"]
        _range_out("tokuhashi", tk, out)
        out["tokuhashi_band"] = tk.band
        out["tokuhashi_treatment"] = tk.extra["treatment"]
        out["excisional_exception"] = tk.extra["excisional_exception"]
        flags |= tk.flags
        comps += tk.components
    if res.get("tomita") is not None:
        tm: ScoreResult = res["tomita"]
        _range_out("tomita", tm, out)
        out["tomita_goal"] = tm.band
        out["tomita_surgery"] = tm.extra["surgery"]
        flags |= tm.flags
        comps += tm.components
    if res.get("mbauer") is not None:
        mb: ScoreResult = res["mbauer"]
        _range_out("mbauer", mb, out)
        out["mbauer_band"] = mb.band
        flags |= mb.flags
        comps += mb.components
    if res.get("nesms") is not None:
        ne: ScoreResult = res["nesms"]
        raw = ne.extra["raw"]
        out["nesms_raw"] = raw[0] if len(raw) == 1 else None
        out["nesms_raw_range"] = [raw[0], raw[-1]]
        _range_out("nesms", ne, out)
        flags |= ne.flags
        comps += ne.components
    if res.get("noms") is not None:
        nm: NomsResult = res["noms"]
        out["noms_N"], out["noms_O"], out["noms_M"], out["noms_S"] = nm.N, nm.O, nm.M, nm.S
        out["recommendation"] = nm.recommendation
        out["noms_flags"] = sorted(nm.flags)
        if nm.options:
            out["recommendation_options"] = nm.options
        flags |= nm.flags
        comps += nm.components
    if "performance" in req and rec.kps_values is not None:
        for mname in tables.raw["performance"]["kps_to_ecog"]:
            out[f"ecog_mapping_{mname}"] = [
                ps.kps_to_ecog(k, mname, tables) for k in rec.kps_values
            ]
    if res.get("noms") is not None or any(
        res.get(k) is not None for k in ("tokuhashi", "tomita", "mbauer", "nesms", "sins")
    ):
        out["recommendation_detail"] = build_recommendation(rec, run.results, tables)
    out["flags"] = sorted(flags)
    if run.errors:
        out.update(_error_output(run.errors))
    if explain:
        out["explanation"] = explain_components(comps, tables)
    return out


def score_case(
    inputs: Mapping[str, Any], *, explain: bool = False, tables: Tables | None = None
) -> dict[str, Any]:
    """Score a case-file ``inputs`` mapping; never raises for bad input.

    Returns the ``expected``-keyed dict (``sins_total``, ``sins_category``,
    ``sins_total_range``, ``escc_grade``, ``recommendation``, ``flags``, ...). Refused
    inputs give ``error`` (first code, SCORING.md 0.5 order) and ``errors`` (all codes).
    """
    tables = tables or load_tables()
    try:
        rec = build_record(inputs, tables)
    except ScoringError as exc:
        return {**_error_output(list(getattr(exc, "errors", None) or [exc])), "flags": []}
    return score_record(rec, tables, explain=explain)
