"""report.json building, HTML rendering, and report-vs-truth evaluation."""

from __future__ import annotations

import copy

import pytest

from pipeline.errors import SpinemetError
from pipeline.evaluate import evaluate_pairs, weighted_kappa
from pipeline.features.types import EsccResult, Finding, ImagingFeatures, VertebraFeatures
from pipeline.report import build_report, imaging_subscore, pick_index_vertebra, render_html
from pipeline.schema import validate_report


def _v(
    level, label, involved, lesion=None, collapse="none", align="normal", pl="none", loc="semirigid"
):
    return VertebraFeatures(
        label=label,
        level=level,
        involved=involved,
        location=Finding(loc),
        lesion=Finding(lesion),
        collapse=Finding(collapse),
        alignment=Finding(align),
        posterolateral=Finding(pl),
        measurements={"collapse_pct": 30.0 if collapse == "lt50" else 0.0, "translation_mm": 0.5},
        provenance={"lesion": "measured"},
    )


def _features():
    vs = [
        _v("T9", 16, False),
        _v("T10", 17, True, "lytic", "lt50", pl="unilateral"),
        _v("T11", 18, True, "blastic", loc="junctional"),
    ]
    e = EsccResult({"T9": "0", "T10": "1c", "T11": "0"}, "T10", "1c", "estimated", "graded on CT")
    return ImagingFeatures("CT", vs, e, ["T10", "T11"], [["T10", "T11"]])


def test_report_validates_and_picks_the_highest_sins_vertebra():
    f = _features()
    assert imaging_subscore(f.vertebrae[1]) == (6, 6)  # 1 + 2 + 0 + 2 + 1
    assert imaging_subscore(f.vertebrae[2]) == (3, 3)  # junctional 3 + blastic 0
    assert pick_index_vertebra(f).level == "T10"
    doc = build_report(f, study={"modality": "CT"}, index_level="T10")
    assert doc["levels"] == ["T9", "T10", "T11"]
    assert doc["escc"]["per_level"]["T10"] == "1c"
    assert doc["summary"]["segments"] == [["T10", "T11"]]
    assert "Research use only" in doc["notice"]
    # not assessable component counts its whole range
    v = copy.deepcopy(f.vertebrae[1])
    v.lesion = Finding.na("MR only")
    assert imaging_subscore(v) == (4, 6)


def test_unassessable_report():
    doc = build_report(None, study={}, messages=["no usable series"], assessable=False)
    validate_report(doc)
    assert doc["assessable"] is False and doc["levels"] == []
    html = render_html(doc, None, None)
    assert "could not be assessed" in html and "no usable series" in html


def test_schema_rejects_unknown_grade():
    doc = build_report(_features(), study={})
    doc["escc"]["per_level"]["T10"] = "4"
    with pytest.raises(SpinemetError) as exc:
        validate_report(doc)
    assert exc.value.code == "REPORT_SCHEMA"


def test_html_escapes_text():
    doc = build_report(_features(), study={"series_description": "<script>alert(1)</script>"})
    html = render_html(doc, b"\x89PNG fake", None)
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "data:image/png;base64," in html


def test_weighted_kappa():
    g = ["0", "1a", "1b", "1c", "2", "3"]
    assert weighted_kappa(g, g) == pytest.approx(1.0)
    # one step off everywhere is better than reversed order
    off = ["1a", "1b", "1c", "2", "3", "3"]
    rev = list(reversed(g))
    assert weighted_kappa(g, off) > weighted_kappa(g, rev)
    assert weighted_kappa(g, rev) < 0


def _doc(grade, lesion, collapse_pct, levels=("T9", "T10")):
    return {
        "levels": list(levels),
        "escc": {"worst_level": "T10", "worst_grade": grade, "per_level": {"T10": grade}},
        "vertebrae": [
            {
                "level": "T10",
                "involved": True,
                "sins": {
                    "lesion": lesion,
                    "alignment": "normal",
                    "collapse": "lt50",
                    "posterolateral": "none",
                },
                "measurements": {"collapse_pct": collapse_pct, "translation_mm": 0.0},
            }
        ],
    }


def test_evaluate_pairs_counts_disagreements():
    truth = [_doc("2", "lytic", 30.0), _doc("1a", "blastic", 25.0), _doc("3", "mixed", 40.0)]
    pred = [_doc("2", "lytic", 32.0), _doc("1b", "blastic", 40.0), _doc("3", None, 41.0, ("T10",))]
    res = evaluate_pairs(
        [(f"s{i}", p, t) for i, (p, t) in enumerate(zip(pred, truth, strict=True))], n_boot=50
    )
    m = res["metrics"]
    assert m["bilsky_exact"] == pytest.approx(2 / 3)
    assert m["bilsky_low_high"] == pytest.approx(1.0)
    assert m["sins_lesion_accuracy"] == pytest.approx(2 / 3)  # None counts as wrong
    assert m["sins_lesion_coverage"] == pytest.approx(2 / 3)
    assert m["collapse_within_10"] == pytest.approx(2 / 3)
    assert m["levels_identified"] == pytest.approx(5 / 6)
    lo, hi = res["ci95"]["bilsky_exact"]
    assert 0.0 <= lo <= m["bilsky_exact"] <= hi <= 1.0
    assert {d["study"] for d in res["disagreements"]} == {"s1", "s2"}
    assert res["acceptance"]["bilsky_exact"]["met"] is False


def test_levels_identified_by_position_not_by_name():
    """A column numbered one level off names most levels but identifies none (VerSe rule)."""

    def doc(names, zs):
        return {
            "levels": list(names),
            "escc": {"worst_grade": "0"},
            "vertebrae": [
                {"level": n, "involved": False, "sins": {}, "body_centre_lps": [0.0, 0.0, z]}
                for n, z in zip(names, zs, strict=True)
            ],
        }

    truth = doc(["T2", "T3", "T4"], [100.0, 75.0, 50.0])
    right = doc(["T2", "T3", "T4"], [101.0, 74.0, 52.0])
    shifted = doc(["T3", "T4", "T5"], [101.0, 74.0, 52.0])
    m = evaluate_pairs([("a", right, truth)], n_boot=0)["metrics"]
    assert m["levels_identified"] == pytest.approx(1.0)
    res = evaluate_pairs([("b", shifted, truth)], n_boot=0)
    assert res["metrics"]["levels_identified"] == pytest.approx(0.0)
    lv = res["disagreements"][0]["levels"]
    assert lv["invented"] == ["T5"] and lv["misplaced"] == ["T3", "T4"]
    # Without body centres (reports before schema 1.1) the names alone decide.
    for d in (truth, shifted):
        for v in d["vertebrae"]:
            v.pop("body_centre_lps")
    assert evaluate_pairs([("c", shifted, truth)], n_boot=0)["metrics"][
        "levels_identified"
    ] == pytest.approx(2 / 3)
