"""Anatomical priors on the numbering without a sacrum: body sizes and the conus."""

from __future__ import annotations

import numpy as np

from pipeline.segment.levels import (
    CONUS_CANAL_BELOW_MM,
    conus_tip_s,
    number_instances,
    pitch_scale,
    typical_pitch_mm,
)

# 2 mm voxels in the axial plane, 1 mm along S (array axis 2 = patient S).
AFF = np.diag([2.0, 2.0, 1.0, 1.0])


def _column(heights: list[float], disc: float, top_extra: float = 0.0) -> np.ndarray:
    """Body instances 1..n, head first, each ``heights[k]`` mm tall with ``disc`` mm between
    them; the topmost is ``top_extra`` mm taller upwards (a dens, or a fused neighbour)."""
    depth = int(sum(heights) + disc * len(heights) + top_extra + 10)
    inst = np.zeros((6, 6, depth), np.int32)
    k = 5
    for n, h in enumerate(reversed(heights)):
        inst[:, :, k : k + int(h)] = len(heights) - n
        k += int(h + disc)
    inst[:, :, k - int(disc) : k - int(disc) + int(top_extra)] = 1
    return inst


def _estimate(inst: np.ndarray, values: list[float]) -> np.ndarray:
    est = np.zeros(inst.shape)
    for i, v in enumerate(values, start=1):
        est[inst == i] = v
    return est


def test_typical_pitches_grow_down_the_column() -> None:
    p = [typical_pitch_mm(n) for n in range(3, 24)]
    assert p[0] < 20 < p[10] < p[-1]  # C3 ~19 mm, T5 ~24 mm, L4 ~37 mm
    assert all(b >= a - 1.0 for a, b in zip(p, p[1:], strict=False))
    dist = np.array([19.0, 19.0, 19.0])
    rank = np.arange(4)
    assert pitch_scale(dist, 1, rank) is not None  # C3..C6: about typical
    assert abs(float(pitch_scale(dist, 1, rank)) - 1.0) < 0.05  # type: ignore[arg-type]
    assert pitch_scale(dist, 1, np.array([0, 2, 4, 6])) is None  # no pair one level apart


def test_a_tall_top_body_of_thoracic_size_is_not_taken_for_c2() -> None:
    """A cervical-looking estimate and a top body twice as tall as the next three anchor the
    count at C2 only when the bodies are cervical-sized (pitch ~19 mm); thoracic pitches
    (~27 mm) would make this patient's neck 40 % larger than any adult's."""
    cervical = _column([16.0, 14.0, 14.0, 14.0, 14.0], disc=5.0, top_extra=20.0)
    est = _estimate(cervical, [5.0] * 5)
    numbers, _, uncertain, why = number_instances(cervical, AFF, position=est)
    assert "C2" in why and not uncertain
    assert [numbers[i] for i in range(1, 6)] == [2, 3, 4, 5, 6]

    thoracic = _column([21.0, 21.0, 21.0, 22.0, 22.0], disc=6.0, top_extra=21.0)
    est = _estimate(thoracic, [7.0, 8.0, 9.0, 10.0, 11.0])
    numbers, _, uncertain, why = number_instances(thoracic, AFF, position=est)
    assert "C2" not in why and uncertain
    assert numbers[1] > 7  # thoracic, not C2


def test_body_sizes_rule_out_a_numbering_the_estimate_prefers() -> None:
    """Cervical-sized bodies (pitch 19 mm) with an estimate that reads lower thoracic are
    numbered where their size is plausible, and the report says why."""
    inst = _column([14.0] * 6, disc=5.0)
    est = _estimate(inst, [16.0, 17.0, 18.0, 19.0, 20.0, 21.0])
    numbers, _, uncertain, why = number_instances(inst, AFF, position=est)
    assert uncertain and "body sizes ruled out" in why
    dist = np.full(5, 19.0)
    scale = pitch_scale(dist, numbers[1] - 2, np.arange(6))
    assert scale is not None and 0.8 <= scale <= 1.25
    assert numbers[6] < 19  # not the estimate's T12-L2
    # Without any plausible numbering (a toy geometry), sizes decide nothing.
    tiny = _column([4.0] * 6, disc=2.0)
    numbers, _, _, why = number_instances(tiny, AFF, position=_estimate(tiny, [16.0] * 6))
    assert "body sizes" not in why


