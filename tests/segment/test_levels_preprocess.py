"""Resampling geometry, semantic -> label maps, level numbering."""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

from pipeline import labels as L
from pipeline.io import Volume
from pipeline.preprocess import (
    model_input,
    resample_labels_nearest,
    resample_to_spacing,
    sample_tensor_on_grid,
    scaled_grid,
)
from pipeline.segment.levels import merge_fragments, number_instances
from pipeline.segment.model import SEM, derive_maps, level_position_map, semantic_from_truth


def test_scaled_grid_keeps_extent_and_centre() -> None:
    aff = np.diag([0.7, 0.7, 3.0, 1.0])
    aff[:3, 3] = [-100.0, 20.0, 5.0]
    new, shape = scaled_grid(aff, (100, 90, 20), 2.0)
    vol = Volume(np.zeros((100, 90, 20), np.float32), aff, "CT")
    out = Volume(np.zeros(shape, np.float32), new, "CT")
    # The boxes (voxel corners) coincide.
    for a, b in ((vol, out),):
        lo_a, hi_a = a.index_to_lps([-0.5] * 3), a.index_to_lps(np.array(a.shape) - 0.5)
        lo_b, hi_b = b.index_to_lps([-0.5] * 3), b.index_to_lps(np.array(b.shape) - 0.5)
        assert np.allclose(lo_a, lo_b) and np.allclose(hi_a, hi_b)
    assert shape == (35, 31, 30)  # 100*0.7/2, 90*0.7/2 (62.99../2 rounds down), 20*3/2


def test_resample_to_spacing_puts_a_bright_point_where_it_was() -> None:
    arr = np.zeros((60, 60, 20), np.float32)
    arr[40:43, 10:13, 14:16] = 1000.0
    aff = np.diag([0.8, 0.8, 3.0, 1.0])
    vol = Volume(arr, aff, "CT")
    out = resample_to_spacing(vol, 2.0)
    p_in = vol.index_to_lps(np.argwhere(arr > 0).mean(0))
    w = out.array.clip(0)
    p_out = out.index_to_lps((np.argwhere(w > 0) * w[w > 0][:, None]).sum(0) / w.sum())
    assert np.linalg.norm(p_in - p_out) < 1.0


def test_label_resampling_between_flipped_grids_is_exact() -> None:
    rng = np.random.default_rng(0)
    lab = rng.integers(0, 5, (7, 8, 9)).astype(np.int16)
    aff = np.diag([1.0, 2.0, 3.0, 1.0])
    vol = Volume(lab, aff, "CT")
    flipped = Volume(lab[::-1, :, ::-1].copy(), aff.copy(), "CT")
    flipped.affine[:3, 0] *= -1
    flipped.affine[:3, 2] *= -1
    flipped.affine[:3, 3] = vol.index_to_lps([6, 0, 8])
    back = resample_labels_nearest(flipped.array, flipped.affine, vol.affine, vol.shape)
    assert np.array_equal(back, lab)


def test_sample_tensor_on_grid_identity_and_chunks() -> None:
    x = torch.rand(3, 10, 11, 12)
    aff = np.diag([2.0, 2.0, 2.0, 1.0])
    y = sample_tensor_on_grid(x, aff, aff, (10, 11, 12), chunk_voxels=300)
    assert torch.allclose(x, y, atol=1e-5)


