"""``spinemet synth study`` / ``cohort`` from the command line."""

import json

from pipeline.cli import main


def test_synth_study_and_cohort_cli(tmp_path, capsys):
    out = tmp_path / "s"
    rc = main(["synth", "study", "--seed", "4", "--out", str(out), "--modality", "CT", "--ct-matrix", "64",
               "--grade", "1c", "--orientation", "flipped", "--no-dicom"])  # fmt: skip
    assert rc == 0
    truth = json.loads((out / "truth.json").read_text())
    assert truth["kind"] == "truth" and truth["escc"]["worst_grade"] == "1c"
    assert (out / "labels" / "ct_axial" / "structures.nii.gz").exists()
    assert (out / "nifti" / "ct_axial.nii.gz").exists() and not (out / "dicom").exists()
    rc = main(["synth", "cohort", "--n", "2", "--seed", "1", "--out", str(tmp_path / "c"), "--ct-matrix", "64",
               "--mr-matrix", "64", "--no-dicom"])  # fmt: skip
    assert rc == 0
    rows = json.loads((tmp_path / "c" / "manifest.json").read_text())["studies"]
    assert [r["grade"] for r in rows] == ["0", "1a"]
    assert (tmp_path / "c" / "manifest.csv").read_text().startswith("study,seed,modality")
