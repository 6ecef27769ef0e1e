"""Canonical record: input validation, shared facts, contradictions, CSV/YAML documents."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.cli.score_cmd import score_text
from pipeline.scoring import build_record, score_case
from pipeline.scoring.base import ScoringError
from pipeline.scoring.record import albumin_from_text, rows_from_csv
from pipeline.scoring.tables import load_tables

T = load_tables()


@pytest.mark.parametrize(
    ("inputs", "code"),
    [
        ({"sins": {"levles": ["T1"]}}, "UNKNOWN_FIELD"),
        ({"kps_score": 80}, "UNKNOWN_FIELD"),
        ({"tokuhashi": {"kps": "80"}}, "INVALID_TYPE"),
        ({"tokuhashi": {"kps": True}}, "INVALID_TYPE"),
        ({"ambulatory_independent": "yes"}, "INVALID_TYPE"),
        ({"sins": ["T1"]}, "INVALID_TYPE"),
        ({"sins": {"levels": ["T1"], "lesion": "lytic-ish"}}, "INVALID_VALUE"),
        ({"tomita": {"bone": "few"}}, "INVALID_VALUE"),
        ({"noms": {"escc": "4"}}, "INVALID_VALUE"),
        ({"tokuhashi": {"frankel": "F"}}, "INVALID_VALUE"),
        ({"tokuhashi": {"extraspinal_bone_mets": -1}}, "INVALID_VALUE"),
        ("not a mapping", "INVALID_TYPE"),
    ],
)
def test_bad_fields_are_named_errors(inputs, code) -> None:
    out = score_case(inputs)
    assert out["error"] == code and out["error_messages"][code]


def test_one_fact_projected_into_every_score() -> None:
    rec = build_record(
        {
            "noms": {
                "histology": "nsclc",
                "escc": "2",
                "sins": 9,
                "able_to_tolerate_surgery": True,
            },
            "tokuhashi": {"primary": "lung", "vertebral_body_mets": 2, "extraspinal_bone_mets": 1},
            "tomita": {"histology": "lung"},
            "modified_bauer": {"primary": "lung", "visceral_mets": True},
            "tokuhashi_visceral": "removable",
        },
        T,
    )
    assert rec.histology == "nsclc"
    assert rec.visceral == "treatable"
    assert rec.skeletal_mets_total == 3
    out = score_case(
        {
            "tokuhashi": {
                "primary": "lung",
                "vertebral_body_mets": 2,
                "extraspinal_bone_mets": 1,
                "visceral_major_organs": "removable",
                "kps": 80,
                "frankel": "E",
            },
            "tomita": {"histology": "lung"},
            "modified_bauer": {"primary": "lung", "visceral_mets": True},
        }
    )
    # Tomita bone and visceral, mBauer skeletal count all come from the shared record
    assert out["tomita_total"] == 4 + 2 + 2 and out["mbauer_total"] == 0
    assert out["tokuhashi_total"] == 2 + 1 + 1 + 1 + 0 + 2


@pytest.mark.parametrize(
    ("inputs", "codes"),
    [
        (
            {"tokuhashi": {"primary": "breast"}, "tomita": {"histology": "lung"}},
            ["CONTRADICTION_HISTOLOGY"],
        ),
        (
            {"noms": {"histology": "nsclc"}, "tomita": {"histology": "small cell lung"}},
            ["CONTRADICTION_HISTOLOGY"],
        ),
        (
            {
                "tokuhashi": {"visceral_major_organs": "removable"},
                "tomita": {"visceral": "untreatable"},
            },
            ["CONTRADICTION_VISCERAL"],
        ),
        (
            {
                "tokuhashi": {"visceral_major_organs": "none"},
                "modified_bauer": {"visceral_mets": True},
            },
            ["CONTRADICTION_VISCERAL"],
        ),
        (
            {"tokuhashi": {"vertebral_body_mets": 2}, "tomita": {"bone": "solitary"}},
            ["CONTRADICTION_SKELETAL_COUNT"],
        ),
        (
            {
                "tokuhashi": {"vertebral_body_mets": 1, "extraspinal_bone_mets": 0},
                "modified_bauer": {"skeletal_mets_total": 3},
            },
            ["CONTRADICTION_SKELETAL_COUNT"],
        ),
        (
            {"sins": {"levels": ["T10", "T11", "T12"]}, "tokuhashi": {"vertebral_body_mets": 2}},
            ["CONTRADICTION_SKELETAL_COUNT"],
        ),
        (
            {
                "tokuhashi": {"frankel": "A"},
                "ambulatory_independent": True,
                "tomita_visceral": "none",
                "visceral_mets": True,
            },
            ["CONTRADICTION_NEURO_AMBULATION", "CONTRADICTION_VISCERAL"],
        ),
        ({"tokuhashi": {"kps": 80}, "kps": 70}, ["CONTRADICTION_KPS"]),
    ],
)
def test_contradictions_refuse_every_score(inputs, codes) -> None:
    out = score_case(inputs)
    assert out["errors"] == codes and out["error"] == codes[0]
    assert not any(k.endswith("_total") for k in out)


def test_grade_and_sins_given_twice_must_agree() -> None:
    feats = {
        "epidural_tumour": True,
        "thecal_sac_deformed": True,
        "cord_abutment": True,
        "cord_compressed": True,
        "csf_visible_around_cord": None,
    }
    ok = score_case(
        {"escc_features": feats, "noms": {"escc": "3", "histology": "breast", "sins": 3}}
    )
    assert ok["escc_grade"] == "3" and ok["recommendation"] == "cEBRT"
    bad = score_case(
        {"escc_features": feats, "noms": {"escc": "1b", "histology": "breast", "sins": 3}}
    )
    assert bad["error"] == "CONTRADICTION_ESCC_GRADE" and "recommendation" not in bad
    sins = {
        "levels": ["T6"],
        "lesion": "lytic",
        "alignment": "normal",
        "collapse": "none",
        "posterolateral": "none",
    }
    assert (
        score_case({"sins": sins, "noms": {"sins": 4, "escc": "0", "histology": "breast"}})[
            "recommendation"
        ]
        == "cEBRT"
    )
    assert (
        score_case({"sins": sins, "noms": {"sins": 5, "escc": "0", "histology": "breast"}})["error"]
        == "CONTRADICTION_SINS_TOTAL"
    )


def test_independent_scores_survive_another_systems_error() -> None:
    out = score_case(
        {
            "tomita": {"histology": "prostate", "visceral": "none", "bone": "multiple"},
            "tokuhashi": {
                "kps": 80,
                "extraspinal_bone_mets": 2,
                "primary": "prostate",
                "visceral_major_organs": "none",
                "frankel": "E",
            },
        }
    )
    assert out["error"] == "HISTOLOGY_UNMAPPED" and "tomita_total" not in out
    assert out["tokuhashi_total_range"] == [12, 14]


def test_albumin_units() -> None:
    assert albumin_from_text("35 g/L") == pytest.approx(3.5)
    assert albumin_from_text("3,4 g/dL") == pytest.approx(3.4)
    with pytest.raises(ScoringError):
        albumin_from_text("35 mmol/L")


def test_csv_batch_one_row_per_patient(tmp_path: Path) -> None:
    text = (
        "id,sins.levels,sins.pain,sins.lesion,sins.alignment,sins.collapse,sins.posterolateral,tokuhashi.kps,ambulatory_independent\n"
        "p1,T10;T11,mechanical,blastic,normal,lt50,none,,\n"
        "p2,C5,,lytic,normal,lt50,none,80,yes\n"
        "p3,Co1,,lytic,normal,lt50,none,,\n"
    )
    rows = rows_from_csv(text)
    assert rows[0]["sins"]["levels"] == ["T10", "T11"] and rows[1]["ambulatory_independent"] is True
    result, code = score_text(text, "csv")
    assert code == 1
    assert [r["id"] for r in result] == ["p1", "p2", "p3"]
    assert result[0]["sins_total"] == 8 and result[1]["reachable_totals"] == [6, 7, 9]
    assert result[2]["error"] == "LEVEL_NOT_IN_SINS"
    bad, code = score_text("id,tokuhashi.kps\np1,eighty\n", "csv")
    assert (
        code == 1 and bad[0]["error"] == "INVALID_TYPE"
        if isinstance(bad, list)
        else bad["error"] == "INVALID_TYPE"
    )


def test_cli_unreadable_inputs(tmp_path: Path) -> None:
    out, code = score_text("{not json", "json")
    assert code == 2 and out["error"] == "INPUT_UNREADABLE"
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline", "score", str(tmp_path / "missing.json")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and json.loads(proc.stdout)["error"] == "INPUT_UNREADABLE"


def test_prefixed_per_score_copies_are_shared_facts() -> None:
    assert (
        score_case(
            {"tomita": {"histology": "lung", "visceral": "none"}, "tomita_bone": "solitary"}
        )["tomita_total"]
        == 5
    )
    assert score_case({"tomita_bone": "solitary", "mbauer_skeletal_mets_total": 3})["errors"] == [
        "CONTRADICTION_SKELETAL_COUNT"
    ]
    assert score_case({"tokuhashi": {"primary": "breast"}, "mbauer_primary": "lung"})["errors"] == [
        "CONTRADICTION_HISTOLOGY"
    ]
    assert score_case({"tomita": {"visceral": "none"}, "tomita_visceral": "treatable"})[
        "errors"
    ] == ["CONTRADICTION_VISCERAL"]
    assert score_case({"tomita_colour": "red"})["error"] == "UNKNOWN_FIELD"
