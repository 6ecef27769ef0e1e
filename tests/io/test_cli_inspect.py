"""`spinemet inspect` text and JSON output."""

from __future__ import annotations

import json

import numpy as np
from io_dicom_factory import write_series

from pipeline.cli import main
from pipeline.io import Volume, write_nifti


def _study(tmp_path):
    px = np.full((5, 6, 7), 24, np.int16)
    write_series(tmp_path / "ct", px, study_uid="1.1", SeriesDescription="body", SeriesNumber=2)
    write_series(
        tmp_path / "gap",
        px[:4],
        positions=[(0, 0, z) for z in (0, 2, 4, 10)],
        study_uid="1.1",
        SeriesDescription="gappy",
        SeriesNumber=3,
    )
    (tmp_path / "notes.txt").write_text("x")


def test_inspect_text_lists_series_checks_and_selection(tmp_path, capsys):
    _study(tmp_path)
    assert main(["inspect", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "skipped: NOT_DICOM x1" in out
    assert "'body'  <- ct_axial" in out
    assert "ERROR   MISSING_SLICES" in out
    assert (
        "ct_axial, mr_sagittal_t2, mr_sagittal_t1, mr_sagittal_stir, mr_axial_t2: rejected (geometry: MISSING_SLICES)"
        in out
    )
    assert "loaded ct_axial: CT shape (7, 6, 5)" in out
    assert "values -1000..-1000" in out


def test_inspect_json_no_load(tmp_path, capsys):
    _study(tmp_path)
    assert main(["inspect", str(tmp_path), "--json", "--no-load"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["volumes"] == {}
    series = {s["description"]: s for s in doc["studies"][0]["series"]}
    assert series["body"]["loadable"] and not series["gappy"]["loadable"]
    assert doc["selection"]["picked"]["ct_axial"] == series["body"]["key"]
    assert doc["skipped"][0]["code"] == "NOT_DICOM"


def test_inspect_nifti_with_and_without_modality(tmp_path, capsys):
    arr = np.full((6, 6, 6), -1000.0, np.float32)
    arr[2:4, 2:4, 2:4] = 800
    write_nifti(Volume(arr, np.eye(4), "CT"), tmp_path / "x.nii.gz")
    assert main(["inspect", str(tmp_path / "x.nii.gz"), "--modality", "CT", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert list(doc["volumes"]) == ["ct_axial"] and doc["warnings"] == []
    assert main(["inspect", str(tmp_path / "x.nii.gz")]) == 0
    out = capsys.readouterr().out
    assert "WARNING MODALITY_GUESSED" in out and "guessed" in out


def test_inspect_missing_path_is_one_line_error(tmp_path, capsys):
    assert main(["inspect", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("spinemet: error [INPUT_NOT_FOUND]") and "\n" not in err


def test_inspect_study_option(tmp_path, capsys):
    _study(tmp_path)
    write_series(tmp_path / "other", np.full((5, 6, 7), 24, np.int16), study_uid="2.2")
    assert main(["inspect", str(tmp_path), "--study", "2.2", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["selected_study"] == "2.2" and doc["warnings"] == []
    assert main(["inspect", str(tmp_path), "--study", "9.9"]) == 2
    assert "[STUDY_NOT_FOUND]" in capsys.readouterr().err
