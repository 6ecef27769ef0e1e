"""Rules of SCORING.md beyond the worked cases: edges, conventions, errors and flags."""

from __future__ import annotations

import pytest

from pipeline.scoring import score_case
from pipeline.scoring.tables import load_tables

T = load_tables()


def sins(**kw):
    base = {
        "levels": ["T6"],
        "pain": "mechanical",
        "lesion": "lytic",
        "alignment": "normal",
        "collapse": "none",
        "posterolateral": "none",
    }
    return {"sins": {**base, **kw}}


@pytest.mark.parametrize(
    ("level", "points"),
    [
        ("C0", 3),
        ("occiput", 3),
        ("C1", 3),
        ("C2", 3),
        ("C3", 2),
        ("C6", 2),
        ("C7", 3),
        ("T1", 3),
        ("T2", 3),
        ("T3", 1),
        ("T10", 1),
        ("T11", 3),
        ("T12", 3),
        ("L1", 3),
        ("L2", 2),
        ("L4", 2),
        ("L5", 3),
        ("S1", 3),
        ("S2", 0),
        ("S5", 0),
        (20, 3),
        (16, 1),
    ],
)
def test_sins_location_each_edge(level, points) -> None:
    out = score_case(sins(levels=[level]))
    assert out["sins_components"]["location"] == points
    assert out["sins_total"] == points + 3 + 2


@pytest.mark.parametrize(
    ("level", "code"),
    [
        ("Co1", "LEVEL_NOT_IN_SINS"),
        ("coccyx", "LEVEL_NOT_IN_SINS"),
        ("X9", "LEVEL_NOT_IN_SINS"),
        ("L6", "TRANSITIONAL_LEVEL_UNCONFIRMED"),
        ("T13", "TRANSITIONAL_LEVEL_UNCONFIRMED"),
        (25, "TRANSITIONAL_LEVEL_UNCONFIRMED"),
        (28, "TRANSITIONAL_LEVEL_UNCONFIRMED"),
    ],
)
def test_sins_levels_refused(level, code) -> None:
    out = score_case(sins(levels=["T12", level]))
    assert out["error"] == code and "sins_total" not in out


def test_sins_zero_and_eighteen_and_band_edges() -> None:
    zero = score_case(
        {
            "sins": {
                "levels": ["S3"],
                "pain": "pain_free",
                "lesion": "blastic",
                "alignment": "normal",
                "collapse": "none",
                "posterolateral": "none",
            }
        }
    )
    assert (zero["sins_total"], zero["sins_category"]) == (0, "stable")
    assert (
        score_case(sins(levels=["T3"], pain="occasional_non_mechanical", collapse="lt50"))[
            "sins_category"
        ]
        == "stable"
    )  # 6
    assert (
        score_case(sins(levels=["T3"], collapse="lt50"))["sins_category"] == "potentially_unstable"
    )  # 8
    twelve = score_case(sins(levels=["T2"], collapse="gt50", posterolateral="unilateral"))
    assert (twelve["sins_total"], twelve["sins_category"]) == (12, "potentially_unstable")
    assert (
        score_case(
            sins(
                levels=["T2"],
                collapse="gt50",
                posterolateral="unilateral",
                alignment="de_novo_deformity",
            )
        )["sins_category"]
        == "unstable"
    )


def test_undivided_sacrum_is_a_flagged_range() -> None:
    out = score_case(sins(levels=["sacrum"]))
    assert out["sins_total"] is None and out["reachable_totals"] == [5, 8]
    assert out["sins_location_per_level"] == {"sacrum": [0, 3]}
    assert out["flags"] == ["SACRUM_SEGMENT_UNRESOLVED"]
    assert score_case(sins(levels=["S1"]))["sins_total"] == 8
    assert score_case(sins(levels=["S2"]))["sins_total"] == 5


def test_multi_level_flag_only_when_classes_differ() -> None:
    same = score_case(sins(levels=["T5", "T6"]))
    assert same["flags"] == [] and same["sins_total"] == 6
    mixed = score_case(sins(levels=["T10", "T11"]))
    assert mixed["sins_total"] == 8 and mixed["flags"] == ["MULTI_LEVEL_LOCATION_CONVENTION_MAX"]
    assert mixed["sins_location_per_level"] == {"T10": 1, "T11": 3}


def test_multi_level_convention_is_configurable() -> None:
    tmin = T.with_conventions(sins_multi_level_location="min")
    out = score_case(sins(levels=["T10", "T11"], lesion="blastic", collapse="lt50"), tables=tmin)
    assert (out["sins_total"], out["sins_category"]) == (6, "stable")
    assert out["flags"] == ["MULTI_LEVEL_LOCATION_CONVENTION_MIN"]


