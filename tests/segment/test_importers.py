"""Imported label maps land on our scheme at the right patient coordinates."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from pipeline.errors import InputError
from pipeline.io import Volume, open_study, read_nifti
from pipeline.io.volume import LPS_TO_RAS
from pipeline.segment import get_segmenter, import_labels
from pipeline.segment.importers import target_for_name

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
TS_CT = DATA / "ts-example-ct-dicom"
TS_MR = DATA / "ts-example-mr"


def need(p: Path) -> Path:
    if not p.exists():
        pytest.skip(f"{p} not available")
    return p


def _lps_centroid_from_file(path: Path, value: int) -> np.ndarray:
    """Centroid of a label straight from the NIfTI file (independent of our code)."""
    img = nib.load(str(path))
    idx = np.argwhere(np.asarray(img.dataobj) == value).mean(0)
    ras = img.affine @ np.r_[idx, 1.0]
    return (LPS_TO_RAS @ ras)[:3]


@pytest.fixture(scope="module")
def ts_ct() -> Volume:
    return open_study(need(TS_CT) / "dicom").primary


def test_totalsegmentator_ct_labels_give_t11_t12_cord_at_right_place(ts_ct: Volume) -> None:
    labels = TS_CT / "example_seg_dicom_totalseg_fast.nii.gz"
    seg = import_labels(labels, ts_ct)
    assert seg.vertebrae.shape == ts_ct.shape
    assert np.allclose(seg.vertebrae.affine, ts_ct.affine)
    assert seg.levels == ["T11", "T12"]
    assert not seg.numbering_uncertain
    # Voxel counts are preserved exactly (same world grid, only flipped rows).
    assert int((seg.vertebrae.array == 18).sum()) == 9930  # T11
    assert int((seg.vertebrae.array == 19).sum()) == 23576  # T12
    assert int((seg.structures.array == 2).sum()) == 4911  # cord
    for ours, code, theirs in (
        (seg.vertebrae, 18, 33),
        (seg.vertebrae, 19, 32),
        (seg.structures, 2, 79),
    ):
        got = ts_ct.index_to_lps(np.argwhere(ours.array == code).mean(0))
        assert np.allclose(got, _lps_centroid_from_file(labels, theirs), atol=1e-3)
    # T11 lies above T12, and the cord lies posterior to the T12 body.
    t11 = ts_ct.index_to_lps(np.argwhere(seg.vertebrae.array == 18).mean(0))
    t12 = ts_ct.index_to_lps(np.argwhere(seg.vertebrae.array == 19).mean(0))
    cord = ts_ct.index_to_lps(np.argwhere(seg.structures.array == 2).mean(0))
    assert t11[2] > t12[2]
    assert cord[1] > t12[1]
    assert "liver" in seg.meta["ignored_classes"]


def test_totalsegmentator_folder_equals_multilabel(ts_ct: Volume, tmp_path: Path) -> None:
    src = nib.load(str(TS_CT / "example_seg_dicom_totalseg_fast.nii.gz"))
    arr = np.asarray(src.dataobj)
    for value, name in (
        (32, "vertebrae_T12"),
        (33, "vertebrae_T11"),
        (79, "spinal_cord"),
        (5, "liver"),
    ):
        nib.save(
            nib.Nifti1Image((arr == value).astype(np.uint8), src.affine),
            str(tmp_path / f"{name}.nii.gz"),
        )
    folder = import_labels(tmp_path, ts_ct)
    multi = import_labels(TS_CT / "example_seg_dicom_totalseg_fast.nii.gz", ts_ct)
    assert np.array_equal(folder.vertebrae.array, multi.vertebrae.array)
    assert np.array_equal(folder.structures.array, multi.structures.array)
    assert "liver" in folder.meta["ignored_classes"]


def test_total_mr_unnumbered_vertebrae_are_split_and_flagged() -> None:
    ref = read_nifti(need(TS_MR) / "example_mr_sm.nii.gz", "MR")
    seg = get_segmenter(
        "labels", path=TS_MR / "example_seg_mr_totalseg_mr.nii.gz", class_map="total_mr"
    ).segment(ref)
    assert seg.numbering_uncertain  # total_mr gives no level numbers
    assert (
        seg.vertebrae.array.any()
        and (seg.structures.array == 6).any()
        and (seg.structures.array == 2).any()
    )
    assert int((seg.structures.array == 2).sum()) == 544
    assert all(0 < c <= 0.5 for c in seg.level_confidence.values())


def test_verse_mask_keeps_its_numbers() -> None:
    path = need(DATA / "verse004-labels-only") / "sub-verse004_seg-vert_msk.nii.gz"
    img = nib.load(str(path))
    ref = Volume(np.zeros(img.shape, np.float32), LPS_TO_RAS @ img.affine, "CT").to_canonical()
    seg = import_labels(path, ref, class_map="verse")
    assert seg.levels == ["T9", "T10", "T11", "T12", "L1", "L2", "L3", "L4", "L5"]
    assert not seg.numbering_uncertain


def test_dicom_seg_without_spine_segments_is_read_and_reported() -> None:
    base = need(DATA / "dcmqi-ct-3slice-seg")
    ref = open_study(base / "ct").primary
    seg = import_labels(base / "labels" / "liver.dcm", ref)
    assert seg.vertebrae.shape == ref.shape
    assert "Liver" in seg.meta["ignored_classes"]
    assert not seg.vertebrae.array.any()
    assert any("no spine class" in w for w in seg.meta["warnings"])


def test_dicom_seg_spine_segment_maps_with_exact_geometry(tmp_path: Path) -> None:
    import highdicom as hd
    import pydicom
    from pydicom.sr.codedict import codes

    base = need(DATA / "dcmqi-ct-3slice-seg")
    ref = open_study(base / "ct").primary
    sources = sorted(
        (pydicom.dcmread(p) for p in (base / "ct").glob("*.dcm")),
        key=lambda d: float(d.ImagePositionPatient[2]),
    )
    for d in sources:  # this fixture has an empty SpecificCharacterSet, which highdicom rejects
        if "SpecificCharacterSet" in d and not d.SpecificCharacterSet:
            del d.SpecificCharacterSet
    mask = np.zeros((len(sources), 512, 512), bool)
    mask[:, 300:340, 200:260] = True  # frame, row, column
    desc = hd.seg.SegmentDescription(
        segment_number=1,
        segment_label="Spinal cord",
        segmented_property_category=codes.SCT.Tissue,
        segmented_property_type=codes.SCT.SpinalCord,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL,
    )
    seg_ds = hd.seg.Segmentation(
        source_images=sources,
        pixel_array=mask,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[desc],
        series_instance_uid=hd.UID(),
        series_number=9,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="test",
        manufacturer_model_name="test",
        software_versions="0",
        device_serial_number="0",
    )
    seg_ds.save_as(tmp_path / "seg.dcm")
    seg = import_labels(tmp_path / "seg.dcm", ref)
    assert int((seg.structures.array == 2).sum()) == mask.sum()
    # The first mask voxel (row 300, column 200 of the lowest slice) at its DICOM position.
    s0 = sources[0]
    ipp = np.array(s0.ImagePositionPatient, float)
    iop = np.array(s0.ImageOrientationPatient, float)
    ps = np.array(s0.PixelSpacing, float)
    corner = ipp + iop[:3] * ps[1] * 200 + iop[3:] * ps[0] * 300
    lps = ref.index_to_lps(np.argwhere(seg.structures.array == 2))
    assert np.min(np.linalg.norm(lps - corner, axis=1)) < 1e-3


def test_names_map_to_our_scheme() -> None:
    assert target_for_name("vertebrae_T11") == ("vertebrae", 18)
    assert target_for_name("L5 vertebra") == ("vertebrae", 24)
    assert target_for_name("vertebrae_S1") == ("vertebrae", 26)
    assert target_for_name("spinal_cord") == ("structures", 2)
    assert target_for_name("Spinal canal") == ("structures", 1)
    assert target_for_name("intervertebral_discs") == ("structures", 6)
    assert target_for_name("liver") is None


def test_bad_inputs_raise_named_errors(tmp_path: Path, ts_ct: Volume) -> None:
    with pytest.raises(InputError) as e:
        import_labels(tmp_path / "missing.nii.gz", ts_ct)
    assert e.value.code == "INPUT_NOT_FOUND"
    (tmp_path / "junk.nii.gz").write_bytes(b"not nifti")
    with pytest.raises(InputError) as e:
        import_labels(tmp_path / "junk.nii.gz", ts_ct)
    assert e.value.code == "LABELS_UNREADABLE"
    with pytest.raises(InputError) as e:
        import_labels(TS_CT / "example_seg_dicom_totalseg_fast.nii.gz", ts_ct, class_map="nope")
    assert e.value.code == "LABELS_UNKNOWN_CLASS_MAP"


def test_native_label_trio_folder_reads_back_onto_another_grid(tmp_path: Path) -> None:
    """spinemet's own vertebrae/structures/parts files come back exactly, on a flipped grid."""
    from pipeline.io.nifti import write_nifti

    aff = np.diag([1.5, 1.5, 3.0, 1.0])
    rng = np.random.default_rng(0)
    maps = {n: rng.integers(0, 5, (6, 7, 5)).astype(np.int16) for n in ("vertebrae", "structures")}
    for name, arr in maps.items():
        write_nifti(Volume(arr, aff, "CT"), tmp_path / f"{name}.nii.gz")
    flip = aff.copy()
    flip[0, 0], flip[0, 3] = -1.5, 1.5 * 5  # same voxels, array axis 0 reversed
    ref = Volume(np.zeros((6, 7, 5), np.float32), flip, "CT")
    seg = import_labels(tmp_path, ref)
    assert seg.meta["backend"] == "labels"
    assert np.array_equal(seg.vertebrae.array, maps["vertebrae"][::-1])
    assert np.array_equal(seg.structures.array, maps["structures"][::-1])
    assert not seg.parts.array.any()  # parts.nii.gz absent: an empty map
