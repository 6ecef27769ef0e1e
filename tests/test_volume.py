import numpy as np
import pytest

from pipeline.io import Volume, read_nifti, write_nifti


def _oblique_affine() -> np.ndarray:
    # Axes deliberately out of L/P/S order and flipped: i -> -S, j -> +L (tilted), k -> -P.
    rot = np.array([[0.0, 0.98, 0.0], [0.0, 0.2, -1.0], [-1.0, 0.0, 0.0]])
    rot[:, 1] /= np.linalg.norm(rot[:, 1])
    aff = np.eye(4)
    aff[:3, :3] = rot * np.array([0.8, 1.2, 3.0])
    aff[:3, 3] = [10.0, -20.0, 30.0]
    return aff


def test_canonical_keeps_every_voxel_at_its_patient_position():
    rng = np.random.default_rng(0)
    arr = rng.normal(size=(5, 6, 7)).astype(np.float32)
    vol = Volume(arr, _oblique_affine(), "CT")
    can = vol.to_canonical()
    # axis 0 closest to +L, axis 1 to +P, axis 2 to +S
    d = can.direction
    assert np.argmax(np.abs(d[:, 0])) == 0 and d[0, 0] > 0
    assert np.argmax(np.abs(d[:, 1])) == 1 and d[1, 1] > 0
    assert np.argmax(np.abs(d[:, 2])) == 2 and d[2, 2] > 0
    for ijk in [(0, 0, 0), (4, 5, 6), (2, 3, 1)]:
        lps = vol.index_to_lps(ijk)
        back = np.rint(can.lps_to_index(lps)).astype(int)
        assert np.allclose(can.index_to_lps(back), lps, atol=1e-6)
        assert can.array[tuple(back)] == arr[ijk]


def test_nifti_round_trip_preserves_lps_geometry(tmp_path):
    arr = np.zeros((4, 5, 6), np.int16)
    arr[1, 2, 3] = 7
    vol = Volume(arr, _oblique_affine(), "CT").to_canonical()
    out = write_nifti(vol, tmp_path / "x.nii.gz")
    back = read_nifti(out, modality="CT")
    assert np.allclose(back.affine, vol.affine, atol=1e-5)
    idx = np.argwhere(back.array == 7)[0]
    assert np.allclose(back.index_to_lps(idx), vol.index_to_lps(np.argwhere(vol.array == 7)[0]))


def test_volume_rejects_non_3d():
    with pytest.raises(ValueError):
        Volume(np.zeros((2, 2)), np.eye(4), "CT")


@pytest.mark.parametrize("perm", [(0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0)])
@pytest.mark.parametrize("signs", [(a, b, c) for a in (1, -1) for b in (1, -1) for c in (1, -1)])
def test_canonical_for_all_48_axis_orders(perm, signs):
    aff = np.eye(4)
    aff[:3, :3] = np.eye(3)[:, list(perm)] * np.array(signs) * np.array([0.7, 1.3, 2.9])
    aff[:3, 3] = [5.0, -7.0, 11.0]
    arr = np.arange(3 * 4 * 5, dtype=np.float32).reshape(3, 4, 5)
    vol = Volume(arr, aff, "MR")
    can = vol.to_canonical()
    assert np.allclose(np.abs(can.direction), np.eye(3)) and np.all(np.diag(can.direction) > 0)
    for ijk in np.ndindex(arr.shape):
        back = np.rint(can.lps_to_index(vol.index_to_lps(ijk))).astype(int)
        assert can.array[tuple(back)] == arr[ijk]
