"""Scoring engine: SINS, Bilsky ESCC, NOMS, revised Tokuhashi, Tomita, modified Bauer,
NESMS, performance status, and the recommendation.

Public API
----------
``score_case(inputs: dict, *, explain: bool = False) -> dict``
    Takes exactly the ``inputs`` object of ``../shared/clinical/scoring_cases.json``
    (blocks ``sins``, ``escc_features``, ``noms``, ``tokuhashi``, ``tomita``,
    ``modified_bauer`` and scalar fields such as ``ambulatory_independent``,
    ``albumin_g_dl``, ``frankel``, ``kps``, ``level``) and returns the outputs under the
    keys of the case file's ``expected`` (``sins_total``, ``sins_category``,
    ``sins_total_range``, ``reachable_totals``, ``escc_grade``, ``escc_high_grade``,
    ``escc_possible_grades``, ``noms_N/O/M/S``, ``recommendation``, ``noms_flags``,
    ``tokuhashi_total``, ``tokuhashi_band``, ``tokuhashi_treatment``,
    ``excisional_exception``, ``tomita_total``, ``tomita_goal``, ``tomita_surgery``,
    ``mbauer_total``, ``mbauer_band``, ``nesms_raw``, ``nesms_total``, ``flags``,
    ``error``/``errors``, ...) plus ``recommendation_detail`` (ranked options, reasons,
    flags, prognostic context, what would change it). It never raises for bad input:
    a refused input gives ``error`` (first code, SCORING.md 0.5 order) and ``errors``.
    With ``explain=True`` the dict carries ``explanation``: a list of
    ``{system, component, value, points, rule, source, citation}``.

How the imaging pipeline fills the input
----------------------------------------
One lesion per call (or per worst lesion)::

    score_case({
        "sins": {
            "levels": ["T11", "T12"],      # every vertebra the lesion involves; names or
                                           # VerSe numbers (26 = undivided sacrum -> flagged
                                           # range; give "S1" or "S2".."S5" when localised;
                                           # 25 L6 / 28 T13 are refused until confirmed)
            "lesion": "lytic",             # lytic | mixed | blastic, or instead
                                           # "lytic_pct"/"blastic_pct" (shares of the lesion)
            "alignment": "normal",         # subluxation_translation | de_novo_deformity | normal
            "collapse": None,              # gt50 | lt50 | no_collapse_gt50_involved | none, or
            "collapse_pct": 35.0,          #   the measured height loss (%) and
            "body_involvement_pct": 60.0,  #   the share of the body replaced by tumour (%)
            "posterolateral": "unilateral",  # bilateral | unilateral | none
            "costovertebral_involved": False,  # True if a costovertebral joint is involved
            # no "pain": images cannot show it. SINS is then reported as
            # sins_total = None, sins_total_range = [lo, hi], reachable_totals, and
            # sins_category only when every reachable total lies in one band, with the
            # flag INCOMPLETE_PAIN_MISSING.
        },
        "escc_features": {...},            # booleans (None = not assessable), or
        "noms": {"escc": "2"},             # a grade the pipeline already measured; add
                                           # "histology" and "able_to_tolerate_surgery"
                                           # from the clinical record for a NOMS decision
    })

Any missing item is never imputed (SCORING.md 0.2). Point tables, bands and
conventions with their citations: ``configs/scoring.yaml`` (see :mod:`.tables`).
"""

from __future__ import annotations

from pipeline.scoring.calculator import score_case, score_record
from pipeline.scoring.record import PatientRecord, build_record
from pipeline.scoring.tables import Tables, load_tables

__all__ = ["PatientRecord", "Tables", "build_record", "load_tables", "score_case", "score_record"]