def test_collapse_conventions_and_contradictions() -> None:
    at50 = score_case(sins(collapse=None, collapse_pct=50))
    assert at50["sins_components"]["collapse"] == 2 and "COLLAPSE_AT_50_BOUNDARY" in at50["flags"]
    gt = T.with_conventions(sins_collapse_at_50="gt50")
    assert (
        score_case(sins(collapse=None, collapse_pct=50), tables=gt)["sins_components"]["collapse"]
        == 3
    )
    assert (
        score_case(sins(collapse=None, collapse_pct=0, body_involvement_pct=50))["sins_components"][
            "collapse"
        ]
        == 0
    )
    assert (
        score_case(sins(collapse=None, collapse_pct=0, body_involvement_pct=50.1))[
            "sins_components"
        ]["collapse"]
        == 1
    )
    # any collapse takes precedence over involvement
    assert (
        score_case(sins(collapse=None, collapse_pct=20, body_involvement_pct=90))[
            "sins_components"
        ]["collapse"]
        == 2
    )
    for bad in (
        dict(collapse="none", collapse_pct=60),
        dict(collapse="gt50", collapse_pct=10),
        dict(collapse="no_collapse_gt50_involved", body_involvement_pct=30),
        dict(collapse="none", collapse_pct=0, body_involvement_pct=80),
    ):
        assert score_case(sins(**bad))["error"] == "CONTRADICTION_COLLAPSE", bad


def test_costovertebral_only_at_thoracic_levels() -> None:
    assert (
        score_case(sins(levels=["L3"], posterolateral="unilateral", costovertebral_involved=True))[
            "error"
        ]
        == "CONTRADICTION_CV_JOINT_LEVEL"
    )
    assert (
        score_case(
            sins(
                levels=["L3"],
                posterolateral="unilateral",
                posterolateral_sites=["costovertebral joint"],
            )
        )["error"]
        == "CONTRADICTION_CV_JOINT_LEVEL"
    )
    assert (
        score_case(
            sins(levels=["T12", "L1"], posterolateral="unilateral", costovertebral_involved=True)
        )["sins_total"]
        == 9
    )


def test_imaging_only_sins_reports_range_and_category_only_when_determined() -> None:
    # imaging subscore I: determined for I<=3, 7..9, >=13 (SCORING.md 0.2)
    for img, (lesion, align, collapse, pl, level), determined in [
        (3, ("blastic", "normal", "none", "none", "T11"), "stable"),
        (4, ("blastic", "normal", "none", "unilateral", "T11"), None),
        (7, ("lytic", "de_novo_deformity", "none", "none", "T11"), "potentially_unstable"),
        (9, ("lytic", "de_novo_deformity", "lt50", "none", "T11"), "potentially_unstable"),
        (10, ("lytic", "de_novo_deformity", "gt50", "none", "T11"), None),
        (13, ("lytic", "subluxation_translation", "gt50", "unilateral", "T11"), "unstable"),
    ]:
        out = score_case(
            {
                "sins": {
                    "levels": [level],
                    "lesion": lesion,
                    "alignment": align,
                    "collapse": collapse,
                    "posterolateral": pl,
                }
            }
        )
        assert out["sins_total"] is None and out["reachable_totals"] == [img, img + 1, img + 3], img
        assert out["sins_category"] == determined, img
        assert out["flags"] == ["INCOMPLETE_PAIN_MISSING"]


def test_what_would_change_names_pain() -> None:
    out = score_case(
        {
            "sins": {
                "levels": ["T11"],
                "lesion": "lytic",
                "alignment": "de_novo_deformity",
                "collapse": "gt50",
                "posterolateral": "none",
            }
        }
    )
    changes = out["recommendation_detail"]["what_would_change"]
    assert "if pain is mechanical, SINS becomes 13: unstable" in changes


@pytest.mark.parametrize(
    ("feats", "grade"),
    [
        ((False, False, False, False, True), "0"),
        ((True, False, False, False, True), "1a"),
        ((True, True, False, False, True), "1b"),
        ((True, True, True, False, True), "1c"),
        ((True, True, True, True, True), "2"),
        ((True, True, True, True, False), "3"),
    ],
)
def test_escc_grades(feats, grade) -> None:
    keys = (
        "epidural_tumour",
        "thecal_sac_deformed",
        "cord_abutment",
        "cord_compressed",
        "csf_visible_around_cord",
    )
    out = score_case({"escc_features": dict(zip(keys, feats, strict=True))})
    assert out["escc_grade"] == grade
    assert out["escc_high_grade"] is (grade in ("2", "3"))