def test_label_sampling_equals_the_argmax_of_interpolated_logits() -> None:
    from pipeline.preprocess import sample_labels_on_grid

    rng = np.random.default_rng(3)
    for rotate in (False, True):
        raw = torch.from_numpy(rng.normal(size=(1, 5, 12, 14, 10)).astype(np.float32))
        logits = torch.nn.functional.avg_pool3d(raw, 3, 1, 1)[0] * 5  # smooth: regions agree
        near = torch.from_numpy(rng.integers(0, 30, (2, 12, 14, 10)).astype(np.int16))
        src = np.diag([2.0, 2.0, 2.0, 1.0])
        src[:3, 3] = [1, 2, 3]
        rot = np.linalg.qr(rng.normal(size=(3, 3)))[0] if rotate else np.eye(3)
        dst = np.eye(4)
        dst[:3, :3] = rot @ np.diag([0.7, 0.8, 1.1])
        dst[:3, 3] = [-1.0, 0.0, 2.0]
        shape = (40, 38, 25)
        ref = sample_tensor_on_grid(logits, src, dst, shape, reduce=lambda c: c.argmax(0))
        lab, nn = sample_labels_on_grid(logits, near, src, dst, shape, chunk_voxels=5000)
        assert lab.dtype == torch.uint8 and torch.equal(lab.long(), ref)
        # Nearest values: the source voxel whose centre is closest (ties aside).
        m = np.linalg.inv(src) @ dst
        ijk = np.stack(np.meshgrid(*map(np.arange, shape), indexing="ij"), -1) @ m[:3, :3].T
        ijk = np.clip(ijk + m[:3, 3], 0, np.array(near.shape[1:]) - 1)
        clear = (np.abs(ijk - np.floor(ijk) - 0.5) > 1e-3).all(-1)
        r = np.rint(ijk).astype(int)
        want = near.numpy()[:, r[..., 0], r[..., 1], r[..., 2]]
        assert np.array_equal(nn.numpy()[:, clear], want[:, clear]) and clear.mean() > 0.5


def test_model_input_percentile_normalisation_and_ct_flag() -> None:
    ct = model_input(np.linspace(-1000, 1000, 1000).reshape(10, 10, 10), "CT")
    assert ct.shape == (2, 10, 10, 10) and float(ct[1].min()) == 1.0
    assert -0.01 < float(ct[0].min()) <= 0.0 and 1.0 <= float(ct[0].max()) < 1.01
    mr = model_input(np.linspace(0, 500, 1000).reshape(10, 10, 10), "MR")
    assert float(mr[1].max()) == 0.0
    # Same shape of intensities, other unit: same normalised image.
    assert np.allclose(mr[0].numpy(), ct[0].numpy(), atol=1e-4)


def test_semantic_roundtrip_recovers_levels_parts_and_structures(phantom) -> None:
    img, truth = phantom(5, sacrum=True, lowest=24)
    sem = semantic_from_truth(truth["vertebrae"], truth["structures"], truth["parts"])
    vert, struct, parts, conf, uncertain, why = derive_maps(sem, img.affine)
    assert not uncertain and "sacrum" in why
    assert np.array_equal(vert, truth["vertebrae"])
    assert np.array_equal(struct, truth["structures"])
    assert np.array_equal(parts, truth["parts"])
    assert set(conf) == {"L1", "L2", "L3", "L4", "L5"}


def test_pedicle_sides_follow_patient_left_not_array_order(phantom) -> None:
    img, truth = phantom(3, sacrum=True)
    sem = semantic_from_truth(truth["vertebrae"], truth["structures"], truth["parts"])
    # Store the same anatomy with the first array axis reversed (i now runs toward +R).
    aff = img.affine.copy()
    aff[:3, 3] = img.index_to_lps([img.shape[0] - 1, 0, 0])
    aff[:3, 0] *= -1
    _, _, parts, *_ = derive_maps(sem[::-1].copy(), aff)
    idx = np.argwhere(parts == L.PEDICLE_L)
    assert (
        idx.size
        and (idx @ aff[:3, :3].T + aff[:3, 3])[:, 0].mean()
        > img.index_to_lps(np.argwhere(truth["vertebrae"] > 0).mean(0))[0]
    )


def test_learned_level_estimate_numbers_a_partial_column(phantom) -> None:
    img, truth = phantom(4, sacrum=False, lowest=17)  # T7..T10, no anchor
    sem = semantic_from_truth(truth["vertebrae"], truth["structures"], truth["parts"])
    est = level_position_map(truth["vertebrae"]) + np.float32(0.3)  # a slightly biased estimate
    vert, _, _, conf, uncertain, why = derive_maps(sem, img.affine, est)
    assert uncertain and "learned" in why
    assert np.array_equal(vert, truth["vertebrae"])
    assert all(c <= 0.8 for c in conf.values())


