"""pydicom's own test files: codecs, enhanced CT/MR, big-endian, truncated, header-less, non-image."""

from __future__ import annotations

import shutil

import numpy as np
import pydicom
import pytest

from pipeline.io import discover, discover_all, load_series
from pipeline.io.selection import load_rules

pytest.importorskip("pydicom.data")
from pydicom.data import get_testdata_file  # noqa: E402


def _file(name):
    path = get_testdata_file(name, download=False)
    if path is None:
        pytest.skip(f"pydicom test file {name} absent")
    return path


def _one_slice_rules():
    rules = dict(load_rules())
    rules["geometry"] = {**rules.get("geometry", {}), "min_slices": 1}
    return rules


def _only_series(path, rules=None):
    studies = discover(path, rules)
    series = [s for st in studies for s in st.series]
    assert len(series) == 1
    return series[0]


@pytest.mark.parametrize(
    "name",
    [
        "MR_small_RLE.dcm",
        "MR_small_jpeg_ls_lossless.dcm",
        "MR_small_jp2klossless.dcm",
        "MR_small_bigendian.dcm",
        "MR_small_implicit.dcm",
        "MR_small_expb.dcm",
    ],
)
def test_codecs_and_byte_orders_match_the_uncompressed_image(name):
    rules = _one_slice_rules()
    ref = load_series(_only_series(_file("MR_small.dcm"), rules))
    s = _only_series(_file(name), rules)
    assert [f.code for f in s.findings] == ["SINGLE_SLICE"]
    vol = load_series(s)
    assert np.array_equal(vol.array, ref.array)
    assert np.allclose(vol.affine, ref.affine)


def test_single_slice_is_too_few_by_default():
    s = _only_series(_file("CT_small.dcm"))
    assert [f.code for f in s.errors] == ["TOO_FEW_SLICES"]


def test_enhanced_ct_two_frames_rescaled_per_frame():
    path = _file("eCT_Supplemental.dcm")
    s = _only_series(path)
    assert [f.code for f in s.errors] == ["TOO_FEW_SLICES"]
    rules = _one_slice_rules()
    s = _only_series(path, rules)
    assert s.n_frames == 2 and s.loadable
    vol = load_series(s)
    ds = pydicom.dcmread(path)
    pvt = ds.SharedFunctionalGroupsSequence[0].PixelValueTransformationSequence[0]
    hu = ds.pixel_array.astype(np.float32) * float(pvt.RescaleSlope) + float(pvt.RescaleIntercept)
    assert vol.array.min() == pytest.approx(hu.min()) and vol.array.max() == pytest.approx(hu.max())
    assert vol.array.min() < -900  # air in HU, so the -1024 intercept was applied


@pytest.mark.parametrize(
    "name",
    [
        "emri_small.dcm",
        "emri_small_RLE.dcm",
        "emri_small_big_endian.dcm",
        "emri_small_jpeg_ls_lossless.dcm",
    ],
)
def test_enhanced_mr_without_functional_groups_has_no_geometry(name):
    s = _only_series(_file(name))
    assert s.n_frames == 10
    assert [f.code for f in s.errors] == ["NO_GEOMETRY"]


def test_truncated_pixel_data_is_flagged(tmp_path):
    shutil.copy(_file("MR_truncated.dcm"), tmp_path / "a")
    s = _only_series(tmp_path / "a", _one_slice_rules())
    assert "TRUNCATED_FILE" in [f.code for f in s.errors]


@pytest.mark.filterwarnings("ignore:End of file reached")
def test_truncated_compressed_file_fails_to_decode_with_code(tmp_path):
    from pipeline.errors import InputError

    # JPEG 2000 stream a few bytes short: only decoding can tell.
    rules = _one_slice_rules()
    good = _only_series(_file("MR_small_jp2klossless.dcm"), rules)
    data = good.files[0].read_bytes()
    (tmp_path / "cut").write_bytes(data[: len(data) - 2000])
    s = _only_series(tmp_path / "cut", rules)
    with pytest.raises(InputError) as ei:
        load_series(s)
    assert ei.value.code in {"PIXEL_DATA_UNREADABLE", "TRUNCATED_FILE"}


@pytest.mark.parametrize(
    "name, what",
    [
        ("rtplan.dcm", "NON_IMAGE_OBJECT"),
        ("rtstruct.dcm", "NON_IMAGE_OBJECT"),
        ("test-SR.dcm", "NON_IMAGE_OBJECT"),
        ("ExplVR_LitEndNoMeta.dcm", "NON_IMAGE_OBJECT"),  # header-less (no preamble / meta)
        ("ExplVR_BigEndNoMeta.dcm", "NON_IMAGE_OBJECT"),
        ("SC_rgb.dcm", "NOT_GRAYSCALE"),
        ("JPEG-LL.dcm", "NO_GEOMETRY"),  # NM without patient geometry
    ],
)
def test_non_volume_objects_get_named_errors(name, what):
    s = _only_series(_file(name))
    assert what in [f.code for f in s.errors]


def test_non_dicom_files_are_skipped(tmp_path):
    for name in ("README.txt", "no_meta.dcm", "zipMR.gz", "test1.json"):
        shutil.copy(_file(name), tmp_path / name)
    d = discover_all(tmp_path)
    assert not d.studies
    assert sorted(s.code for s in d.skipped) == ["NOT_DICOM"] * 4


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small_RLE.dcm", "emri_small.dcm"])
def test_corrupted_files_give_named_errors_never_tracebacks(tmp_path, name):
    from pipeline.errors import SpinemetError
    from pipeline.io import open_study

    src = bytearray(open(_file(name), "rb").read())
    rng = np.random.default_rng(7)
    rules = _one_slice_rules()
    outcomes = set()
    for i in range(15):
        b = bytearray(src)
        if i % 3 == 0:  # scattered byte flips
            for _ in range(int(rng.integers(1, 10))):
                b[int(rng.integers(128, len(b)))] = int(rng.integers(0, 256))
        elif i % 3 == 1:  # truncated anywhere
            b = b[: int(rng.integers(132, len(b)))]
        else:  # an overwritten header run
            p = int(rng.integers(132, min(len(b), 2000)))
            b[p : p + 8] = bytes(rng.integers(0, 256, 8).astype(np.uint8))
        f = tmp_path / f"x{i}"
        f.write_bytes(bytes(b))
        try:
            open_study(f, rules=rules)
            outcomes.add("OK")
        except SpinemetError as exc:
            outcomes.add(exc.code)
        f.unlink()
    assert outcomes <= {"OK", "NO_USABLE_SERIES", "NO_DICOM_FILES"}
