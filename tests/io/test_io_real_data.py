"""Real headers from ../shared/data: the TotalSegmentator JPEG 2000 CT and dicom2nifti edge cases."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pydicom
import pytest

from pipeline.cli import main
from pipeline.errors import InputError
from pipeline.io import discover, discover_all, load_series, open_study, read_nifti

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
CT_DIR = DATA / "ts-example-ct-dicom" / "dicom"
EDGE = DATA / "dicom2nifti-geometry-edgecases"

needs_ct = pytest.mark.skipif(not CT_DIR.is_dir(), reason="shared CT sample absent")
needs_edge = pytest.mark.skipif(not EDGE.is_dir(), reason="shared edge cases absent")


@pytest.fixture(scope="module")
def ct_study():
    if not CT_DIR.is_dir():
        pytest.skip("shared CT sample absent")
    return open_study(CT_DIR)


@needs_ct
def test_real_ct_inspect_acceptance(capsys):
    """`spinemet inspect` finds one CT series: 20 slices, 2.0 mm (not 3.0), 0.977 mm, J2K decoded."""
    assert main(["inspect", str(CT_DIR), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert len(doc["studies"]) == 1 and len(doc["studies"][0]["series"]) == 1
    s = doc["studies"][0]["series"][0]
    assert s["modality"] == "CT" and s["n_frames"] == 20
    assert s["slice_spacing"] == pytest.approx(2.0, abs=1e-3)
    assert s["slice_thickness"] == pytest.approx(3.0)
    assert s["pixel_spacing"] == pytest.approx([0.977, 0.977], abs=1e-3)
    assert s["transfer_syntax"] == "1.2.840.10008.1.2.4.90"
    assert s["classification"]["plane"] == "axial"
    assert [f["code"] for f in s["findings"]] == ["THICKNESS_NE_SPACING"]
    v = doc["volumes"]["ct_axial"]
    assert v["shape"] == [512, 512, 20]
    assert v["spacing_mm"] == pytest.approx([0.9766, 0.9766, 2.0], abs=1e-3)
    assert v["min"] == pytest.approx(-1024) and v["p1"] < -950  # air
    assert 1000 < v["max"] < 3100  # cortical bone


@needs_ct
def test_real_ct_hu_and_geometry_match_reference_labels(ct_study):
    vol = ct_study.volumes["ct_axial"]
    assert vol.meta["study_uid"] == "" and len(vol.meta["sop_instance_uids"]) == 20
    assert vol.meta["frame_of_reference_uid"]
    # outside-body air is near -1000 HU
    air = vol.array[(vol.array > -1100) & (vol.array < -900)]
    assert air.size > 0.3 * vol.array.size and abs(float(np.median(air)) + 1000) < 30
    # The TotalSegmentator labels (NIfTI, LAS) describe the same grid: after loading both,
    # the grids agree and the T12 / T11 bodies average a few hundred HU, the cord soft tissue.
    lab = read_nifti(DATA / "ts-example-ct-dicom" / "example_seg_dicom_totalseg_fast.nii.gz", "CT")
    assert lab.shape == vol.shape
    assert np.allclose(lab.affine, vol.affine, atol=1e-3)
    labels = np.rint(lab.array).astype(int)
    for code in (32, 33):  # T12, T11
        assert 150 < float(vol.array[labels == code].mean()) < 600
    assert -50 < float(vol.array[labels == 79].mean()) < 80  # spinal cord


@needs_ct
def test_real_ct_slices_sit_at_their_image_positions(ct_study):
    vol = ct_study.volumes["ct_axial"]
    for f in sorted(CT_DIR.iterdir())[::7]:
        ds = pydicom.dcmread(f)
        ijk = vol.lps_to_index(np.array([float(x) for x in ds.ImagePositionPatient]))
        assert np.allclose(ijk, np.rint(ijk), atol=1e-4)
        i, j, k = np.rint(ijk).astype(int)
        hu = ds.pixel_array.astype(np.float32) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        # pixel (row r, col c) is at index (c, r, k) in the canonical axial array
        assert np.array_equal(vol.array[:, :, k], hu.T)
        assert (i, j) == (0, 0)


def _series_of(folder: Path):
    studies = discover(folder)
    return [s for st in studies for s in st.series]


@needs_edge
@pytest.mark.parametrize(
    "folder, codes",
    [
        ("failing/gantrytilting/001", {"GANTRY_TILT"}),
        ("failing/sliceincrement/001", {"MISSING_SLICES"}),
        ("failing/sliceincrement/002", {"MISSING_SLICES", "GANTRY_TILT"}),
        ("failing/notavolume/001", {"DUPLICATE_POSITIONS", "TOO_FEW_SLICES"}),
        ("failing/slicecount/001", {"TOO_FEW_SLICES"}),
        ("failing/sliceorientation/001", {"MIXED_ORIENTATIONS", "TOO_FEW_SLICES"}),
    ],
)
def test_edge_cases_get_their_named_codes(folder, codes):
    series = _series_of(EDGE / folder)
    found = {f.code for s in series for f in s.findings if f.severity != "info"}
    assert found == codes


@needs_edge
def test_mixed_orientation_series_is_split_in_two():
    series = _series_of(EDGE / "failing/sliceorientation/001")
    assert len(series) == 2
    assert sorted(s.classification.plane for s in series) == ["axial", "sagittal"]
    assert all(s.split_from and s.n_frames == 2 for s in series)


@needs_edge
def test_gantry_tilt_loads_with_warning_and_refuses_nothing():
    (s,) = _series_of(EDGE / "failing/gantrytilting/001")
    assert s.tilt_deg == pytest.approx(14.0, abs=0.1)
    vol = load_series(s)
    assert vol.shape == (512, 512, 4)
    assert vol.meta["warnings"][0]["code"] == "GANTRY_TILT"
    d = vol.direction
    assert np.allclose(d.T @ d, np.eye(3), atol=1e-9)
    assert vol.spacing[2] == pytest.approx(5.0 * np.cos(np.radians(14.0)), abs=0.02)


@needs_edge
@pytest.mark.parametrize("folder", ["failing/sliceincrement/001", "failing/notavolume/001"])
def test_refused_cases_raise_named_input_error(folder):
    with pytest.raises(InputError) as ei:
        open_study(EDGE / folder)
    assert ei.value.code == "NO_USABLE_SERIES"
    (s,) = _series_of(EDGE / folder)
    with pytest.raises(InputError) as ei:
        load_series(s)
    assert ei.value.code == s.errors[0].code


@needs_edge
def test_cli_bad_input_is_one_line_with_code(capsys):
    assert main(["inspect", str(EDGE / "failing/notavolume/001")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [err[0]] and err[0].startswith("spinemet: error [NO_USABLE_SERIES]")


@needs_edge
def test_compressed_codecs_decode_to_identical_pixels():
    arrays = {}
    for codec in ("j2k", "jpeg", "jpegls", "rle"):
        (s,) = _series_of(EDGE / f"compressed_{codec}")
        assert s.loadable, s.findings
        arrays[codec] = load_series(s)
    ref = arrays["rle"]
    assert ref.array.max() > 0
    for codec, vol in arrays.items():
        assert np.array_equal(vol.array, ref.array), codec
        assert np.allclose(vol.affine, ref.affine)
    assert arrays["jpeg"].meta["transfer_syntax"] == "1.2.840.10008.1.2.4.70"  # JPEG lossless SV1


def _check_frames_against_pixels(series, vol):
    """Every frame's first pixel lies exactly on the grid and holds the decoded value."""
    ds = (
        pydicom.dcmread(series.frames[0].path) if series.frames[0].frame_index is not None else None
    )
    for f in series.frames:
        px = (ds if ds is not None else pydicom.dcmread(f.path)).pixel_array
        img = px[f.frame_index] if f.frame_index is not None else px
        slope, intercept = f.rescale or (1.0, 0.0)
        ijk = vol.lps_to_index(f.position)
        assert np.allclose(ijk, np.rint(ijk), atol=1e-3)
        # pixel (row 2, col 3): 3 columns along the row cosine, 2 rows along the column cosine
        r, c = 2, 3
        o = f.orientation
        p = f.position + c * f.pixel_spacing[1] * o[:3] + r * f.pixel_spacing[0] * o[3:]
        idx = tuple(np.rint(vol.lps_to_index(p)).astype(int))
        assert vol.array[idx] == pytest.approx(img[r, c] * slope + intercept, rel=1e-5)


