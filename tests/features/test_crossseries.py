"""Bilsky levels of the axial series renamed to the sagittal numbering by position."""

from __future__ import annotations

from pipeline.features.crossseries import match_levels, relabel_escc
from pipeline.features.types import EsccResult, SliceMeasurement


def _slice(level: str, grade: str) -> SliceMeasurement:
    return SliceMeasurement(level, 0.0, grade, 20.0, 150.0, 0.8, 0.9, 1.0, True, 40.0, 1.0,
                            0.8, grade in ("1c", "2", "3"), grade in ("2", "3"), 0.7)  # fmt: skip


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


def test_relabel_escc_renames_every_level_and_keeps_the_worse_grade():
    ws = _slice("T9", "1c")
    r = EsccResult(
        per_level={"T8": "0", "T9": "1c", "T10": "1a"}, worst_level="T9", worst_grade="1c",
        provenance="measured", why="graded on axial T2 MR", worst_slice=ws,
        slices=[_slice("T9", "1b"), ws, _slice("T10", "1a")],
    )  # fmt: skip
    out = relabel_escc(r, {"T8": "T7", "T9": "T8", "T10": "T8"})
    assert out.per_level == {"T7": "0", "T8": "1c"}
    assert out.worst_level == "T8" and out.worst_slice.level == "T8"
    assert [m.level for m in out.slices] == ["T8", "T8", "T8"]
    assert r.worst_level == "T9"  # the input is not changed
    assert relabel_escc(r, {}).per_level == r.per_level
