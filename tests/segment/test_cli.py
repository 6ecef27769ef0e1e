"""``spinemet segment`` with the labels backend, through the CLI entry point."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from pipeline.cli import main

TS_CT = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "ts-example-ct-dicom"


def test_segment_cli_labels_backend_writes_maps_and_summary(tmp_path: Path) -> None:
    if not TS_CT.exists():
        pytest.skip("ts-example-ct-dicom not available")
    rc = main(["segment", str(TS_CT / "dicom"), "--backend", "labels", "--labels",
               str(TS_CT / "example_seg_dicom_totalseg_fast.nii.gz"), "--out", str(tmp_path)])  # fmt: skip
    assert rc == 0
    summary = json.loads((tmp_path / "segmentation.json").read_text())
    assert summary["levels"] == ["T11", "T12"] and summary["numbering_uncertain"] is False
    vert = np.asarray(nib.load(str(tmp_path / "vertebrae.nii.gz")).dataobj)
    assert int((vert == 18).sum()) == 9930 and int((vert == 19).sum()) == 23576


def test_segment_cli_reports_a_missing_label_file_as_one_line(tmp_path: Path, capsys) -> None:
    if not TS_CT.exists():
        pytest.skip("ts-example-ct-dicom not available")
    rc = main(["segment", str(TS_CT / "dicom"), "--backend", "labels", "--labels", str(tmp_path / "x.nii.gz"),
               "--out", str(tmp_path)])  # fmt: skip
    assert rc == 2
    assert "INPUT_NOT_FOUND" in capsys.readouterr().err


def test_segment_cli_refines_the_canal_on_request(tmp_path: Path, capsys) -> None:
    """``--refine-canal``: the built-in model, then the CT canal model its card names."""
    if not TS_CT.exists():
        pytest.skip("ts-example-ct-dicom not available")
    rc = main(["segment", str(TS_CT / "dicom"), "--backend", "labels", "--labels",
               str(TS_CT / "example_seg_dicom_totalseg_fast.nii.gz"), "--refine-canal",
               "--out", str(tmp_path)])  # fmt: skip
    assert rc == 2 and "OPTION_INVALID" in capsys.readouterr().err
    rc = main(["segment", str(TS_CT / "dicom"), "--refine-canal", "--refine-lesions",
               "--device", "cpu", "--out", str(tmp_path)])  # fmt: skip
    assert rc == 0
    meta = json.loads((tmp_path / "segmentation.json").read_text())["meta"]
    info = meta["canal_refine"]
    assert info["applied"] and info["model"] == "spinemet-canal-ct" and info["slices"] > 10
    out = capsys.readouterr().out
    assert "canal refinement: canal re-segmented" in out
    les = meta["lesion_refine"]
    assert les["applied"] and les["model"] == "spinemet-lesion-ct"
    assert "lesion refinement: osseous lesions re-segmented" in out
    # the real CT has no metastasis: nothing the gate lets through is left as lesion
    st = np.asarray(nib.load(str(tmp_path / "structures.nii.gz")).dataobj)
    assert not np.isin(st, (4, 5)).any()
