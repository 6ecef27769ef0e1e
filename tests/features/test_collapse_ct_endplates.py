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
