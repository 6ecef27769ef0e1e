"""On CT a body's height ends at its endplates, not in the disc the segmentation took for bone."""

from __future__ import annotations

import numpy as np

from pipeline.features.vertebra import _trim_column_ends


def test_dim_disc_beyond_the_endplates_is_trimmed() -> None:
    s = np.arange(0.0, 20.0, 1.0)  # a 20 mm column, 1 mm voxels
    hu = np.full(s.size, 220.0)  # marrow
    hu[:3] = 90.0  # 3 mm of disc below the lower endplate
    hu[3] = 600.0  # lower endplate
    hu[16] = 650.0  # upper endplate
    hu[17:] = 85.0  # 3 mm of disc above it
    keep = _trim_column_ends(s, hu, np.zeros(s.size, bool), 150.0, 5.0)
    assert s[keep].min() == 3.0 and s[keep].max() == 16.0


def test_a_long_dim_tail_and_lesion_voxels_are_kept() -> None:
    s = np.arange(0.0, 20.0, 1.0)
    hu = np.full(s.size, 60.0)  # osteoporotic / lytic-looking marrow
    hu[12] = 400.0  # one bright voxel high in the column
    none = np.zeros(s.size, bool)
    keep = _trim_column_ends(s, hu, none, 150.0, 5.0)
    # 12 mm of dim bone below the bright voxel: not a disc overreach, kept; 7 mm above: kept
    assert keep.all()
    hu[:] = 220.0
    hu[:3] = 40.0  # a lytic lesion through the lower endplate ...
    lesion = none.copy()
    lesion[:3] = True  # ... labelled as lesion keeps its height
    assert _trim_column_ends(s, hu, lesion, 150.0, 5.0).all()
    assert not _trim_column_ends(s, hu, none, 150.0, 5.0)[:3].any()  # unlabelled, trimmed


def test_real_ct_vertebra_keeps_its_height() -> None:
    """TPTBox's real CT crop with its reference labels: the complete L3 body loses no
    height to the endplate trim (its column ends are cortical bone, not disc)."""
    from pathlib import Path

    import pytest

    from pipeline.features import extract_features, load_config
    from pipeline.io.nifti import read_nifti
    from pipeline.io.volume import Volume

    d = (
        Path(__file__).resolve().parents[2]
        / ".."
        / "shared"
        / "data"
        / "tptbox-vertebra-crops"
        / "ct"
    )
    if not (d / "sub-ct_label-22_ct.nii.gz").is_file():
        pytest.skip("shared data not present")
    ct = read_nifti(d / "sub-ct_label-22_ct.nii.gz", "CT")
    vert = read_nifti(d / "sub-ct_seg-vert_label-22_msk.nii.gz").array
    sub = read_nifti(d / "sub-ct_seg-subreg_label-22_msk.nii.gz").array
    va = np.where(np.isin(vert, (21, 22, 23)), vert, 0).astype(np.int16)
    pa = np.where(np.isin(sub, (49, 50)), 1, 4).astype(np.int16) * (va > 0)
    maps = [Volume(a, ct.affine, "CT") for a in (va, np.zeros_like(va), pa)]
    heights = {}
    for trim in (0.0, 5.0):
        cfg = load_config(overrides={"collapse": {"ct_max_trim_mm": trim}})
        f = extract_features(ct, *maps, config=cfg)
        l3 = next(v for v in f.vertebrae if v.level == "L3")
        heights[trim] = [
            l3.measurements[f"height_{b}_mm"] for b in ("anterior", "middle", "posterior")
        ]
    assert all(h is not None and h > 20.0 for h in heights[5.0])
    assert np.allclose(heights[0.0], heights[5.0], atol=0.5)


def test_the_disc_over_a_severe_wedge_is_trimmed_with_the_configured_limit() -> None:
    """About 9 mm of disc per end over a lumbar body with 70 % anterior collapse (cohort Z):
    the configured limit trims it; the former 5 mm limit kept it (read as < 50 %)."""
    from pipeline.features import load_config

    limit = float(load_config()["collapse"]["ct_max_trim_mm"])
    s = np.arange(0.0, 26.0, 1.0)  # what the segmentation called body: 26 mm
    hu = np.full(s.size, 80.0)  # disc
    hu[9:17] = 230.0  # the 8 mm of collapsed body left, between its endplates
    none = np.zeros(s.size, bool)
    kept = s[_trim_column_ends(s, hu, none, 150.0, limit)]
    assert kept.min() == 9.0 and kept.max() == 16.0
    assert _trim_column_ends(s, hu, none, 150.0, 5.0).all()
