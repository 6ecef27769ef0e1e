"""Property tests over the whole input space (hypothesis).

* totals always lie within the published ranges;
* bands are monotone in the total;
* a partial score's reachable set is exactly the set of totals of every completion of the
  missing inputs (so the range contains any completion), and a band is reported only when
  every completion falls in it.

Point values are checked against an oracle written here from SCORING.md, independent of
``configs/scoring.yaml``.
"""

from __future__ import annotations

import dataclasses
import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.scoring.base import ScoringError
from pipeline.scoring.bauer import BauerInput, score_bauer
from pipeline.scoring.bilsky import FEATURES, GRADES, EsccFeatures, grade_escc
from pipeline.scoring.nesms import NesmsInput, score_nesms
from pipeline.scoring.sins import SinsInput, category_of, score_sins
from pipeline.scoring.tables import load_tables
from pipeline.scoring.tokuhashi import TokuhashiInput, score_tokuhashi
from pipeline.scoring.tomita import TomitaInput, score_tomita

T = load_tables()
FAST = settings(max_examples=150, deadline=None)

# ------------------------------------------------------------------ oracle (SCORING.md 1.1-1.3)
LOC = {
    **dict.fromkeys(["C0", "C1", "C2", "C7", "T1", "T2", "T11", "T12", "L1", "L5", "S1"], 3),
    **dict.fromkeys(["C3", "C4", "C5", "C6", "L2", "L3", "L4"], 2),
    **dict.fromkeys([f"T{i}" for i in range(3, 11)], 1),
    **dict.fromkeys(["S2", "S3", "S4", "S5"], 0),
}
PAIN = {"mechanical": 3, "occasional_non_mechanical": 1, "pain_free": 0}
LESION = {"lytic": 2, "mixed": 1, "blastic": 0}
ALIGN = {"subluxation_translation": 4, "de_novo_deformity": 2, "normal": 0}
COLLAPSE = {"gt50": 3, "lt50": 2, "no_collapse_gt50_involved": 1, "none": 0}
PL = {"bilateral": 3, "unilateral": 1, "none": 0}
SINS_BANDS = [(0, 6, "stable"), (7, 12, "potentially_unstable"), (13, 18, "unstable")]


def oracle_sins(levels, pain, lesion, align, collapse, pl) -> int:
    return (
        max(LOC[lv] for lv in levels)
        + PAIN[pain]
        + LESION[lesion]
        + ALIGN[align]
        + COLLAPSE[collapse]
        + PL[pl]
    )


def band(total, bands):
    return next(name for lo, hi, name in bands if lo <= total <= hi)


def opt(values):
    return st.one_of(st.none(), st.sampled_from(sorted(values)))


sins_inputs = st.builds(
    SinsInput,
    levels=st.one_of(
        st.none(),
        st.lists(st.sampled_from(sorted(LOC) + ["sacrum"]), min_size=1, max_size=3).map(tuple),
    ),
    pain=opt(PAIN),
    lesion=opt(LESION),
    alignment=opt(ALIGN),
    collapse=opt(COLLAPSE),
    posterolateral=opt(PL),
)


def sins_completions(inp: SinsInput):
    levels_opts = [inp.levels] if inp.levels else [(lv,) for lv in LOC]
    levels_opts = [
        tuple(("S1" if lv == "sacrum" else lv) for lv in lvls) for lvls in levels_opts
    ] + [
        tuple(("S2" if lv == "sacrum" else lv) for lv in lvls)
        for lvls in levels_opts
        if "sacrum" in lvls
    ]
    fields = []
    for name, table in (
        ("pain", PAIN),
        ("lesion", LESION),
        ("alignment", ALIGN),
        ("collapse", COLLAPSE),
        ("posterolateral", PL),
    ):
        v = getattr(inp, name)
        fields.append([v] if v is not None else list(table))
    for lv, *rest in itertools.product(levels_opts, *fields):
        yield lv, rest


