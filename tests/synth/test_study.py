"""Written studies: DICOM geometry (project loader and SimpleITK), landmarks, determinism, truth."""

from __future__ import annotations

import hashlib
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from pipeline.io import open_study
from pipeline.io.volume import Volume
from pipeline.labels import BODY
from pipeline.schema import validate_report
from pipeline.synth.generator import StudyOptions
from pipeline.synth.study import generate_study


def _small(seed: int, out: Path, orientation: str, modality: str = "both"):
    opts = StudyOptions(
        region="thoracolumbar", grade="2", lesion_type="lytic", collapse="lt50", alignment="normal"
    )
    return generate_study(seed, out, opts, modality=modality, orientation=orientation, ct_matrix=192, ct_max_slices=70,
                          mr_matrix=160)  # fmt: skip


@pytest.fixture(scope="module", params=["standard", "flipped", "oblique"])
def study(request, tmp_path_factory):
    out = tmp_path_factory.mktemp(f"study_{request.param}")
    return _small(21, out, request.param)


def _sitk_volume(folder: Path) -> Volume:
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    img = reader.Execute()
    arr = sitk.GetArrayFromImage(img).transpose(2, 1, 0)
    aff = np.eye(4)
    aff[:3, :3] = np.asarray(img.GetDirection()).reshape(3, 3) * np.asarray(img.GetSpacing())
    aff[:3, 3] = img.GetOrigin()
    return Volume(arr.astype(np.float32), aff, "CT").to_canonical()


def test_dicom_loads_with_project_loader_and_sitk_at_same_geometry(study):
    loaded = open_study(study.out / "dicom")
    roles = {"ct_axial": "ct_axial", "t2_sag": "mr_sagittal_t2", "t2_ax": "mr_axial_t2"}
    for s in study.series:
        ref = Volume(np.asarray(nib.load(study.out / "nifti" / f"{s.name}.nii.gz").dataobj, np.float32), s.affine,
                     s.modality).to_canonical()  # fmt: skip
        ours = loaded.volumes[roles[s.name]]
        via_sitk = _sitk_volume(study.out / "dicom" / s.name)
        for vol in (ours, via_sitk):
            assert vol.shape == ref.shape, s.name
            np.testing.assert_allclose(vol.affine, ref.affine, atol=1e-3, err_msg=s.name)
            # stored values are rounded (CT: HU + 1024 clipped to 12 bits; MR: uint16)
            expect = (
                np.clip(np.rint(ref.array), -1024, 3071)
                if s.modality == "CT"
                else np.clip(np.rint(ref.array), 0, 65535)
            )
            np.testing.assert_array_equal(vol.array, expect, err_msg=s.name)
        assert ours.modality == s.modality


def _body_centroid(out: Path, name: str, level: int) -> tuple[np.ndarray, float]:
    vert = nib.load(out / "labels" / name / "vertebrae.nii.gz")
    parts = np.asarray(nib.load(out / "labels" / name / "parts.nii.gz").dataobj)
    v = np.asarray(vert.dataobj)
    idx = np.argwhere((v == level) & (parts == BODY)).mean(axis=0)
    ras = vert.affine @ np.r_[idx, 1.0]
    lps = np.array([-ras[0], -ras[1], ras[2]])
    return lps, float(np.max(np.linalg.norm(vert.affine[:3, :3], axis=0)))


def test_landmark_positions_agree_across_series(study):
    level = study.plan.epidural_level
    pos = {s.name: _body_centroid(study.out, s.name, level) for s in study.series}
    names = list(pos)
    for a in names:
        for b in names:
            if a < b:
                tol = max(pos[a][1], pos[b][1])  # one voxel of the coarser grid
                d = float(np.linalg.norm(pos[a][0] - pos[b][0]))
                assert d <= tol, f"{a} vs {b}: {d:.2f} mm > {tol:.2f}"


def test_truth_document(study):
    t = study.truth
    validate_report(t)
    assert t["kind"] == "truth" and t["escc"]["worst_grade"] == "2"
    assert t["escc"]["per_level"][t["escc"]["worst_level"]] == "2"
    idx = [v for v in t["vertebrae"] if v["label"] == study.plan.index_level][0]
    assert idx["sins"]["collapse"] == "lt50" and 20 <= idx["measurements"]["collapse_pct"] <= 35
    assert idx["sins"]["lesion"] == "lytic" and idx["involved"]
    assert all(v["sins"]["alignment"] == "normal" for v in t["vertebrae"])


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def test_same_seed_same_bytes(tmp_path):
    opts = StudyOptions(grade="1b")
    for d in ("a", "b"):
        generate_study(5, tmp_path / d, opts, modality="CT", ct_matrix=96, ct_max_slices=12)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    generate_study(6, tmp_path / "c", opts, modality="CT", ct_matrix=96, ct_max_slices=12)
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c")