def test_escc_contradictions() -> None:
    keys = (
        "epidural_tumour",
        "thecal_sac_deformed",
        "cord_abutment",
        "cord_compressed",
        "csf_visible_around_cord",
    )
    for feats in [
        (True, False, True, False, True),
        (True, False, False, True, True),
        (False, True, False, False, True),
    ]:
        assert (
            score_case({"escc_features": dict(zip(keys, feats, strict=True))})["error"]
            == "CONTRADICTION_ESCC_FEATURES"
        )


def test_escc_1c_convention() -> None:
    inp = {
        "noms": {"histology": "kidney", "escc": "1c", "sins": 4, "able_to_tolerate_surgery": True}
    }
    low = score_case(inp)
    assert (low["noms_N"], low["recommendation"], low["flags"]) == (
        "low",
        "SRS",
        ["ESCC_1C_CONTROVERSIAL"],
    )
    high = score_case(inp, tables=T.with_conventions(escc_1c_class="high"))
    assert (high["noms_N"], high["recommendation"]) == ("high", "separation_surgery+SRS")
    assert (
        "if ESCC 1c is treated as high-grade, NOMS would suggest separation_surgery+SRS"
        in low["recommendation_detail"]["what_would_change"]
    )


@pytest.mark.parametrize(
    ("hist", "escc", "sins_total", "able", "rec", "flags"),
    [
        ("breast", "1b", 4, None, "cEBRT", []),
        ("lymphoma", "3", 5, None, "cEBRT", []),
        ("prostate", "0", 14, None, "stabilization+cEBRT", []),
        ("melanoma", "1a", 3, None, "SRS", []),
        ("melanoma", "1a", 15, True, "stabilization+SRS", []),
        ("thyroid", "2", 4, True, "separation_surgery+SRS", []),
        ("thyroid", "2", 4, False, "cEBRT", []),
        ("myeloma", "2", 13, True, "stabilization+cEBRT", []),
        ("breast", "1b", 14, False, "cEBRT", ["UNSTABLE_NO_SURGICAL_OPTION"]),
        ("prostate", "1b", 9, None, "cEBRT", ["SINS_7_12_SURGICAL_CONSULTATION"]),
        ("nsclc", "3", 7, True, "separation_surgery+SRS", ["SINS_7_12_SURGICAL_CONSULTATION"]),
    ],
)
def test_noms_table(hist, escc, sins_total, able, rec, flags) -> None:
    noms = {"histology": hist, "escc": escc, "sins": sins_total}
    if able is not None:
        noms["able_to_tolerate_surgery"] = able
    out = score_case({"noms": noms})
    assert out["recommendation"] == rec and out["flags"] == flags


def test_noms_needs_and_radiosensitivity() -> None:
    assert (
        score_case({"noms": {"histology": "kidney", "escc": "2", "sins": 14}})["error"]
        == "SYSTEMIC_STATUS_MISSING"
    )
    assert (
        score_case({"noms": {"histology": "lung", "escc": "1a", "sins": 3}})["error"]
        == "RADIOSENSITIVITY_UNDETERMINED"
    )
    out = score_case(
        {
            "noms": {
                "histology": "small_cell_lung",
                "radiosensitivity": "radiosensitive",
                "escc": "1b",
                "sins": 5,
            }
        }
    )
    assert out["recommendation"] == "cEBRT"
    # 7-12 shows the other option
    ranked = score_case({"noms": {"histology": "prostate", "escc": "1b", "sins": 9}})[
        "recommendation_detail"
    ]["ranked"]
    assert [r["option"] for r in ranked] == ["cEBRT", "stabilization+cEBRT"]


def test_noms_from_imaging_sins_range() -> None:
    base = {
        "levels": ["T11"],
        "lesion": "lytic",
        "alignment": "normal",
        "collapse": "lt50",
        "posterolateral": "none",
    }
    # SINS {7,8,10}: potentially unstable whatever the pain -> decided
    out = score_case({"sins": base, "noms": {"histology": "breast", "escc": "1b"}})
    assert out["noms_M"] == "potentially_unstable" and out["recommendation"] == "cEBRT"
    # SINS {5,6,8}: stable or potentially unstable -> same primary option, still decided
    out = score_case(
        {"sins": {**base, "levels": ["T6"]}, "noms": {"histology": "breast", "escc": "1b"}}
    )
    assert out["noms_M"] is None and out["recommendation"] == "cEBRT"
    # SINS {10,11,13}: potentially unstable or unstable -> undetermined, options listed
    out = score_case(
        {
            "sins": {**base, "alignment": "de_novo_deformity", "collapse": "gt50"},
            "noms": {"histology": "breast", "escc": "1b"},
        }
    )
    assert out["recommendation"] is None
    assert {o["recommendation"] for o in out["recommendation_options"]} == {
        "cEBRT",
        "stabilization+cEBRT",
    }