@FAST
@given(sins_inputs)
def test_sins_range_is_exactly_the_completions(inp: SinsInput) -> None:
    res = score_sins(inp, T)
    totals = {oracle_sins(lv, *rest) for lv, rest in sins_completions(inp)}
    assert set(res.reachable) == totals
    assert all(0 <= t <= 18 for t in res.reachable)
    assert res.total_range == [min(totals), max(totals)]
    cats = {band(t, SINS_BANDS) for t in totals}
    assert res.band == (cats.pop() if len(cats) == 1 else None)
    if res.total is not None:
        assert len(totals) == 1 and res.band == band(res.total, SINS_BANDS)
    missing = {
        f"INCOMPLETE_{n.upper()}_MISSING"
        for n in ("pain", "lesion", "alignment", "collapse", "posterolateral")
        if getattr(inp, n) is None
    }
    if not inp.levels:
        missing.add("INCOMPLETE_LOCATION_MISSING")
    assert missing <= res.flags


@FAST
@given(st.integers(0, 18), st.integers(0, 18))
def test_sins_bands_monotone(a: int, b: int) -> None:
    order = ["stable", "potentially_unstable", "unstable"]
    lo, hi = sorted((a, b))
    assert order.index(category_of(lo, T)) <= order.index(category_of(hi, T))


@FAST
@given(
    st.sampled_from(sorted(LOC)),
    st.one_of(st.none(), st.floats(0, 100, allow_nan=False)),
    st.one_of(st.none(), st.floats(0, 100, allow_nan=False)),
)
def test_sins_collapse_measurements(level: str, pct, inv) -> None:
    """Measured percentages give the category of SCORING.md 1.5 (or a range when open)."""
    inp = SinsInput(
        levels=(level,),
        pain="pain_free",
        lesion="blastic",
        alignment="normal",
        posterolateral="none",
        collapse_pct=pct,
        body_involvement_pct=inv,
    )
    res = score_sins(inp, T)
    base = LOC[level]
    if pct is not None and pct > 50:
        want = {3}
    elif pct == 50:
        want = {2}
        assert "COLLAPSE_AT_50_BOUNDARY" in res.flags
    elif pct is not None and pct > 0:
        want = {2}
    elif pct is not None:  # no collapse
        want = {0, 1} if inv is None else ({1} if inv > 50 else {0})
    else:
        want = {0, 1, 2, 3} if inv is None else ({1, 2, 3} if inv > 50 else {0, 2, 3})
    assert set(res.reachable) == {base + w for w in want}


# ------------------------------------------------------------------ Tokuhashi (SCORING.md 4.1)
def gc(kps):
    return 0 if kps <= 40 else (1 if kps <= 70 else 2)


def count3(n, zero_best):
    # extraspinal: >=3 ->0, 1-2 ->1, 0 ->2 ; vertebral: >=3 ->0, 2 ->1, 1 ->2
    if zero_best:
        return 0 if n >= 3 else (1 if n >= 1 else 2)
    return 0 if n >= 3 else (1 if n == 2 else 2)


TOK_PRIMARY = {
    "lung": 0,
    "nsclc": 0,
    "stomach": 0,
    "pancreas": 0,
    "liver": 1,
    "unidentified": 1,
    "colon": 2,
    "melanoma": 2,
    "kidney": 3,
    "uterus": 3,
    "rectum": 4,
    "breast": 5,
    "prostate": 5,
    "thyroid": 5,
}
TOK_VIS = {"unremovable": 0, "removable": 1, "none": 2}
TOK_PALSY = {"A": 0, "B": 0, "C": 1, "D": 1, "E": 2}
TOK_BANDS = [(0, 8, "<6_months"), (9, 11, ">=6_months"), (12, 15, ">=1_year")]
KPS = list(range(10, 101, 10))

toku_inputs = st.builds(
    TokuhashiInput,
    kps=opt(KPS),
    extraspinal_bone_mets=st.one_of(st.none(), st.integers(0, 6)),
    vertebral_body_mets=st.one_of(st.none(), st.integers(1, 6)),
    visceral=opt(TOK_VIS),
    primary=opt(TOK_PRIMARY),
    frankel=opt(TOK_PALSY),
)