def test_sacrum_anchor_counts_upwards() -> None:
    inst = np.zeros((4, 4, 30), np.int32)
    sac = np.zeros_like(inst, bool)
    sac[:, :, 0:3] = True
    for n, k in enumerate(range(5, 30, 6), start=1):
        inst[:, :, k : k + 4] = n
    aff = np.diag([20.0, 20.0, 1.0, 1.0])  # sacrum 4 x 4 x 3 voxels of 400 mm3 = 19.2 ml
    numbers, conf, uncertain, _ = number_instances(inst, aff, sacrum=sac)
    assert not uncertain
    assert [numbers[i] for i in (1, 2, 3, 4, 5)] == [24, 23, 22, 21, 20]
    assert SEM["sacrum"] == 10
    # A few ml of "sacrum" (a segmentation error) is no anchor: numbering stays uncertain.
    numbers, _, uncertain, why = number_instances(inst, np.diag([5.0, 5.0, 1.0, 1.0]), sacrum=sac)
    assert uncertain and "no sacrum" in why


def test_fragments_closer_than_a_vertebral_pitch_are_merged() -> None:
    inst = np.zeros((10, 10, 80), np.int32)  # 1 mm voxels
    inst[:, :5, 5:25] = 1
    inst[:, 5:, 5:25] = 2  # the other half of the same body
    inst[:, :, 30:50] = 3  # the next body, 25 mm further
    inst[:, :, 55:58] = 4  # a body cut by the field of view, 21.5 mm from the last
    out = merge_fragments(inst, np.eye(4))
    assert out.max() == 3
    assert len(np.unique(out[:, :, 5:25])) == 1 and out[0, 0, 5] != out[0, 0, 40] != out[0, 0, 56]


def test_stray_sac_pieces_away_from_the_canal_are_not_the_canal(phantom) -> None:
    from pipeline.segment.levels import spinal_canal

    img, truth = phantom(3, sacrum=True)
    sem = semantic_from_truth(truth["vertebrae"], truth["structures"], truth["parts"])
    canal_true = np.isin(sem, (SEM["sac"], SEM["cord"]))
    bone = np.isin(sem, (SEM["body"], SEM["pedicle"], SEM["posterior"]))
    # A "sac" blob far from the spine, larger than the canal itself.
    sem2 = sem.copy()
    far = np.zeros(sem.shape, bool)
    far[:6, -12:, :] = True
    assert far.sum() > canal_true.sum() and not (far & (canal_true | bone)).any()
    sem2[far] = SEM["sac"]
    # A compressed level: the canal interrupted over 2 voxels, both parts kept.
    idx = np.argwhere(canal_true)
    z = int(np.median(idx[:, 2]))
    sem2[:, :, z : z + 2][canal_true[:, :, z : z + 2]] = SEM["posterior"]
    canal, n_stray = spinal_canal(np.isin(sem2, (SEM["sac"], SEM["cord"])), bone, img.affine)
    assert n_stray == 1 and not (canal & far).any()
    assert canal.sum() == (canal_true.sum() - canal_true[:, :, z : z + 2].sum())
    vert, struct, *_, why = derive_maps(sem2, img.affine)
    assert not np.isin(struct[far], (L.SAC, L.CORD)).any()
    assert "1 sac/cord region(s) away from the spinal canal ignored" in why
    on_bone = truth["vertebrae"] > 0  # numbering unchanged (the painted gap is extra bone)
    assert np.array_equal(vert[on_bone], truth["vertebrae"][on_bone])


def test_a_body_too_thin_for_the_erosion_split_is_kept() -> None:
    from pipeline.segment.levels import body_instances

    body = np.zeros((30, 30, 90), bool)  # 1 mm voxels
    for z0 in (4, 26, 48):  # three bodies fused by thin bridges (missed discs)
        body[5:25, 5:25, z0 : z0 + 18] = True
    body[14:16, 14:16, 4:66] = True
    body[3:28, 3:28, 88:90] = True  # a body cut by the field of view: 2 slices, 1250 mm^3
    inst = body_instances(body, np.eye(4), min_volume_mm3=1000.0)
    assert inst.max() == 4
    assert len(np.unique(inst[3:28, 3:28, 88:90])) == 1 and inst[10, 10, 89] > 0


