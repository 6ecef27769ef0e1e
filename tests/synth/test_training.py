"""make_training_pair: shapes, dtypes, label codes, determinism."""

import numpy as np
import pytest

from pipeline.synth import make_training_pair


@pytest.mark.parametrize("modality,dr", [("CT", False), ("MR", False), ("CT", True)])
def test_pair_grid_and_labels(modality, dr):
    img, lab = make_training_pair(
        5, modality, domain_randomised=dr, shape=(64, 64, 64), spacing_mm=(2.0, 2.0, 2.0)
    )
    assert img.shape == (64, 64, 64) and img.array.dtype == np.float32
    assert set(lab) == {"vertebrae", "structures", "parts"}
    for v in lab.values():
        assert v.shape == img.shape and np.allclose(v.affine, img.affine)
    assert lab["vertebrae"].array.dtype == np.int16
    assert set(np.unique(lab["structures"].array)) <= {0, 1, 2, 3, 4, 5, 6}
    assert set(np.unique(lab["parts"].array)) <= {0, 1, 2, 3, 4}
    # parts and vertebrae agree voxel for voxel
    assert np.array_equal(lab["vertebrae"].array > 0, lab["parts"].array > 0)
    assert (lab["vertebrae"].array > 0).sum() > 1000
    if modality == "CT" and not dr:
        body = img.array[lab["parts"].array == 1]
        assert 100 < np.median(body) < 600  # trabecular bone HU


def test_deterministic():
    a, la = make_training_pair(11, "MR", shape=(48, 48, 48))
    b, lb = make_training_pair(11, "MR", shape=(48, 48, 48))
    assert np.array_equal(a.array, b.array)
    assert np.array_equal(la["structures"].array, lb["structures"].array)