def test_the_conus_pulls_an_estimate_one_level_off_back_to_the_column() -> None:
    """Thoracolumbar bodies T10..L3 whose learned estimate reads one level high; the cord's
    tip at L1's lower third (the population mean) moves the fit back to the truth."""
    heights = [21.0, 22.0, 23.0, 25.0, 26.0, 27.0]  # T10, T11, T12, L1, L2, L3
    inst = _column(heights, disc=8.0)
    truth = [17, 18, 19, 20, 21, 22]
    est = _estimate(inst, [t + 0.9 for t in truth])
    numbers, *_ = number_instances(inst, AFF, position=est)
    assert [numbers[i] for i in range(1, 7)] == [t + 1 for t in truth]  # off by one alone
    s = {i: float(np.argwhere(inst == i)[:, 2].mean()) for i in range(1, 7)}  # centres (S)
    tip = s[4] - 0.3 * (s[4] - s[5])  # lower third of L1 (instance 4)
    numbers, _, _, why = number_instances(inst, AFF, position=est, conus_s=tip)
    assert [numbers[i] for i in range(1, 7)] == truth
    assert "conus" in why


def test_conus_tip_needs_canal_below_it() -> None:
    shape = (6, 6, 100)
    canal = np.zeros(shape, bool)
    canal[2:4, 2:4, 10:90] = True
    cord = np.zeros(shape, bool)
    cord[2:4, 2:4, 50:90] = True  # ends at S = 50 mm; canal goes on 40 mm below
    tip = conus_tip_s(cord, canal, AFF)
    assert tip is not None and 49.0 <= tip <= 51.0
    canal[:, :, : 50 - int(CONUS_CANAL_BELOW_MM) + 2] = False  # the view ends under the cord
    assert conus_tip_s(cord, canal, AFF) is None
    assert conus_tip_s(np.zeros(shape, bool), canal, AFF) is None


def test_a_top_body_three_times_as_tall_is_c2_with_c3_fused_to_it() -> None:
    """C2 (dens) and C3 merged into one instance 3.4 times as tall as the bodies below: the
    count below starts at C4, even where the estimate reads the top as upper thoracic."""
    inst = _column([14.0, 14.0, 14.0, 14.0, 14.0], disc=5.0, top_extra=33.0)
    numbers, _, uncertain, why = number_instances(
        inst, AFF, position=_estimate(inst, [10.0, 9.0, 9.0, 10.0, 11.0])
    )
    assert not uncertain and "fused with C2" in why
    assert [numbers[i] for i in range(1, 6)] == [2, 4, 5, 6, 7]
    # As tall as C2 alone (2.3 times) with that estimate: no anchor (the estimate decides).
    inst = _column([14.0, 14.0, 14.0, 14.0, 14.0], disc=5.0, top_extra=18.0)
    numbers, _, uncertain, why = number_instances(
        inst, AFF, position=_estimate(inst, [10.0, 9.0, 9.0, 10.0, 11.0])
    )
    assert uncertain and "C2" not in why


def test_a_body_cut_by_the_field_of_view_gives_no_pitch() -> None:
    """The real ts-example CT: a sliver of one body at the top of a 40 mm slab above a whole
    one. The sliver's centre is not its body's, so sizes must not overrule the estimate."""
    inst = np.zeros((6, 6, 40), np.int32)
    inst[:, :, 4:26] = 2  # a whole body (22 mm)
    inst[:, :, 30:40] = 1  # 10 mm of the body above, cut by the top of the view: the centres
    # lie 20 mm apart, which as a T8-T9 pitch would be implausibly small
    est = _estimate(inst, [16.4, 17.5])
    numbers, _, _, why = number_instances(inst, AFF, position=est)
    assert [numbers[1], numbers[2]] == [16, 17] and "body sizes" not in why