def test_levels_follow_the_bodies_not_bone_grown_along_a_fused_arch() -> None:
    inst = np.zeros((20, 40, 100), np.int32)  # 1 mm voxels; S is axis 2
    for k, z0 in enumerate((80, 60, 40, 20)):  # four bodies, head first
        inst[5:15, 5:15, z0 : z0 + 15] = 4 - k
    body = inst > 0
    # The lowest body's instance flooded an arch mass that reaches the top of the column.
    inst[5:15, 25:38, 5:99] = 1
    pos = np.zeros(inst.shape)
    for k, z0 in enumerate((80, 60, 40, 20)):
        pos[5:15, 5:15, z0 : z0 + 15] = 20 + k  # learned estimates L1..L4
    pos[5:15, 25:38, 5:99] = 23.0  # the flooded arch carries its instance's estimate
    # 1.7 mm along S: a lumbar pitch of 34 mm (20 mm would be implausibly small for L1-L4)
    numbers, *_ = number_instances(inst, np.diag([1.0, 1.0, 1.7, 1.0]), body=body, position=pos)
    assert [numbers[i] for i in (4, 3, 2, 1)] == [20, 21, 22, 23]


def _column(bodies: list[tuple[int, int]], depth: int = 60) -> np.ndarray:
    """Instances 1..n as slabs [k0, k1) along S (1 mm voxels, index k = S), head first."""
    inst = np.zeros((4, 4, depth), np.int32)
    for n, (k0, k1) in enumerate(sorted(bodies, reverse=True), start=1):
        inst[:, :, k0:k1] = n
    return inst


def test_a_body_fused_to_the_sacrum_is_s1_not_l5() -> None:
    from pipeline.segment.levels import fused_to_sacrum

    # Sacrum k 0-3; a "body" touching it over its whole lower face (S1 taken for a body,
    # no disc); then L5..L2 each behind a 2-voxel disc.
    inst = _column([(4, 7), (9, 13), (15, 19), (21, 25), (27, 31)], depth=40)
    sac = np.zeros_like(inst, bool)
    sac[:, :, 0:4] = True
    aff = np.diag([20.0, 20.0, 1.0, 1.0])  # sacrum 25.6 ml: plausible
    assert fused_to_sacrum(inst, sac, [1, 2, 3, 4, 5]) == [5]
    numbers, _, uncertain, why = number_instances(inst, aff, sacrum=sac)
    assert not uncertain and "sacrum" in why
    assert [numbers[i] for i in (1, 2, 3, 4, 5)] == [21, 22, 23, 24, 26]


def test_a_small_sacrum_with_s1_taken_for_a_body_still_anchors_the_count() -> None:
    """On sagittal MR the model calls much of S1 "body": 12.8 ml of "sacrum" alone is below
    MIN_SACRUM_ML, but with the S1 instance fused to it the sacrum is plausible (38 ml)."""
    from pipeline.segment.levels import MIN_SACRUM_ML, plausible_sacrum, sacrum_with_fused

    inst = _column([(2, 6), (8, 12), (14, 18), (20, 24), (26, 30)], depth=40)
    sac = np.zeros_like(inst, bool)
    sac[:, :, 0:2] = True  # 4 x 4 x 2 voxels of 400 mm^3: 12.8 ml
    aff = np.diag([20.0, 20.0, 1.0, 1.0])
    assert not plausible_sacrum(sac, aff) and sac.sum() * 0.4 < MIN_SACRUM_ML
    assert plausible_sacrum(sacrum_with_fused(sac, inst)[0], aff)
    numbers, _, uncertain, why = number_instances(inst, aff, sacrum=sac)
    assert not uncertain and "sacrum" in why
    assert [numbers[i] for i in (1, 2, 3, 4, 5)] == [21, 22, 23, 24, 26]


def test_a_vertebra_missing_between_bodies_is_skipped_in_the_count() -> None:
    from pipeline.segment.levels import column_ranks

    # Pitch 6 mm; the body between k 17 and k 29 was not found (12 mm = two pitches).
    inst = _column([(5, 9), (11, 15), (17, 21), (29, 33), (35, 39)], depth=45)
    sac = np.zeros_like(inst, bool)
    sac[:, :, 0:3] = True
    numbers, _, _, why = number_instances(inst, np.diag([20.0, 20.0, 1.0, 1.0]), sacrum=sac)
    assert [numbers[i] for i in (1, 2, 3, 4, 5)] == [19, 20, 22, 23, 24]
    assert "1 vertebra(e) between found bodies counted as missing" in why
    # Regular spacing (a pitch that grows slowly down the column) skips nothing.
    z = np.cumsum([0.0, 18, 19, 20, 21, 23, 25, 27])[:, None] * [[0, 0, -1]]
    assert column_ranks(z).tolist() == list(range(8))


