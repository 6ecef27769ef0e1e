"""Every worked case of ../shared/clinical/scoring_cases.json through the `spinemet score` path."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from scoring_helpers import load_cases, mismatches

from pipeline.cli import main

CASES = load_cases()
IDS = [c["id"] for c in CASES]


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_case_through_cli_main(case, tmp_path: Path, capsys) -> None:
    """`spinemet score INPUT.json` in process: all expected keys equal."""
    path = tmp_path / "inputs.json"
    path.write_text(json.dumps(case["inputs"]), encoding="utf-8")
    code = main(["score", str(path)])
    out = json.loads(capsys.readouterr().out)
    assert mismatches(case["expected"], out) == []
    refused = "error" in case["expected"] or "errors" in case["expected"]
    assert code == (1 if refused else 0)


def test_case_file_present_or_skipped(cases) -> None:
    assert len(cases) >= 47
    assert {c["id"] for c in cases} >= {"SINS-18", "NES-01", "XCON-01", "INT-01"}


def test_real_subprocess_stdin_and_file(cases, tmp_path: Path) -> None:
    """The installed console entry point, reading stdin and a file."""
    by_id = {c["id"]: c for c in cases}
    for cid in ("INT-01", "SINS-18", "XCON-01"):
        case = by_id[cid]
        proc = subprocess.run(
            [sys.executable, "-m", "pipeline", "score", "-"],
            input=json.dumps(case["inputs"]),
            capture_output=True,
            text=True,
            timeout=120,
        )
        out = json.loads(proc.stdout)
        assert mismatches(case["expected"], out) == [], (cid, proc.stderr)
        assert proc.returncode == (1 if cid == "XCON-01" else 0)
    yaml_path = tmp_path / "case.yaml"
    yaml_path.write_text(
        "sins:\n  levels: [T10, T11]\n  pain: mechanical\n  lesion: blastic\n"
        "  alignment: normal\n  collapse: lt50\n  posterolateral: none\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline", "score", str(yaml_path), "--explain"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = json.loads(proc.stdout)
    assert proc.returncode == 0 and out["sins_total"] == 8
    assert {e["component"] for e in out["explanation"]} >= {"location", "pain", "collapse"}
