"""Vertebrae of two series of one study matched by body-centre position."""

from __future__ import annotations

from pipeline.features.crossseries import match_levels


def test_match_levels_by_nearest_body_centre():
    # The axial series numbered one level low (T8, T9, T10 for what the sagittal calls
    # T7, T8, T9); its last vertebra is below the sagittal's field of view.
    axial = [("T8", (0.0, 10.0, 100.0)), ("T9", (0.0, 11.0, 72.0)), ("T10", (0.0, 12.0, 44.0)),
             ("T11", (0.0, 12.0, 0.0)), ("T12", None)]  # fmt: skip
    sag = [("T6", (1.0, 9.0, 128.0)), ("T7", (1.0, 10.0, 101.0)), ("T8", (0.0, 11.0, 73.0)),
           ("T9", (0.0, 12.0, 45.0))]  # fmt: skip
    assert match_levels(axial, sag) == {"T8": "T7", "T9": "T8", "T10": "T9"}
    assert match_levels(axial, []) == {}
    # farther than the VerSe radius: no match
    assert match_levels([("T8", (0.0, 10.0, 100.0))], [("T7", (0.0, 10.0, 125.0))]) == {}


def test_match_is_mutual_nearest_only():
    # two axial bodies near one sagittal body (a split body): only the nearer is matched
    axial = [("T8", (0.0, 0.0, 100.0)), ("T9", (0.0, 0.0, 90.0))]
    assert match_levels(axial, [("T7", (0.0, 0.0, 98.0))]) == {"T8": "T7"}


def _features(names_centres, worst):
    from pipeline.features.types import EsccResult, Finding, ImagingFeatures, VertebraFeatures

    vs = [
        VertebraFeatures(
            label=0,
            level=n,
            involved=False,
            location=Finding("semirigid"),
            lesion=Finding(None),
            collapse=Finding("none"),
            alignment=Finding("normal"),
            posterolateral=Finding("none"),
            body_centre_lps=c,
        )  # fmt: skip
        for n, c in names_centres
    ]
    per = {n: ("1c" if n == worst else "0") for n, _ in names_centres}
    return ImagingFeatures("MR", vs, EsccResult(per, worst, "1c", "measured", "axial"), [], [])


def test_run_says_when_the_two_numberings_disagree_on_the_worst_level():
    from pipeline.features.crossseries import numbering_check

    axial = _features([("T8", (0.0, 10.0, 100.0)), ("T9", (0.0, 11.0, 72.0))], worst="T9")
    same = _features([("T8", (0.0, 10.0, 101.0)), ("T9", (0.0, 11.0, 73.0))], worst=None)
    shifted = _features([("T7", (0.0, 10.0, 101.0)), ("T8", (0.0, 11.0, 73.0))], worst=None)
    assert numbering_check(axial, same) is None
    msg = numbering_check(axial, shifted)
    assert msg is not None and "numbered T9" in msg and "T8 on the MR series" in msg
    assert "uncertain" in msg


def test_axial_t2_levels_take_the_ct_names_in_a_ct_plus_mr_study():
    """CT numbers the whole run from its anchors: the graded axial T2's vertebrae are renamed
    after the CT vertebra at the same position; unmatched ones keep their names."""
    import dataclasses

    from pipeline.features.crossseries import adopt_numbering
    from pipeline.features.types import SliceMeasurement

    axial = _features(
        [("T8", (0.0, 10.0, 100.0)), ("T9", (0.0, 11.0, 72.0)), ("T10", (0.0, 12.0, 44.0))],
        worst="T9",
    )
    fields = {f.name: None for f in dataclasses.fields(SliceMeasurement)}
    sl = SliceMeasurement(**{**fields, "level": "T9", "offset_mm": 0.0, "grade": "1c",
                             "tumour_area_mm2": 20.0, "sac_area_mm2": 150.0,
                             "sac_deformed": True, "cord_area_mm2": 60.0})  # fmt: skip
    axial.escc.slices, axial.escc.worst_slice = [sl], sl
    ct = _features([("T7", (0.0, 10.0, 101.0)), ("T8", (0.0, 11.0, 73.0))], worst=None)
    ct.modality = "CT"
    msg = adopt_numbering(axial, ct)
    assert axial.escc.worst_level == "T8" and axial.escc.worst_slice.level == "T8"
    assert axial.escc.per_level == {"T7": "0", "T8": "1c", "T10": "0"}
    assert msg is not None and "numbered T9 on the axial T2 alone" in msg and "T8" in msg
    # the same numbering: nothing to say, names unchanged
    again = _features([("T7", (0.0, 10.0, 100.0)), ("T8", (0.0, 11.0, 72.0))], worst="T8")
    assert adopt_numbering(again, ct) is None and again.escc.worst_level == "T8"
    # a renaming that would merge two graded vertebrae into one name is not made
    clash = _features([("T9", (0.0, 11.0, 73.0)), ("T8", (0.0, 10.0, 101.0))], worst="T9")
    clash.escc.per_level["T7"] = "0"
    assert adopt_numbering(clash, ct) is None
    assert set(clash.escc.per_level) == {"T9", "T8", "T7"}