def test_a_tall_topmost_body_with_a_cervical_estimate_is_c2() -> None:
    # C2 with its dens (9 mm, 2.7 times; C2_C3_RATIO: 3 would be C2 with C3 fused) above
    # three 4-mm bodies, pitch 6 mm.
    inst = _column([(2, 6), (8, 12), (14, 18), (20, 29)], depth=33)
    aff = np.diag([20.0, 20.0, 1.0, 1.0])
    cervical = np.where(inst > 0, 5.0, 0.0)  # a compressed estimate, but cervical
    numbers, _, uncertain, why = number_instances(inst, aff, position=cervical)
    assert not uncertain and "C2" in why
    assert [numbers[i] for i in (1, 2, 3, 4)] == [2, 3, 4, 5]
    thoracic = np.where(inst > 0, 15.0, 0.0)  # a tall top body lower down is no C2
    numbers, _, uncertain, why = number_instances(inst, aff, position=thoracic)
    assert uncertain and "C2" not in why


def test_c2_whose_dens_the_model_partly_missed_still_anchors_the_count() -> None:
    """A topmost body 1.7 times as tall as the next three (part of the dens missed) with a
    cervical estimate anchors at C2 (C2_ANCHOR_RATIO); at 1.3 times it does not."""
    aff = np.diag([20.0, 20.0, 1.0, 1.0])
    for top, is_c2 in (((20, 26), True), ((20, 25), False)):
        inst = _column([(2, 6), (8, 12), (14, 18), top], depth=30)
        numbers, _, uncertain, why = number_instances(
            inst, aff, position=np.where(inst > 0, 5.0, 0.0)
        )
        assert ("C2" in why) is is_c2 and uncertain is not is_c2, why
        if is_c2:
            assert [numbers[i] for i in (1, 2, 3, 4)] == [2, 3, 4, 5]


def test_no_body_is_numbered_c1() -> None:
    """The atlas has no body: an estimate pulled up toward C1 still starts the column at C2."""
    inst = _column([(2, 6), (8, 12), (14, 18), (20, 24)], depth=28)
    aff = np.diag([20.0, 20.0, 1.0, 1.0])
    est = np.zeros(inst.shape)
    for i, v in zip((1, 2, 3, 4), (1.2, 1.9, 3.1, 4.2), strict=True):
        est[inst == i] = v
    numbers, _, uncertain, _ = number_instances(inst, aff, position=est)
    assert uncertain
    assert [numbers[i] for i in (1, 2, 3, 4)] == [2, 3, 4, 5]


def test_sacrum_pieces_above_the_column_are_not_the_sacrum() -> None:
    """A large "sacrum" blob beside the upper column (a segmentation stray) neither anchors
    nor shifts the count; the pieces below the column do."""
    from pipeline.segment.levels import main_sacrum

    inst = _column([(6, 10), (12, 16), (18, 22), (24, 28), (30, 34)], depth=50)
    sac = np.zeros_like(inst, bool)
    sac[:, :, 0:5] = True  # the sacrum, below L5
    stray = np.zeros_like(inst, bool)
    stray[:, :, 40:48] = True  # larger than the sacrum, above the column's middle
    aff = np.diag([20.0, 20.0, 1.0, 1.0])
    kept = main_sacrum(sac | stray, aff, inst)
    assert kept[:, :, 0:5].all() and not kept[:, :, 40:48].any()
    numbers, _, uncertain, _ = number_instances(inst, aff, sacrum=kept)
    assert not uncertain
    assert [numbers[i] for i in (1, 2, 3, 4, 5)] == [20, 21, 22, 23, 24]
    # without the column's positions nothing can be told apart
    assert (main_sacrum(sac | stray, aff) == (sac | stray)).all()