@pytest.mark.parametrize(
    ("kps", "pts"),
    [(10, 0), (40, 0), (50, 1), (70, 1), (80, 2), (100, 2)],
)
def test_tokuhashi_kps(kps, pts) -> None:
    inp = {
        "tokuhashi": {
            "kps": kps,
            "extraspinal_bone_mets": 0,
            "vertebral_body_mets": 1,
            "visceral_major_organs": "none",
            "primary": "breast",
            "frankel": "E",
        }
    }
    assert score_case(inp)["tokuhashi_total"] == pts + 2 + 2 + 2 + 5 + 2


@pytest.mark.parametrize("kps", [0, 75, 110, -10, 5])
def test_kps_invalid(kps) -> None:
    inp = {"tokuhashi": {"kps": kps, "vertebral_body_mets": 1, "primary": "breast"}}
    assert score_case(inp)["error"] == "KPS_INVALID"


@pytest.mark.parametrize(
    ("primary", "pts"),
    [
        ("lung", 0),
        ("nsclc", 0),
        ("osteosarcoma", 0),
        ("stomach", 0),
        ("bladder", 0),
        ("esophagus", 0),
        ("pancreas", 0),
        ("liver", 1),
        ("hcc", 1),
        ("gallbladder", 1),
        ("unidentified", 1),
        ("unknown primary", 1),
        ("colon", 2),
        ("melanoma", 2),
        ("myeloma", 2),
        ("lymphoma", 2),
        ("ovary", 2),
        ("others", 2),
        ("kidney", 3),
        ("renal cell", 3),
        ("uterus", 3),
        ("cervix", 3),
        ("rectum", 4),
        ("thyroid", 5),
        ("breast", 5),
        ("prostate", 5),
        ("carcinoid", 5),
    ],
)
def test_tokuhashi_primary(primary, pts) -> None:
    inp = {
        "tokuhashi": {
            "kps": 10,
            "extraspinal_bone_mets": 3,
            "vertebral_body_mets": 3,
            "visceral_major_organs": "unremovable",
            "primary": primary,
            "frankel": "A",
        }
    }
    assert score_case(inp)["tokuhashi_total"] == pts


def test_tokuhashi_edges() -> None:
    base = {
        "kps": 60,
        "extraspinal_bone_mets": 0,
        "vertebral_body_mets": 1,
        "visceral_major_organs": "none",
        "primary": "colon",
        "frankel": "D",
    }
    assert (
        score_case({"tokuhashi": {**base, "primary": "gastric_cancer_x"}})["error"]
        == "HISTOLOGY_UNMAPPED"
    )
    assert (
        score_case({"tokuhashi": {**base, "vertebral_body_mets": 0}})["error"]
        == "NO_SPINAL_METASTASIS"
    )
    asia = score_case(
        {"tokuhashi": {**{k: v for k, v in base.items() if k != "frankel"}, "asia": "D"}}
    )
    assert asia["tokuhashi_total"] == 10 and asia["flags"] == ["FRANKEL_FROM_ASIA"]
    assert (
        score_case({"tokuhashi": {**base, "extraspinal_bone_mets": 1}})["excisional_exception"]
        is False
    )
    ecog = score_case(
        {
            "tokuhashi": {
                **{k: v for k, v in base.items() if k != "kps"},
                "ecog": 3,
                "ecog_mapping": "B",
            }
        }
    )
    assert ecog["tokuhashi_total_range"] == [9, 10] and ecog["tokuhashi_band"] == ">=6_months"
    assert set(ecog["flags"]) == {"KPS_FROM_ECOG_MAPPING_B", "GENERAL_CONDITION_AMBIGUOUS"}
    exact = score_case(
        {
            "tokuhashi": {
                **{k: v for k, v in base.items() if k != "kps"},
                "ecog": 2,
                "ecog_mapping": "A",
            }
        }
    )
    assert exact["tokuhashi_total"] == 10 and exact["flags"] == ["KPS_FROM_ECOG_MAPPING_A"]
    silent = score_case({"tokuhashi": {**{k: v for k, v in base.items() if k != "kps"}, "ecog": 2}})
    assert silent["tokuhashi_total"] is None and "INCOMPLETE_KPS_MISSING" in silent["flags"]