@needs_edge
@pytest.mark.parametrize("vendor", ["siemens_multiframe", "philips_enhanced"])
def test_enhanced_mr_uses_per_frame_functional_groups(vendor):
    (s,) = _series_of(EDGE / vendor)
    assert s.n_frames == 8 and s.loadable and len(s.files) == 1
    vol = load_series(s)
    assert sorted(vol.shape)[0] == 8
    assert vol.meta["frame_numbers"] is not None and sorted(vol.meta["frame_numbers"]) == list(
        range(1, 9)
    )
    _check_frames_against_pixels(s, vol)


@needs_edge
def test_whole_edge_case_folder_loads_the_good_series_and_reports_the_bad():
    d = discover_all(EDGE)
    assert {s.path.name for s in d.skipped} == {"PROVENANCE.md", "preview_pixels_are_noise.png"}
    all_series = [s for st in d.studies for s in st.series]
    good = [s for s in all_series if s.loadable]
    assert len(good) >= 4 and all(load_series(s).array.size for s in good)
    ls = open_study(EDGE)
    assert ls.volumes and "MULTIPLE_STUDIES" in [w.code for w in ls.warnings]


@pytest.mark.parametrize(
    "rel, modality, role",
    [
        ("tptbox-vertebra-crops/ct/sub-ct_label-22_ct.nii.gz", "CT", "ct_axial"),
        ("tptbox-vertebra-crops/mri/sub-mri_label-6_T2w.nii.gz", "MR", "mr_sagittal_t2"),
        ("ts-example-mr/example_mr_sm.nii.gz", "MR", "mr_axial_t2"),
    ],
)
def test_nifti_modality_guess_and_role_on_real_volumes(rel, modality, role):
    path = DATA / rel
    if not path.is_file():
        pytest.skip(f"{rel} absent")
    ls = open_study(path)
    assert list(ls.volumes) == [role]
    vol = ls.volumes[role]
    assert vol.modality == modality and vol.meta["modality_source"].startswith("guessed")
    assert [w.code for w in ls.warnings] == ["MODALITY_GUESSED"]