def test_bodies_cut_off_their_arches_still_get_their_own_arch(phantom) -> None:
    # At 2 mm the model misses short cervical pedicles: bodies then lie a few mm from their
    # arches, while the arches touch each other at the facets. One body still joined to
    # the chain of arches must not take them all.
    img, truth = phantom(4, sacrum=False, lowest=20)
    tv = truth["vertebrae"]
    sem = semantic_from_truth(tv, truth["structures"], truth["parts"])
    lowest = int(tv.max())
    near_body = ndimage.distance_transform_edt(sem != SEM["body"], sampling=2.0) <= 6.0
    sem[(sem == SEM["pedicle"]) & (tv != lowest) & near_body] = SEM["background"]
    arch = (sem == SEM["posterior"]) | (sem == SEM["pedicle"])
    joined = ndimage.binary_closing(arch, iterations=3) & (sem == SEM["background"])
    sem[joined & ~ndimage.binary_dilation(sem == SEM["body"], iterations=3)] = SEM["posterior"]
    post = (sem == SEM["posterior"]) & (truth["parts"] == L.POSTERIOR)
    assert ndimage.label(post | (sem == SEM["posterior"]))[1] == 1  # one chain of arches
    vert, _, parts, *_ = derive_maps(sem, img.affine)
    for lv in np.unique(tv[tv > 0]):  # whatever number it got, the arch is its body's
        body = np.bincount(vert[(tv == lv) & (truth["parts"] == L.BODY)]).argmax()
        own = post & (tv == lv)
        assert (vert[own] == body).mean() > 0.8, (int(lv), float((vert[own] == body).mean()))


def test_a_collapsed_body_joined_to_its_neighbour_is_cut_at_the_disc_waist() -> None:
    from pipeline.segment.levels import _ids, split_at_waist

    aff = np.diag([2.0, 2.0, 2.0, 1.0])
    inst = np.zeros((30, 30, 100), np.int32)
    inst[5:25, 5:25, 2:13] = 1  # normal bodies 22 mm tall, 6 mm discs
    inst[5:25, 5:25, 16:27] = 2
    inst[5:25, 5:25, 30:41] = 3
    inst[5:25, 5:25, 44:48] = 4  # a body collapsed to 8 mm ...
    inst[12:18, 12:18, 48:51] = 4  # ... joined through the middle of its disc ...
    inst[5:25, 5:25, 51:62] = 4  # ... to the body above: one 36 mm instance
    inst[5:25, 5:25, 65:76] = 5
    out = split_at_waist(inst, aff)
    assert len(_ids(out)) == 6
    below, above = out[15, 15, 45], out[15, 15, 58]
    assert below != above and below > 0 and above > 0
    # a tall instance without a waist (one tall body) stays whole
    inst[12:18, 12:18, 48:51] = 0
    inst[5:25, 5:25, 44:62] = 4
    assert len(_ids(split_at_waist(inst, aff))) == 5


def test_the_dens_of_c2_is_not_taken_for_a_waist() -> None:
    """The topmost instance as tall as C2 with its dens (twice the bodies below) keeps its
    narrow neck; a topmost instance only 1.7 times as tall, with a waist, is cut."""
    from pipeline.segment.levels import _ids, split_at_waist

    aff = np.diag([2.0, 2.0, 2.0, 1.0])
    inst = np.zeros((30, 30, 100), np.int32)
    inst[5:25, 5:25, 2:10] = 1  # bodies 16 mm tall, 6 mm discs (head = high index)
    inst[5:25, 5:25, 13:21] = 2
    inst[5:25, 5:25, 24:32] = 3
    inst[5:25, 5:25, 35:43] = 4
    inst[5:25, 5:25, 46:54] = 5  # C2's body ...
    inst[12:18, 12:18, 54:57] = 5  # ... its narrow neck ...
    inst[10:20, 10:20, 57:66] = 5  # ... and the dens: a 40 mm instance
    assert len(_ids(split_at_waist(inst, aff))) == 5
    inst[:, :, 57:66] = 0
    inst[5:25, 5:25, 57:59] = 5  # a collapsed body (4 mm) joined to the one below: 26 mm
    assert len(_ids(split_at_waist(inst, aff))) == 6