def test_tomita_rules() -> None:
    assert (
        score_case({"tomita": {"histology": "prostate", "visceral": "none", "bone": "multiple"}})[
            "error"
        ]
        == "HISTOLOGY_UNMAPPED"
    )
    for hist, pts in [
        ("breast", 1),
        ("thyroid", 1),
        ("kidney", 2),
        ("uterus", 2),
        ("lung", 4),
        ("stomach", 4),
        ("nsclc", 4),
    ]:
        assert (
            score_case({"tomita": {"histology": hist, "visceral": "none", "bone": "solitary"}})[
                "tomita_total"
            ]
            == pts + 1
        )
    ten = score_case(
        {"tomita": {"histology": "stomach", "visceral": "untreatable", "bone": "multiple"}}
    )
    assert (ten["tomita_total"], ten["tomita_goal"], ten["tomita_surgery"]) == (
        10,
        "terminal_care",
        "supportive_care",
    )


def test_bauer_nesms_rules() -> None:
    lung = score_case(
        {"modified_bauer": {"primary": "lung", "visceral_mets": False, "skeletal_mets_total": 1}}
    )
    assert (lung["mbauer_total"], lung["mbauer_band"]) == (2, "moderate")
    six = score_case(
        {
            "modified_bauer": {
                "primary": "breast",
                "visceral_mets": False,
                "skeletal_mets_total": 4,
            },
            "ambulatory_independent": True,
        }
    )
    assert (six["nesms_total"], six["nesms_raw"], six["nesms_raw_range"]) == (3, None, [3, 4])
    assert (
        score_case(
            {"modified_bauer_ge3": False, "ambulatory_independent": True, "albumin_g_l": 34}
        )["nesms_total"]
        == 1
    )
    assert (
        score_case(
            {
                "modified_bauer_ge3": False,
                "ambulatory_independent": True,
                "albumin_as_entered": "35 g/L",
            }
        )["nesms_total"]
        == 2
    )
    assert score_case({"modified_bauer_ge3": False, "albumin_g_dl": 35})["error"] == "INVALID_VALUE"
    assert (
        score_case({"modified_bauer_ge3": False, "albumin_g_dl": 3.2, "albumin_g_l": 35})["error"]
        == "CONTRADICTION_ALBUMIN"
    )
    assert (
        score_case({"frankel": "B", "ambulatory_independent": True})["error"]
        == "CONTRADICTION_NEURO_AMBULATION"
    )
    assert (
        score_case({"asia": "A", "ambulatory_independent": True})["error"]
        == "CONTRADICTION_NEURO_AMBULATION"
    )
    assert "error" not in score_case(
        {"frankel": "C", "ambulatory_independent": False, "modified_bauer_ge3": True}
    )


def test_kps_values_mappings() -> None:
    out = score_case({"kps_values": [100, 50, 0]})
    assert (out["ecog_mapping_A"], out["ecog_mapping_B"], out["ecog_mapping_C"]) == (
        [0, 2, 5],
        [0, 3, 5],
        [0, 3, 5],
    )
    assert score_case({"kps_values": [55]})["error"] == "KPS_INVALID"


def test_noms_sins_category_and_incompatible_findings() -> None:
    assert (
        score_case({"noms": {"histology": "breast", "escc": "1b", "sins_category": "unstable"}})[
            "recommendation"
        ]
        == "stabilization+cEBRT"
    )
    assert (
        score_case(
            {"noms": {"histology": "breast", "escc": "1b", "sins": 5, "sins_category": "unstable"}}
        )["error"]
        == "CONTRADICTION_SINS_TOTAL"
    )
    assert score_case(sins(collapse=["gt50", "none"]))["error"] == "CONTRADICTION_COLLAPSE"
    assert score_case(sins(collapse=["gt50"]))["sins_components"]["collapse"] == 3


def test_1c_flag_only_when_the_convention_decides() -> None:
    feats = {
        "epidural_tumour": True,
        "thecal_sac_deformed": True,
        "cord_abutment": None,
        "cord_compressed": False,
        "csf_visible_around_cord": True,
    }
    out = score_case({"escc_features": feats})
    assert out["escc_possible_grades"] == ["1b", "1c"] and out["escc_high_grade"] is False
    assert "ESCC_1C_CONTROVERSIAL" in out["flags"]
    unknown = score_case({"escc_features": {k: None for k in feats}})
    assert unknown["escc_high_grade"] is None and "ESCC_1C_CONTROVERSIAL" not in unknown["flags"]
