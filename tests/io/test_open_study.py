"""open_study / load_series on synthetic series: exact patient coordinates."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from io_dicom_factory import series_with_point, unit, write_series

from pipeline.errors import InputError
from pipeline.io import Volume, discover, load_series, open_study, write_nifti

TARGET = np.array([12.3, -45.6, 78.9])

ORIENTATIONS = {
    "axial": ((1, 0, 0), (0, 1, 0)),
    "axial_flipped_rows": ((-1, 0, 0), (0, 1, 0)),
    "axial_flipped_cols": ((1, 0, 0), (0, -1, 0)),
    "axial_feet_first": ((-1, 0, 0), (0, -1, 0)),
    "sagittal": ((0, 1, 0), (0, 0, -1)),
    "sagittal_flipped": ((0, -1, 0), (0, 0, 1)),
    "coronal": ((1, 0, 0), (0, 0, -1)),
    "coronal_flipped": ((-1, 0, 0), (0, 0, 1)),
    "oblique": ((0.9, 0.3, 0.1), None),
    "double_oblique": ((0.6, 0.6, 0.4), None),
}


def _cosines(name: str) -> tuple[np.ndarray, np.ndarray]:
    r, c = ORIENTATIONS[name]
    r = unit(r)
    if c is None:  # build an orthogonal column direction for the oblique cases
        c = unit(np.cross(r, unit((0.1, -0.2, 1.0))))
    return r, unit(c)


@pytest.mark.parametrize("name", sorted(ORIENTATIONS))
@pytest.mark.parametrize("modality", ["CT", "MR"])
def test_bright_voxel_lands_at_its_patient_coordinate(tmp_path, name, modality):
    r, c = _cosines(name)
    files = series_with_point(tmp_path / "s", TARGET, row_dir=r, col_dir=c, modality=modality)
    studies = discover(tmp_path)
    assert len(studies) == 1 and len(studies[0].series) == 1
    s = studies[0].series[0]
    assert s.loadable, s.findings
    vol = load_series(s)
    assert vol.modality == modality
    idx = np.argwhere(vol.array == vol.array.max())
    assert len(idx) == 1
    assert np.allclose(vol.index_to_lps(idx[0]), TARGET, atol=1e-3)
    # canonical: axis 0 closest to +L, 1 to +P, 2 to +S
    d = vol.direction
    for a in range(3):
        assert d[a, a] > 0
        if np.max(np.abs(d[:, a])) > 0.8:  # clearly closest to one axis (not double oblique)
            assert int(np.argmax(np.abs(d[:, a]))) == a
    assert np.isclose(sorted(vol.spacing)[-1], 2.5)
    # source refs follow the slice axis: the bright slice (k=3, InstanceNumber 4) is
    # listed at the bright voxel's index along that axis
    meta = vol.meta
    k = int(idx[0][meta["slice_axis"]])
    bright = next(f for f in files if pydicom.dcmread(f).InstanceNumber == 4)
    assert meta["sop_instance_uids"][k] == pydicom.dcmread(bright).SOPInstanceUID
    frames = s.frames[::-1] if meta["slice_order_reversed"] else s.frames
    assert [f.sop_uid for f in frames] == meta["sop_instance_uids"]


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    quat=st.lists(st.floats(-1, 1), min_size=4, max_size=4).filter(
        lambda q: np.linalg.norm(q) > 0.1
    ),
    spacing=st.floats(0.3, 6.0),
    ps=st.tuples(st.floats(0.2, 2.0), st.floats(0.2, 2.0)),
    target=st.tuples(*[st.floats(-300, 300)] * 3),
)
def test_random_orientations_round_trip(tmp_path_factory, quat, spacing, ps, target):
    q = np.asarray(quat) / np.linalg.norm(quat)
    w, x, y, z = q
    rot = np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )
    folder = tmp_path_factory.mktemp("rand")
    series_with_point(
        folder,
        target,
        row_dir=rot[:, 0],
        col_dir=rot[:, 1],
        spacing=spacing,
        pixel_spacing=ps,
        shape=(5, 6, 7),
        at=(2, 4, 1),
    )
    (s,) = discover(folder)[0].series
    vol = load_series(s)
    idx = np.argwhere(vol.array == vol.array.max())
    assert len(idx) == 1
    assert np.allclose(vol.index_to_lps(idx[0]), target, atol=1e-3)


def test_ct_is_rescaled_to_hounsfield(tmp_path):
    px = np.full((4, 5, 6), 24, np.int16)  # stored 24 -> -1000 HU with intercept -1024
    px[:, 2, 3] = 1524  # -> 500 HU
    write_series(tmp_path / "ct", px)
    ls = open_study(tmp_path)
    vol = ls.volumes["ct_axial"]
    assert vol.array.min() == pytest.approx(-1000.0)
    assert vol.array.max() == pytest.approx(500.0)


def test_open_study_meta_has_uids_and_no_phi(tmp_path):
    r, c = _cosines("axial")
    files = series_with_point(tmp_path / "s", TARGET, row_dir=r, col_dir=c)
    vol = open_study(tmp_path).volumes["ct_axial"]
    meta = vol.meta
    assert meta["study_uid"] and meta["series_uid"] and meta["frame_of_reference_uid"]
    assert len(meta["sop_instance_uids"]) == len(files) == 7
    # SOP UIDs follow the slice axis: the bright slice k=3 is the 4th along +S here
    k = int(np.argwhere(vol.array == vol.array.max())[0][meta["slice_axis"]])
    bright = [f for f in files if pydicom.dcmread(f).InstanceNumber == 4][0]
    assert meta["sop_instance_uids"][k] == pydicom.dcmread(bright).SOPInstanceUID
    text = repr(meta)
    assert "Synthetic" not in text and "SYN0001" not in text


def test_open_study_raises_named_error_when_nothing_usable(tmp_path):
    (tmp_path / "readme.txt").write_text("not dicom")
    with pytest.raises(InputError) as ei:
        open_study(tmp_path)
    assert ei.value.code == "NO_DICOM_FILES"
    with pytest.raises(InputError) as ei:
        open_study(tmp_path / "absent")
    assert ei.value.code == "INPUT_NOT_FOUND"


def test_open_study_nifti_roles(tmp_path):
    ct = np.full((8, 8, 8), -1000.0, np.float32)
    ct[2:6, 2:6, 2:6] = 700.0
    write_nifti(Volume(ct, np.diag([1.0, 1.0, 1.0, 1.0]), "CT"), tmp_path / "ct.nii.gz")
    ls = open_study(tmp_path / "ct.nii.gz", modality="CT")
    assert list(ls.volumes) == ["ct_axial"] and not ls.warnings
    guessed = open_study(tmp_path / "ct.nii.gz")
    assert guessed.volumes["ct_axial"].modality == "CT"
    assert [w.code for w in guessed.warnings] == ["MODALITY_GUESSED"]
    mr = np.abs(np.random.default_rng(0).normal(100, 20, (8, 8, 8))).astype(np.float32)
    write_nifti(Volume(mr, np.diag([4.0, 0.5, 0.5, 1.0]), "MR"), tmp_path / "mr.nii.gz")
    ls = open_study(tmp_path / "mr.nii.gz", modality="MR")
    assert list(ls.volumes) == ["mr_sagittal_t2"]


def test_ct_pixel_padding_becomes_air(tmp_path):
    px = np.full((4, 5, 6), 1024, np.int16)  # 0 HU
    px[:, 0, 0] = -2000  # padding outside the reconstruction circle
    write_series(tmp_path / "ct", px, PixelPaddingValue=-2000)
    vol = open_study(tmp_path).volumes["ct_axial"]
    assert sorted(np.unique(vol.array).tolist()) == [-1024.0, 0.0]
    assert int(np.sum(vol.array == -1024.0)) == 4
