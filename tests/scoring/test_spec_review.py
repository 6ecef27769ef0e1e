"""Rules of SCORING.md found by an independent review of the engine against the note.

Each test names the SCORING.md section it encodes.
"""

from __future__ import annotations

import pytest

from pipeline.scoring import score_case


def sins_block(**kw):
    base = {
        "pain": "mechanical",
        "lesion": "lytic",
        "alignment": "normal",
        "collapse": "none",
        "posterolateral": "none",
    }
    return {**base, **kw}


# ---------------------------------------------------------------- SCORING.md 1.2 / 0.6
def test_spec_1_2_single_level_field_is_the_sins_location() -> None:
    """A level given as ``sins.level`` or as the case ``level`` scores location (1.2), never
    'location missing'."""
    for inputs in (
        {"sins": sins_block(level="L3")},
        {"sins": sins_block(), "level": "L3"},
    ):
        out = score_case(inputs)
        assert out["sins_total"] == 2 + 3 + 2, inputs
        assert "INCOMPLETE_LOCATION_MISSING" not in out["flags"]
    # sins.levels wins over the case level (e.g. ESCC read at a disc level)
    out = score_case({"sins": sins_block(levels=["T6"]), "level": "T6/T7"})
    assert out["sins_total"] == 1 + 3 + 2
    out = score_case({"sins": sins_block(levels=["T6"], level="L3")})
    assert out["error"] == "CONTRADICTION_LEVEL"


def test_spec_1_2_level_on_its_own_still_refuses_transitional_and_coccyx() -> None:
    assert score_case({"sins": sins_block(level="L6")})["error"] == (
        "TRANSITIONAL_LEVEL_UNCONFIRMED"
    )
    assert score_case({"sins": sins_block(), "level": "Co1"})["error"] == "LEVEL_NOT_IN_SINS"


@pytest.mark.parametrize(
    ("text", "levels", "location"),
    [
        ("T10-T11", ["T10", "T11"], 3),
        ("C7-T2", ["C7", "T1", "T2"], 3),
        ("T9/T10", ["T9", "T10"], 1),
        ("L5-S1", ["L5", "S1"], 3),
        ("S2-S4", ["S2", "S3", "S4"], 0),
        ("C0 (occiput)", ["C0"], 3),
    ],
)
def test_spec_1_2_ranges_are_inclusive_at_both_ends(text, levels, location) -> None:
    """SCORING.md 1.2: "C7-T2 includes T2"; a range names every vertebra between its ends."""
    out = score_case({"sins": sins_block(levels=[text])})
    assert list(out["sins_location_per_level"]) == levels
    assert out["sins_components"]["location"] == location


@pytest.mark.parametrize(
    ("text", "code"),
    [("T12-T13", "TRANSITIONAL_LEVEL_UNCONFIRMED"), ("Co1-Co2", "LEVEL_NOT_IN_SINS")],
)
def test_spec_0_6_ranges_keep_the_level_refusals(text, code) -> None:
    assert score_case({"sins": sins_block(levels=[text])})["error"] == code


# ---------------------------------------------------------------- SCORING.md 1.5
@pytest.mark.parametrize(
    "extra",
    [
        {"costovertebral_joint": True},
        {"posterolateral_sites": ["costovertebral_joint"]},
        {"structures": ["facet", "costovertebral joint"]},
        {"posterolateral_findings": [{"structure": "costovertebral_joint", "side": "left"}]},
        {"cv_joint_involvement": {"left": True}},
    ],
)
def test_spec_1_5_costovertebral_finding_at_lumbar_level_is_refused(extra) -> None:
    """Costovertebral joints exist only at T1-T12 (SCORING.md 1.5, case SINS-23), whatever
    the name under which the finding is entered."""
    out = score_case({"sins": sins_block(levels=["L3"], posterolateral="unilateral", **extra)})
    assert out["error"] == "CONTRADICTION_CV_JOINT_LEVEL"
    out = score_case({"sins": sins_block(levels=["T8"], posterolateral="unilateral", **extra)})
    assert out["sins_total"] == 1 + 3 + 2 + 1


def test_spec_1_5_case_level_costovertebral_finding_joins_the_sins_lesion() -> None:
    out = score_case(
        {
            "sins": sins_block(levels=["L3"], posterolateral="unilateral"),
            "costovertebral_involved": True,
        }
    )
    assert out["error"] == "CONTRADICTION_CV_JOINT_LEVEL"
    out = score_case({"sins": sins_block(levels=["L3"]), "costovertebral_joint": False})
    assert out["sins_total"] == 2 + 3 + 2
    # an unrelated unknown field is still an error
    assert score_case({"sins": sins_block(levels=["L3"], structures=["lamina"])})["error"] == (
        "UNKNOWN_FIELD"
    )