@FAST
@given(toku_inputs)
def test_tokuhashi_range_is_exactly_the_completions(inp: TokuhashiInput) -> None:
    res = score_tokuhashi(inp, T)
    dom = [
        [inp.kps] if inp.kps is not None else KPS,
        [inp.extraspinal_bone_mets] if inp.extraspinal_bone_mets is not None else range(0, 5),
        [inp.vertebral_body_mets] if inp.vertebral_body_mets is not None else range(1, 5),
        [inp.visceral] if inp.visceral is not None else list(TOK_VIS),
        [inp.primary] if inp.primary is not None else list(TOK_PRIMARY),
        [inp.frankel] if inp.frankel is not None else list(TOK_PALSY),
    ]
    totals = {
        gc(k) + count3(e, True) + count3(v, False) + TOK_VIS[vi] + TOK_PRIMARY[p] + TOK_PALSY[f]
        for k, e, v, vi, p, f in itertools.product(*dom)
    }
    assert set(res.reachable) == totals
    assert all(0 <= t <= 15 for t in totals)
    bands = {band(t, TOK_BANDS) for t in totals}
    assert res.band == (bands.pop() if len(bands) == 1 else None)


@FAST
@given(st.integers(0, 4), st.sampled_from("ABC"), toku_inputs)
def test_tokuhashi_ecog_range_contains_every_mapped_kps(
    ecog: int, mapping: str, inp: TokuhashiInput
) -> None:
    from pipeline.scoring.performance import ecog_to_kps

    via = score_tokuhashi(dataclasses.replace(inp, kps=None, ecog=ecog, ecog_mapping=mapping), T)
    assert f"KPS_FROM_ECOG_MAPPING_{mapping}" in via.flags
    for kps in ecog_to_kps(ecog, mapping, T):
        direct = score_tokuhashi(dataclasses.replace(inp, kps=kps), T)
        assert set(direct.reachable) <= set(via.reachable)


# ------------------------------------------------------------------ Tomita, mBauer, NESMS
TOM_GROWTH = {"breast": 1, "thyroid": 1, "kidney": 2, "uterus": 2, "lung": 4, "stomach": 4}
TOM_VIS = {"none": 0, "treatable": 2, "untreatable": 4}
TOM_BONE = {"solitary": 1, "multiple": 2}
TOM_BANDS = [
    (2, 3, "long_term_local_control"),
    (4, 5, "middle_term_local_control"),
    (6, 7, "short_term_palliation"),
    (8, 10, "terminal_care"),
]


@FAST
@given(st.builds(TomitaInput, histology=opt(TOM_GROWTH), visceral=opt(TOM_VIS), bone=opt(TOM_BONE)))
def test_tomita_range_is_exactly_the_completions(inp: TomitaInput) -> None:
    res = score_tomita(inp, T)
    totals = {
        TOM_GROWTH[h] + TOM_VIS[v] + TOM_BONE[b]
        for h, v, b in itertools.product(
            [inp.histology] if inp.histology else TOM_GROWTH,
            [inp.visceral] if inp.visceral else TOM_VIS,
            [inp.bone] if inp.bone else TOM_BONE,
        )
    }
    assert set(res.reachable) == totals and all(2 <= t <= 10 for t in totals)
    bands = {band(t, TOM_BANDS) for t in totals}
    assert res.band == (bands.pop() if len(bands) == 1 else None)


BAUER_PRIMARY = [
    "breast",
    "kidney",
    "lymphoma",
    "myeloma",
    "lung",
    "nsclc",
    "prostate",
    "colon",
    "melanoma",
]


def bauer_oracle(primary, visceral, skeletal):
    return (
        (not visceral)
        + (primary not in ("lung", "nsclc"))
        + (primary in ("breast", "kidney", "lymphoma", "myeloma"))
        + (skeletal == 1)
    )


