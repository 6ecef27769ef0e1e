"""Imaging features on analytic phantoms sampled in several acquisition orientations."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline import labels as L
from pipeline.features import contiguous_segments, extract_features, load_config
from pipeline.features.phantom import default_phantom, grid, render
from pipeline.features.vertebra import location_class
from pipeline.io.volume import Volume, index_to_lps

ORIENTATIONS = ["axial", "axial_flipped", "sagittal", "oblique"]


def _run(ph, kind="axial", modality="CT", fov=(50.0, 90.0, 140.0), centre=(0.0, 0.0, 8.0), **kw):
    shape, aff = grid(kind, 1.0, fov=fov, centre=centre)
    r = render(ph, shape, aff)
    img = Volume(r["ct"] if modality == "CT" else r["ct"] * 0 + 100.0, aff, modality)
    return extract_features(img, r["vertebrae"], r["structures"], r["parts"], **kw), r


def _features_with_ct(r, aff, ct):
    """Features of a rendered phantom (its true label maps) on a given CT array."""
    return extract_features(Volume(ct, aff, "CT"), r["vertebrae"], r["structures"], r["parts"])


def _air_test_phantom(ph):
    """An axial 1 mm CT of ``ph`` (T8-T11 field of view) and its rendering."""
    shape, aff = grid("axial", 1.0, fov=(50.0, 76.0, 110.0), centre=(0.0, 0.0, 21.0))
    return render(ph, shape, aff), aff


def _asymmetric():
    """T10: lytic body + LEFT pedicle lesion, 40% anterior wedge, grade 2; T8-T9 slipped 6 mm forward."""
    ph = default_phantom(15, 5)
    t10 = ph.vertebrae[2]
    t10.lesion, t10.lesion_where, t10.wedge, t10.escc = "lytic", ("body", "left_pedicle"), 0.4, "2"
    ph.vertebrae[0].shift = ph.vertebrae[1].shift = (0.0, -6.0, 0.0)
    return ph


@pytest.fixture(scope="module")
def per_orientation():
    return {k: _run(_asymmetric(), k)[0] for k in ORIENTATIONS}


@pytest.mark.parametrize("kind", ORIENTATIONS)
def test_asymmetric_phantom_same_findings_in_every_orientation(per_orientation, kind):
    f = per_orientation[kind]
    assert f.levels == ["T8", "T9", "T10", "T11", "T12"]
    assert f.involved_levels == ["T10"]
    t10 = f.vertebra("T10")
    assert t10 is not None
    assert t10.lesion.value == "lytic" and t10.lesion.provenance == "measured"
    # the lesion is in the LEFT pedicle: left measured, right empty (patient space, not array axes)
    assert t10.posterolateral.value == "unilateral"
    assert t10.measurements["posterolateral_left_mm3"] > 100
    assert t10.measurements["posterolateral_right_mm3"] == 0
    assert 30.0 <= t10.measurements["collapse_pct"] <= 50.0
    assert t10.collapse.value == "lt50"
    # the slip is at the T9/T10 disc: attributed to the vertebra above (T9 on T10)
    t9 = f.vertebra("T9")
    assert t9.alignment.value == "subluxation_translation"
    assert abs(t9.measurements["translation_mm"] - 6.0) <= 1.5
    assert t10.alignment.value == "normal"
    assert f.escc.per_level["T10"] == "2" and f.escc.worst_level == "T10"
    assert f.escc.provenance == "estimated"  # CT
    for other in ("T8", "T11", "T12"):
        v = f.vertebra(other)
        assert v is not None and not v.involved and v.collapse.value == "none"
    assert f.vertebra("T12").alignment.value == "normal"


def test_right_pedicle_is_reported_right():
    ph = default_phantom(15, 4)
    ph.vertebrae[1].lesion, ph.vertebrae[1].lesion_where = "blastic", ("right_pedicle",)
    for kind in ("axial_flipped", "oblique"):
        f, _ = _run(ph, kind, fov=(50.0, 76.0, 110.0), centre=(0.0, 0.0, 21.0))
        v = f.vertebra("T9")
        assert v.posterolateral.value == "unilateral"
        assert v.measurements["posterolateral_right_mm3"] > 50
        assert v.measurements["posterolateral_left_mm3"] == 0


@pytest.mark.parametrize("grade", ["0", "1a", "1b", "1c", "2", "3"])
def test_bilsky_grades_on_phantom(grade):
    ph = default_phantom(15, 4)
    ph.vertebrae[1].escc = None if grade == "0" else grade
    f, _ = _run(
        ph,
        "oblique" if grade in ("1b", "3") else "axial",
        fov=(50.0, 76.0, 110.0),
        centre=(0.0, 0.0, 21.0),
    )
    assert f.escc.per_level["T9"] == grade
    assert f.escc.worst_grade == grade
    assert all(g == "0" for lv, g in f.escc.per_level.items() if lv != "T9")
    if grade != "0":
        assert f.escc.worst_level == "T9"
        assert f.escc.worst_slice is not None and f.escc.worst_slice.tumour_area_mm2 > 0


def test_escc_on_axial_t2_is_measured_and_mr_quality_not_assessable():
    ph = default_phantom(15, 4)
    ph.vertebrae[1].escc, ph.vertebrae[1].lesion = "1c", "lytic"
    f, _ = _run(
        ph,
        "axial",
        "MR",
        fov=(50.0, 76.0, 110.0),
        centre=(0.0, 0.0, 21.0),
        escc_source="mr_axial_t2",
    )
    assert f.escc.provenance == "measured"
    v = f.vertebra("T9")
    assert v.involved and v.lesion.value is None and v.provenance["lesion"] == "not_assessable"
    assert "CT" in v.why["lesion"]


@pytest.mark.parametrize("quality", ["lytic", "blastic", "mixed"])
def test_lesion_quality_against_own_bone(quality):
    ph = default_phantom(15, 4)
    ph.vertebrae[2].lesion = quality
    f, _ = _run(ph, "axial", fov=(50.0, 76.0, 110.0), centre=(0.0, 0.0, 21.0))
    v = f.vertebra("T10")
    assert v.lesion.value == quality
    assert v.measurements["reference_hu"] == pytest.approx(220.0)


def test_lesion_voxels_at_air_attenuation_are_ignored_on_ct():
    """A model that paints 'lesion' onto air must not create a lytic vertebra."""
    ph = default_phantom(15, 4)
    ph.vertebrae[2].lesion = "lytic"
    r, aff = _air_test_phantom(ph)
    ct = r["ct"].copy()
    les = np.isin(r["structures"], (L.LYTIC, L.BLASTIC)) & (r["vertebrae"] == 17)
    assert les.sum() > 100
    f_ok = _features_with_ct(r, aff, ct)
    assert f_ok.vertebra("T10").involved
    ct[les] = -1000.0  # the 'lesion' is air
    f = _features_with_ct(r, aff, ct)
    assert not f.vertebra("T10").involved
    assert any("fat or air" in m for m in f.messages)


def test_body_involvement_over_half_without_collapse():
    ph = default_phantom(15, 4)
    ph.vertebrae[1].lesion, ph.vertebrae[1].lesion_body_fraction = "lytic", 0.7
    f, _ = _run(ph, "axial", fov=(50.0, 76.0, 110.0), centre=(0.0, 0.0, 21.0))
    v = f.vertebra("T9")
    assert v.measurements["body_involvement_pct"] > 55
    assert v.collapse.value == "no_collapse_gt50_involved"


def test_collapse_over_half_and_focal_kyphosis():
    ph = default_phantom(15, 5)
    ph.vertebrae[2].wedge = 0.65
    ph.vertebrae[2].lesion = "lytic"
    f, _ = _run(ph, "axial")
    assert f.vertebra("T10").collapse.value == "gt50"
    ph = default_phantom(15, 5)
    for v in ph.vertebrae[:2]:
        v.kyphosis_deg = 15.0
    ph.vertebrae[0].shift = (0.0, -7.0, -1.0)
    ph.vertebrae[1].shift = (0.0, -2.0, 0.0)
    ph.vertebrae[2].lesion = "lytic"
    f, _ = _run(ph, "axial")
    t9 = f.vertebra("T9")
    assert abs(t9.measurements["kyphosis_deg"]) >= 10.0


def test_no_parts_map_makes_posterolateral_not_assessable():
    ph = default_phantom(15, 3)
    ph.vertebrae[1].lesion = "lytic"
    shape, aff = grid("axial", 1.0, fov=(50.0, 76.0, 90.0), centre=(0.0, 0.0, 34.0))
    r = render(ph, shape, aff)
    f = extract_features(Volume(r["ct"], aff, "CT"), r["vertebrae"], r["structures"], None)
    v = f.vertebra("T9")
    assert v.provenance["posterolateral"] == "not_assessable"
    assert any("parts" in m for m in f.messages)


def test_contiguous_segments_cross_regions():
    assert contiguous_segments([18, 19, 20, 22]) == [["T11", "T12", "L1"], ["L3"]]
    assert contiguous_segments([19, 28, 20]) == [["T12", "T13", "L1"]]
    assert contiguous_segments([]) == []


def test_location_classes():
    assert location_class(8).value == "junctional"  # T1
    assert location_class(10).value == "semirigid"  # T3
    assert location_class(22).value == "mobile"  # L3
    assert location_class(26).provenance == "not_assessable"  # undivided sacrum
    assert location_class(28).provenance == "not_assessable"  # T13


def test_config_tolerances_change_the_answer():
    ph = default_phantom(15, 4)
    ph.vertebrae[1].lesion = "lytic"
    ph.vertebrae[1].lesion_where = ("body",)
    ph.vertebrae[1].lesion_body_fraction = 0.05
    cfg = load_config(overrides={"involvement": {"min_lesion_ml": 50.0}})
    f, _ = _run(ph, "axial", fov=(50.0, 76.0, 110.0), centre=(0.0, 0.0, 21.0), config=cfg)
    assert f.involved_levels == []
    f, _ = _run(ph, "axial", fov=(50.0, 76.0, 110.0), centre=(0.0, 0.0, 21.0))
    assert f.involved_levels == ["T9"]


def test_deterministic():
    ph = default_phantom(15, 3)
    ph.vertebrae[1].escc, ph.vertebrae[1].lesion = "2", "mixed"
    kw = {"fov": (50.0, 76.0, 85.0), "centre": (0.0, 0.0, 34.0)}
    a, _ = _run(ph, "oblique", **kw)
    b, _ = _run(ph, "oblique", **kw)
    assert [v.measurements for v in a.vertebrae] == [v.measurements for v in b.vertebrae]
    assert np.isclose(a.escc.worst_slice.sac_area_mm2, b.escc.worst_slice.sac_area_mm2)


def test_a_vertebra_with_one_sided_posterior_parts_takes_its_neighbours_frame():
    from pipeline.features.geometry import vertebra_geometries

    ph = default_phantom(15, 5)
    shape, aff = grid("axial", 1.0, fov=(60.0, 80.0, 150.0), centre=(0.0, 0.0, 40.0))
    r = render(ph, shape, aff)
    vert, parts = r["vertebrae"], r["parts"].copy()
    # A segmentation error: T10's arch missed and a piece of bone beside its body (a rib
    # head, say) taken as its posterior element, so body -> "posterior" points sideways.
    t10 = vert == 17
    arch = t10 & (parts != L.BODY)
    vert, parts = np.where(arch, 0, vert), np.where(arch, 0, parts)
    body = np.argwhere(t10 & (parts == L.BODY))
    lo, hi = body.min(0), body.max(0)
    side = (slice(hi[0] + 1, hi[0] + 7), slice((lo[1] + hi[1]) // 2 - 3, (lo[1] + hi[1]) // 2 + 3),
            slice(lo[2] + 2, hi[2] - 1))  # fmt: skip
    vert[side], parts[side] = 17, L.POSTERIOR
    geos = {g.level: g for g in vertebra_geometries(vert, parts, aff)}
    t10 = geos["T10"]
    assert t10.frame_source.startswith("neighbours")
    assert t10.a @ geos["T9"].a > 0.95 and t10.s @ geos["T11"].s > 0.95
    assert all(geos[n].frame_source == "parts" for n in ("T9", "T11"))
    feats = extract_features(Volume(r["ct"], aff, "CT"), vert, r["structures"], parts)
    for level in ("T9", "T10"):  # the pairs on either side of T10: no false slip or angle
        m = feats.vertebra(level).measurements  # type: ignore[union-attr]
        assert m["translation_mm"] < 3.0 and abs(m["kyphosis_deg"]) < 10.0, (level, m)


def test_epidural_tumour_at_air_attenuation_is_ignored_on_ct():
    """'Epidural tumour' painted onto air (a model error seen on a real thin CT) grades 0."""
    ph = default_phantom(15, 4)
    ph.vertebrae[1].escc = "2"
    r, aff = _air_test_phantom(ph)
    ct = r["ct"].copy()
    f_ok = _features_with_ct(r, aff, ct)
    assert f_ok.escc.worst_grade == "2"
    ct[r["structures"] == L.EPIDURAL] = -1000.0
    f = _features_with_ct(r, aff, ct)
    assert f.escc.worst_grade == "0"
    assert any("epidural-tumour voxels" in m and "fat or air" in m for m in f.messages)


def test_sagittal_slab_cut_left_right_keeps_heights_and_sagittal_alignment():
    """A sagittal slab narrower than the bodies cuts them left-right only: collapse and the
    sagittal-plane slip stay measurable; the coronal angle is not claimed."""
    from pipeline.features.geometry import vertebra_geometries

    ph = _asymmetric()
    f, r = _run(ph, "sagittal", fov=(20.0, 90.0, 140.0))
    shape, aff = grid("sagittal", 1.0, fov=(20.0, 90.0, 140.0), centre=(0.0, 0.0, 8.0))
    geos = {g.level: g for g in vertebra_geometries(r["vertebrae"], r["parts"], aff)}
    assert geos["T10"].cut_axes == ("L",) and geos["T10"].cut_laterally_only
    t10, t9 = f.vertebra("T10"), f.vertebra("T9")
    assert t10.partly_in_view  # still reported as partly seen
    assert 30.0 <= t10.measurements["collapse_pct"] <= 50.0 and t10.collapse.value == "lt50"
    assert "cut left-right" in t10.collapse.why
    assert t9.alignment.value == "subluxation_translation"
    assert abs(t9.measurements["translation_mm"] - 6.0) <= 1.5
    assert t9.measurements["scoliosis_deg"] is None
    assert t9.alignment.provenance == "estimated" and "sagittal plane only" in t9.alignment.why
    assert f.vertebra("T11").alignment.value == "normal"


def test_body_cut_head_feet_is_not_measured():
    """A body cut by the top or bottom of the image has no true height: not assessable."""
    ph = default_phantom(15, 5)
    f, _ = _run(ph, "axial", fov=(50.0, 90.0, 100.0), centre=(0.0, 0.0, 8.0))
    cut = [v for v in f.vertebrae if v.partly_in_view]
    assert cut, "the field of view should cut the end vertebrae"
    for v in cut:
        assert v.collapse.provenance == "not_assessable"


def test_bone_attached_far_from_a_body_does_not_tilt_the_column():
    """Frames without posterior parts follow the column; a first rib or scapula that the
    segmentation gave to one vertebra moves its centroid, not the column (body centres)."""
    from pipeline.features.geometry import vertebra_geometries

    ph = default_phantom(15, 5)
    shape, aff = grid("axial", 1.0, fov=(120.0, 120.0, 140.0), centre=(0.0, 0.0, 8.0))
    r = render(ph, shape, aff)
    vert, parts = r["vertebrae"].copy(), r["parts"].copy()
    parts[(parts != L.BODY) & (parts > 0)] = 0  # bodies only: frames from the column
    t10 = vert == 17
    k = int(np.argwhere(t10)[:, 2].mean())
    vert[0:30, 90:120, k - 15 : k + 15] = 17  # a 27 ml block 30-60 mm lateral and posterior
    f = extract_features(Volume(r["ct"], aff, "CT"), vert, r["structures"], parts)
    geos = {g.level: g for g in vertebra_geometries(vert, parts, aff)}
    for lv in ("T9", "T11"):
        assert abs(float(geos[lv].s @ np.array([0.0, 0.0, 1.0]))) > 0.95, lv
    for lv in ("T8", "T9", "T10", "T11"):
        v = f.vertebra(lv)
        assert v.measurements["translation_mm"] is None or v.measurements["translation_mm"] < 3.0, (
            lv
        )


def test_a_few_stray_body_voxels_do_not_move_a_body_centre():
    from pipeline.features.geometry import vertebra_geometries

    ph = default_phantom(15, 5)
    shape, aff = grid("axial", 1.0, fov=(60.0, 80.0, 150.0), centre=(0.0, 0.0, 40.0))
    r = render(ph, shape, aff)
    vert, parts = r["vertebrae"], r["parts"].copy()
    ref = {g.level: g.body_centroid for g in vertebra_geometries(vert, parts, aff)}
    # T10 loses its body part except three voxels at the tip of its posterior elements
    # (as the sacrum, which has no body part, can pick up a few when maps are resampled).
    t10 = vert == 17
    tip = np.argwhere(t10 & (parts == L.POSTERIOR))
    tip = tip[np.argsort(tip[:, 1])[-3:]]
    parts = np.where(t10 & (parts == L.BODY), L.POSTERIOR, parts)
    parts[tuple(tip.T)] = L.BODY
    geos = {g.level: g for g in vertebra_geometries(vert, parts, aff)}
    whole = index_to_lps(np.argwhere(t10).mean(0), aff)
    assert np.allclose(geos["T10"].body_centroid, whole, atol=1e-6)
    assert float(np.linalg.norm(geos["T10"].body_centroid - ref["T10"])) < 15.0
    assert np.allclose(geos["T9"].body_centroid, ref["T9"])


def test_a_vertebra_turned_far_from_its_neighbours_takes_their_frame():
    from scipy import ndimage

    from pipeline.features.geometry import vertebra_geometries

    ph = default_phantom(15, 5)
    shape, aff = grid("axial", 1.0, fov=(80.0, 90.0, 150.0), centre=(0.0, 0.0, 40.0))
    r = render(ph, shape, aff)
    vert, parts = r["vertebrae"].copy(), r["parts"].copy()
    # A segmentation error turns T10 by 40 deg about the head-feet axis (less than any
    # absolute limit on axial rotation, far more than between two adjacent vertebrae).
    t10 = vert == 17
    ks = np.flatnonzero(t10.any(axis=(0, 1)))
    sub = (slice(None), slice(None), slice(ks[0], ks[-1] + 1))
    turned = ndimage.rotate(np.where(t10, parts, 0)[sub], 40.0, axes=(0, 1), reshape=False, order=0)
    vert[t10], parts[t10] = 0, 0
    vs, ps = vert[sub], parts[sub]
    vs[turned > 0], ps[turned > 0] = 17, turned[turned > 0]
    geos = {g.level: g for g in vertebra_geometries(vert, parts, aff)}
    assert geos["T10"].frame_source.startswith("neighbours")
    assert geos["T10"].a @ geos["T9"].a > 0.98
    assert all(geos[n].frame_source == "parts" for n in ("T9", "T11")), {
        k: g.frame_source for k, g in geos.items()
    }
