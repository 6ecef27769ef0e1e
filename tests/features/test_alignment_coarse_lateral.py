"""Alignment on images with coarse left-right voxels and with a misassigned pedicle."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline import labels as L
from pipeline.features import extract_features, load_config
from pipeline.features import geometry as G
from pipeline.features.geometry import PATIENT_L, vertebra_geometries
from pipeline.features.phantom import default_phantom, grid, render
from pipeline.features.vertebra import voxel_extent_along
from pipeline.io.volume import Volume


def _sagittal_slab(lr_mm: float) -> tuple[tuple[int, int, int], np.ndarray]:
    """A sagittal grid (1 mm in-plane) whose slices are ``lr_mm`` apart left-right."""
    shape, aff = grid("sagittal", 1.0, fov=(60.0, 90.0, 140.0), centre=(0.0, 0.0, 8.0))
    centre = aff[:3, :3] @ ((np.array(shape) - 1) / 2) + aff[:3, 3]
    new = (shape[0], shape[1], int(np.ceil(shape[2] / lr_mm)))
    aff = aff.copy()
    aff[:3, 2] *= lr_mm  # k runs right -> left
    aff[:3, 3] = centre - aff[:3, :3] @ ((np.array(new) - 1) / 2)  # same centre
    return new, aff


def test_lateral_spacing_follows_the_patient_axis_not_the_array_axis() -> None:
    _, sag = _sagittal_slab(3.5)
    assert voxel_extent_along(sag, PATIENT_L) == pytest.approx(3.5)
    _, ax = grid("axial", 0.8)
    assert voxel_extent_along(ax, PATIENT_L) == pytest.approx(0.8)


def _slab_features(lr_mm: float, **overrides: float):
    ph = default_phantom(15, 5)
    ph.vertebrae[0].shift = ph.vertebrae[1].shift = (0.0, -6.0, 0.0)  # T8-T9 slip forward
    shape, aff = _sagittal_slab(lr_mm)
    r = render(ph, shape, aff)
    cfg = load_config(overrides={"alignment": overrides} if overrides else None)
    img = Volume(r["ct"], aff, "CT")
    return extract_features(img, r["vertebrae"], r["structures"], r["parts"], config=cfg)


def test_coarse_left_right_voxels_measure_the_sagittal_plane_only() -> None:
    f = _slab_features(3.5)
    t9 = f.vertebra("T9")
    assert t9 is not None
    # the forward slip is still measured in full ...
    assert t9.alignment.value == "subluxation_translation"
    assert abs(t9.measurements["translation_mm"] - 6.0) <= 1.5
    # ... but no coronal angle is claimed, and the report says why
    assert t9.measurements["scoliosis_deg"] is None
    assert "left-right voxel spacing 3.5 mm" in t9.alignment.why
    assert t9.alignment.provenance == "estimated"
    for level in ("T10", "T11"):
        v = f.vertebra(level)
        assert v is not None and v.alignment.value == "normal", (level, v.alignment.why)


def test_the_lateral_spacing_limit_is_configuration() -> None:
    fine = _slab_features(3.5, max_lateral_spacing_mm=5.0)
    t9 = fine.vertebra("T9")
    assert t9 is not None and t9.measurements["scoliosis_deg"] is not None
    assert "sagittal plane only" not in t9.alignment.why


SHIFT_MM = 14


def _with_pedicle_of_the_level_below() -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """Axial 1 mm phantom T8-T12 where T10's right-pedicle label lies 14 mm too low (arch
    of the level below given to T10's pedicle, as seen on sagittal MR): a pedicle line
    tilted about 30 deg, which the 45 deg whole-frame check lets through."""
    ph = default_phantom(15, 5)
    shape, aff = grid("axial", 1.0, fov=(60.0, 80.0, 150.0), centre=(0.0, 0.0, 40.0))
    r = render(ph, shape, aff)
    vert, parts = r["vertebrae"].copy(), r["parts"].copy()
    own = (vert == 17) & (parts == L.PEDICLE_R)
    parts[own] = L.POSTERIOR  # T10's own right pedicle read as arch
    low = np.roll(own, -SHIFT_MM, axis=2)  # k runs feet -> head: 14 mm toward the feet
    vert[low], parts[low] = 17, L.PEDICLE_R
    return vert, parts, aff, r


def test_a_pedicle_from_the_level_below_does_not_tilt_the_frame() -> None:
    vert, parts, aff, r = _with_pedicle_of_the_level_below()
    geos = {g.level: g for g in vertebra_geometries(vert, parts, aff)}
    t10 = geos["T10"]
    assert "pedicle line implausible" in t10.frame_source
    assert float(t10.s @ geos["T9"].s) > 0.98
    f = extract_features(Volume(r["ct"], aff, "CT"), vert, r["structures"], parts)
    for level in ("T9", "T10"):  # the pairs on either side of T10: no false scoliosis
        v = f.vertebra(level)
        assert v is not None and v.alignment.value == "normal", (level, v.alignment.why)


def test_without_the_tilt_check_the_pedicle_line_tilts_the_frame(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The case above is a real test: with the check off, T10 tilts by tens of degrees."""
    vert, parts, aff, _ = _with_pedicle_of_the_level_below()
    monkeypatch.setattr(G, "MAX_PEDICLE_TILT_FROM_COLUMN_DEG", 90.0)
    geos = {g.level: g for g in vertebra_geometries(vert, parts, aff)}
    tilt = np.degrees(np.arccos(np.clip(float(geos["T10"].s @ geos["T9"].s), -1, 1)))
    assert geos["T10"].frame_source == "parts" and tilt > 25.0