@FAST
@given(
    st.builds(
        BauerInput,
        primary=opt(BAUER_PRIMARY),
        visceral_mets=st.one_of(st.none(), st.booleans()),
        skeletal_mets_total=st.one_of(st.none(), st.integers(1, 8)),
    )
)
def test_bauer_and_nesms_ranges(inp: BauerInput) -> None:
    res = score_bauer(inp, T)
    dom = itertools.product(
        [inp.primary] if inp.primary else BAUER_PRIMARY,
        [inp.visceral_mets] if inp.visceral_mets is not None else [False, True],
        [inp.skeletal_mets_total] if inp.skeletal_mets_total is not None else [1, 2],
    )
    totals = {bauer_oracle(*x) for x in dom}
    assert set(res.reachable) == totals and all(0 <= t <= 4 for t in totals)
    bands = {("poor" if t <= 1 else "moderate" if t == 2 else "good") for t in totals}
    assert res.band == (bands.pop() if len(bands) == 1 else None)


@FAST
@given(
    st.one_of(st.none(), st.booleans()),
    st.one_of(st.none(), st.booleans()),
    st.one_of(st.none(), st.floats(1.0, 6.0, allow_nan=False)),
)
def test_nesms_capped_range(ge3, amb, alb) -> None:
    res = score_nesms(NesmsInput(ge3, amb, alb), T)
    totals = set()
    for g, a, al in itertools.product(
        [ge3] if ge3 is not None else [False, True],
        [amb] if amb is not None else [False, True],
        [alb] if alb is not None else [3.0, 4.0],
    ):
        totals.add(min(2 * g + a + (al >= 3.5), 3))
    assert set(res.reachable) == totals and all(0 <= t <= 3 for t in totals)
    assert res.total == (next(iter(totals)) if len(totals) == 1 else None)


# ------------------------------------------------------------------ ESCC
@FAST
@given(st.fixed_dictionaries({f: st.one_of(st.none(), st.booleans()) for f in FEATURES}))
def test_escc_possible_grades_are_the_consistent_completions(feats) -> None:
    unknown = [k for k, v in feats.items() if v is None]
    grades = set()
    for combo in itertools.product([False, True], repeat=len(unknown)):
        f = {**feats, **dict(zip(unknown, combo, strict=True))}
        try:
            grades.add(grade_escc(EsccFeatures(**f), T).grade)
        except ScoringError as exc:
            assert exc.code == "CONTRADICTION_ESCC_FEATURES"
    try:
        res = grade_escc(EsccFeatures(**feats), T)
    except ScoringError as exc:
        assert exc.code == "CONTRADICTION_ESCC_FEATURES" and not grades
        return
    assert set(res.possible) == grades
    assert list(res.possible) == [g for g in GRADES if g in grades]
    classes = {g in ("2", "3") for g in grades}
    assert res.high_grade == (classes.pop() if len(classes) == 1 else None)


# ------------------------------------------------------------------ robustness of the public API
from pipeline.scoring import score_case  # noqa: E402
from pipeline.scoring.record import BLOCKS, SCALARS  # noqa: E402

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-5, 120)
    | st.floats(allow_nan=True)
    | st.text(max_size=12)
    | st.sampled_from(
        [
            "T12",
            "sacrum",
            "L6",
            "lytic",
            "gt50",
            "none",
            "mechanical",
            "2",
            "1c",
            "kidney",
            "A",
            "B",
        ]
    ),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)
blocks = st.sampled_from(sorted(BLOCKS)).flatmap(
    lambda b: st.tuples(
        st.just(b), st.dictionaries(st.sampled_from(sorted(BLOCKS[b])), json_values, max_size=6)
    )
)
scalars = st.tuples(st.sampled_from(sorted(SCALARS)), json_values)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(blocks, scalars), max_size=6))
def test_score_case_never_raises(items) -> None:
    out = score_case(dict(items), explain=True)
    assert isinstance(out, dict) and isinstance(out["flags"], list)
    if "error" in out:
        assert out["error"] == out["errors"][0] and out["error"].isupper()
    for key in ("sins", "tokuhashi", "tomita", "mbauer", "nesms"):
        if out.get(f"{key}_total_range"):
            lo, hi = out[f"{key}_total_range"]
            assert lo <= hi
            assert out[f"{key}_total"] in (None, lo) and (out[f"{key}_total"] is None) == (lo != hi)
