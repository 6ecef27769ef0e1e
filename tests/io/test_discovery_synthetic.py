"""Discovery, grouping, geometry checks and selection on synthetic DICOM series."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from io_dicom_factory import unit, write_series

from pipeline.errors import InputError
from pipeline.io import discover, discover_all, load_series, open_study, select_series
from pipeline.io.geometry import plane_of


def _codes(series):
    return [f.code for f in series.findings]


def _all_series(studies):
    return [s for st in studies for s in st.series]


def _px(n=5, rows=6, cols=7, value=100):
    return np.full((n, rows, cols), value, np.int16)


def test_plane_from_cosines():
    assert plane_of([1, 0, 0, 0, 1, 0])[0] == "axial"
    assert plane_of([0, 1, 0, 0, 0, -1])[0] == "sagittal"
    assert plane_of([1, 0, 0, 0, 0, -1])[0] == "coronal"
    c = np.cos(np.radians(20)), np.sin(np.radians(20))
    plane, angle = plane_of([1, 0, 0, 0, c[0], -c[1]])
    assert plane == "axial" and angle == pytest.approx(20, abs=1e-6)
    r, col = unit([1, 1, 0]), unit([-1, 1, 1.5])
    col = unit(col - np.dot(col, r) * r)
    assert plane_of([*r, *col])[0] == "oblique"


def test_skips_non_dicom_and_names_the_reason(tmp_path):
    write_series(tmp_path / "a", _px())
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "empty").write_bytes(b"")
    (tmp_path / "junk.bin").write_bytes(bytes(range(256)) * 4)
    d = discover_all(tmp_path)
    assert {s.path.name: s.code for s in d.skipped} == {
        "notes.txt": "NOT_DICOM",
        "empty": "NOT_DICOM",
        "junk.bin": "NOT_DICOM",
    }
    assert len(_all_series(d.studies)) == 1 and _all_series(d.studies)[0].loadable


def test_truncated_file_is_recorded_not_crashed(tmp_path):
    files = write_series(tmp_path / "a", _px())
    data = files[2].read_bytes()
    files[2].write_bytes(data[: len(data) - 20])  # pixel data cut short
    files[3].write_bytes(data[:200])  # header cut short
    d = discover_all(tmp_path)
    assert [s.code for s in d.skipped] == ["DICOM_UNREADABLE"]
    (s,) = _all_series(d.studies)
    assert _codes(s)[0] == "TRUNCATED_FILE" and not s.loadable
    with pytest.raises(InputError) as ei:
        load_series(s)
    assert ei.value.code == "TRUNCATED_FILE"


def test_empty_uids_group_by_frame_of_reference_and_geometry(tmp_path):
    # Two series with empty Study/Series UIDs in one Frame of Reference: axial and sagittal.
    write_series(
        tmp_path / "x", _px(), study_uid="", series_uid="", for_uid="1.2.3", SeriesNumber=2
    )
    write_series(
        tmp_path / "y",
        _px(),
        row_dir=(0, 1, 0),
        col_dir=(0, 0, -1),
        study_uid="",
        series_uid="",
        for_uid="1.2.3",
        SeriesNumber=3,
    )
    for f in (tmp_path / "x").iterdir():  # empty SOP UIDs too, as in the real CT sample
        ds = pydicom.dcmread(f)
        ds.SOPInstanceUID = ""
        ds.save_as(f)
    studies = discover(tmp_path)
    assert len(studies) == 1 and studies[0].study_uid == "noUID:1.2.3"
    series = _all_series(studies)
    assert sorted(s.classification.plane for s in series) == ["axial", "sagittal"]
    assert all(s.loadable and s.n_frames == 5 for s in series)


def test_duplicated_series_uid_is_split_not_merged(tmp_path):
    write_series(
        tmp_path / "ax", _px(), series_uid="9.9.9", study_uid="1.1", for_uid="2.2", SeriesNumber=2
    )
    write_series(
        tmp_path / "sag",
        _px(4),
        series_uid="9.9.9",
        study_uid="1.1",
        for_uid="2.2",
        row_dir=(0, 1, 0),
        col_dir=(0, 0, -1),
        SeriesNumber=2,
    )
    series = _all_series(discover(tmp_path))
    assert sorted(s.key for s in series) == ["9.9.9#1", "9.9.9#2"]
    assert all("MIXED_ORIENTATIONS" in _codes(s) for s in series)
    assert all(s.loadable for s in series)
    assert sorted(s.n_frames for s in series) == [4, 5]


def test_repeated_positions_split_into_stacks(tmp_path):
    write_series(tmp_path / "a", _px(5, value=10), series_uid="7.7", study_uid="1.1", for_uid="2.2")
    files = write_series(
        tmp_path / "b", _px(5, value=20), series_uid="7.7", study_uid="1.1", for_uid="2.2"
    )
    for i, f in enumerate(files):  # second acquisition numbered after the first
        ds = pydicom.dcmread(f)
        ds.InstanceNumber = 100 + i
        ds.save_as(f)
    series = _all_series(discover(tmp_path))
    assert len(series) == 2 and all("REPEATED_POSITIONS" in _codes(s) for s in series)
    values = sorted(float(load_series(s).array.mean()) for s in series)
    assert values == [10 - 1024, 20 - 1024]


@pytest.mark.parametrize(
    "zs, code",
    [
        ([0, 2, 4, 8, 10], "MISSING_SLICES"),
        ([0, 2, 4.6, 6.6, 8.6], "NON_UNIFORM_SPACING"),
        ([0, 2, 2, 4, 6], "DUPLICATE_POSITIONS"),
        ([0, 2], "TOO_FEW_SLICES"),
    ],
)
def test_bad_stacks_get_named_errors(tmp_path, zs, code):
    write_series(tmp_path / "a", _px(len(zs)), positions=[(0, 0, z) for z in zs])
    (s,) = _all_series(discover(tmp_path))
    assert code in [f.code for f in s.errors]
    with pytest.raises(InputError) as ei:
        load_series(s)
    assert ei.value.code == s.errors[0].code


def test_positions_off_a_line_are_irregular(tmp_path):
    pos = [(0, 0, 0), (0, 0, 2), (5, 0, 4), (0, 0, 6), (0, 0, 8)]
    write_series(tmp_path / "a", _px(5), positions=pos)
    (s,) = _all_series(discover(tmp_path))
    assert "IRREGULAR_POSITIONS" in [f.code for f in s.errors]


def test_gantry_tilt_is_corrected_exactly_for_whole_pixel_shifts(tmp_path):
    # Column cosine tilted 14 deg; positions move along z only (as scanners write them).
    t = np.radians(14.0)
    col_dir = (0, np.cos(t), -np.sin(t))
    dz = 1.0 / np.sin(t)  # in-plane drift of exactly one pixel (1 mm) per slice
    n, rows, cols = 6, 16, 12
    px = np.zeros((n, rows, cols), np.int16)
    k, r, c = 4, 9, 5
    px[k, r, c] = 2000
    origin = np.array([10.0, 20.0, 30.0])
    write_series(
        tmp_path / "a", px, col_dir=col_dir, origin=origin, step=(0, 0, dz), pixel_spacing=(1, 1)
    )
    (s,) = _all_series(discover(tmp_path))
    assert [f.code for f in s.findings if f.severity != "info"] == ["GANTRY_TILT"] and s.loadable
    assert s.tilt_deg == pytest.approx(14.0, abs=1e-3)
    vol = load_series(s)
    target = origin + k * np.array([0, 0, dz]) + c * np.array([1.0, 0, 0]) + r * np.asarray(col_dir)
    idx = np.argwhere(vol.array == vol.array.max())
    assert len(idx) == 1
    assert np.allclose(vol.index_to_lps(idx[0]), target, atol=1e-3)
    assert vol.meta["tilt_corrected_deg"] == pytest.approx(14.0, abs=1e-3)
    # the grid is orthogonal after correction
    d = vol.direction
    assert np.allclose(d.T @ d, np.eye(3), atol=1e-9)


def test_folder_mixing_good_and_bad_series_loads_the_good_one(tmp_path):
    write_series(
        tmp_path / "bad",
        _px(4),
        positions=[(0, 0, z) for z in (0, 1, 2, 5)],
        study_uid="1.1",
        SeriesNumber=1,
        SliceThickness="1",
    )
    write_series(tmp_path / "good", _px(6), study_uid="1.1", SeriesNumber=2)
    write_series(
        tmp_path / "dup", _px(3), positions=[(0, 0, 0)] * 3, study_uid="1.1", SeriesNumber=3
    )
    (tmp_path / "junk.txt").write_text("x")
    ls = open_study(tmp_path)
    assert list(ls.volumes) == ["ct_axial"]
    assert ls.volumes["ct_axial"].shape[2] == 6
    reasons = ls.selection.reasons
    assert any("MISSING_SLICES" in r for rs in reasons.values() for r in rs)
    assert any("DUPLICATE_POSITIONS" in r for rs in reasons.values() for r in rs)


def test_several_studies_take_the_one_filling_most_roles(tmp_path):
    write_series(tmp_path / "ct", _px(), study_uid="1.1")
    mr = dict(modality="MR", row_dir=(0, 1, 0), col_dir=(0, 0, -1), study_uid="2.2")
    write_series(tmp_path / "t2", _px(), SeriesDescription="T2 TSE SAG", SeriesNumber=1, **mr)
    write_series(tmp_path / "t1", _px(), SeriesDescription="T1 TSE SAG", SeriesNumber=2, **mr)
    ls = open_study(tmp_path)
    assert ls.study_uid == "2.2"
    assert sorted(ls.volumes) == ["mr_sagittal_t1", "mr_sagittal_t2"]
    assert [w.code for w in ls.warnings] == ["MULTIPLE_STUDIES"]
    ct = open_study(tmp_path, study_uid="1.1")
    assert list(ct.volumes) == ["ct_axial"] and not ct.warnings
    with pytest.raises(InputError) as ei:
        open_study(tmp_path, study_uid="3.3")
    assert ei.value.code == "STUDY_NOT_FOUND"


def test_dicomdir_is_skipped_and_the_tree_walked(tmp_path):
    from pydicom.data import get_testdata_file

    path = get_testdata_file("DICOMDIR", download=False)
    if path is None:
        pytest.skip("pydicom test data absent")
    d = discover_all(path.rsplit("/", 1)[0])
    assert any(s.code == "DICOMDIR" for s in d.skipped)
    assert sum(len(st.series) for st in d.studies) > 5


def test_series_that_fails_to_decode_gives_way_to_the_next(tmp_path):
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEG2000Lossless

    thin = write_series(
        tmp_path / "thin", _px(6), step=(0, 0, 1.0), study_uid="1.1", SeriesNumber=2
    )
    write_series(tmp_path / "thick", _px(6), step=(0, 0, 3.0), study_uid="1.1", SeriesNumber=3)
    for f in thin:  # headers fine, pixel data an undecodable JPEG 2000 stream
        ds = pydicom.dcmread(f)
        ds.file_meta.TransferSyntaxUID = JPEG2000Lossless
        ds.PixelData = encapsulate([b"\x00garbage\x00" * 8])
        ds["PixelData"].VR = "OB"
        ds.save_as(f)
    studies = discover(tmp_path)
    assert select_series(studies).picked["ct_axial"].n_frames == 6
    ls = open_study(tmp_path)
    vol = ls.volumes["ct_axial"]
    assert vol.spacing[2] == pytest.approx(3.0)
    assert "PIXEL_DATA_UNREADABLE" in [w.code for w in ls.warnings]
    assert any("failed to load" in r for rs in ls.selection.reasons.values() for r in rs)