# ---------------------------------------------------------------- robustness (issue: named errors)
@pytest.mark.parametrize(
    ("inputs", "code"),
    [
        ({"tokuhashi": {"kps": float("nan")}}, "INVALID_VALUE"),
        ({"tokuhashi": {"vertebral_body_mets": float("inf")}}, "INVALID_VALUE"),
        ({"albumin_g_dl": float("nan"), "ambulatory_independent": True}, "INVALID_VALUE"),
        ({"sins": sins_block(levels=["T6"], collapse_pct=float("nan"))}, "INVALID_VALUE"),
        ({"sins": sins_block(levels=["T6"], posterolateral_sites=[None])}, "INVALID_TYPE"),
        ({"kps_values": [90, None]}, "INVALID_TYPE"),
        # SCORING.md 4.4: a KPS that is not a multiple of 10 is KPS_INVALID, also as a float
        ({"tokuhashi": {"kps": 80.5}}, "KPS_INVALID"),
        ({"kps_values": [100, 95]}, "KPS_INVALID"),
    ],
)
def test_non_finite_and_null_items_are_named_errors(inputs, code) -> None:
    out = score_case(inputs)
    assert out["error"] == code


def test_csv_kps_column_and_bad_list_cell(tmp_path) -> None:
    from pipeline.cli.score_cmd import score_text

    res, _ = score_text("tokuhashi.kps,kps_values\n80,90;60\n", "csv")
    assert res[0]["ecog_mapping_A"] == [0, 2] and "error" not in res[0]
    res, code = score_text("tokuhashi.kps,kps_values\n80,90;x\n", "csv")
    assert res["error"] == "INVALID_TYPE" and code == 2


# ---------------------------------------------------------------- SCORING.md 3.2 / 4.3
def test_spec_3_2_colorectal_is_radioresistant_but_tokuhashi_needs_colon_or_rectum() -> None:
    """NOMS lists "colon (colorectal)" as radioresistant (3.2); Tokuhashi scores colon 2 and
    rectum 4 (4.3), so the group term alone cannot give Tokuhashi points."""
    out = score_case({"noms": {"histology": "colorectal", "escc": "1a", "sins": 4}})
    assert out["noms_O"] == "radioresistant" and out["recommendation"] == "SRS"
    tok = {"kps": 60, "extraspinal_bone_mets": 0, "vertebral_body_mets": 1}
    tok |= {"visceral_major_organs": "none", "frankel": "D"}
    out = score_case({"tokuhashi": {**tok, "primary": "colorectal"}})
    assert out["error"] == "HISTOLOGY_UNMAPPED"
    # the specific term entered elsewhere is one fact with the group term
    out = score_case(
        {
            "noms": {"histology": "colorectal", "escc": "1a", "sins": 4},
            "tokuhashi": {**tok, "primary": "rectum"},
        }
    )
    assert out["tokuhashi_total"] == 12 and out["noms_O"] == "radioresistant"
    out = score_case(
        {"noms": {"histology": "colorectal", "escc": "1a", "sins": 4}, "tomita_histology": "breast"}
    )
    assert out["error"] == "CONTRADICTION_HISTOLOGY"


@pytest.mark.parametrize(
    ("value", "points_at_t8"),
    [
        ("unilateral costovertebral joint", 1),
        ({"side": "bilateral", "structure": "costovertebral_joint"}, 3),
        (["costovertebral_joint"], None),
    ],
)
def test_spec_1_5_posterolateral_written_with_its_structure(value, points_at_t8) -> None:
    """SCORING.md 1.5: "facet, pedicle or costovertebral joint"; a finding that names the
    costovertebral joint in the posterolateral item itself is read, not refused as a bad
    value, and the T1-T12 rule still applies."""
    out = score_case({"sins": sins_block(levels=["L3"], posterolateral=value)})
    assert out["error"] == "CONTRADICTION_CV_JOINT_LEVEL"
    out = score_case({"sins": sins_block(levels=["T8"], posterolateral=value)})
    if points_at_t8 is None:
        assert out["sins_total"] is None and "INCOMPLETE_POSTEROLATERAL_MISSING" in out["flags"]
    else:
        assert out["sins_components"]["posterolateral"] == points_at_t8


# ---------------------------------------------------------------- SCORING.md 0.1 / 7.3
def test_spec_7_3_kps_and_ecog_entered_together_must_agree() -> None:
    """One fact entered twice (0.1): KPS 40 is ECOG 3-4 under every mapping (7.3), so ECOG 0
    beside it is refused; KPS 90 with ECOG 1 agrees with mappings B and C only."""
    tok = {"extraspinal_bone_mets": 0, "vertebral_body_mets": 1}
    tok |= {"visceral_major_organs": "none", "primary": "breast", "frankel": "E"}
    out = score_case({"tokuhashi": {**tok, "kps": 40, "ecog": 0}})
    assert out["error"] == "CONTRADICTION_PERFORMANCE_STATUS"
    assert score_case({"tokuhashi": {**tok, "kps": 90, "ecog": 1}})["tokuhashi_total"] == 15
    out = score_case({"tokuhashi": {**tok, "kps": 90, "ecog": 1, "ecog_mapping": "A"}})
    assert out["error"] == "CONTRADICTION_PERFORMANCE_STATUS"
    out = score_case({"tokuhashi": {**tok, "kps": 90, "ecog": 1, "ecog_mapping": "B"}})
    assert out["tokuhashi_total"] == 15 and out["flags"] == []
