"""Which neighbours give a vertebra its expected (intact) height."""

from __future__ import annotations

import numpy as np

from pipeline.features import load_config
from pipeline.features.extract import _collapse
from pipeline.features.geometry import VertebraGeometry


def _geo(label: int, level: str) -> VertebraGeometry:
    pts = np.zeros((20, 3))
    return VertebraGeometry(
        label, level, np.zeros((20, 3), np.intp), np.ones(20, np.int16), pts, pts[0], pts[0]
    )


def test_the_sacrum_is_not_a_height_reference_for_l5() -> None:
    """Seen on cohort Z: a sacrum's label (all its segments) 'measured' 41/30/26 mm and
    gave an intact L5 a false 18 % collapse."""
    geos = [_geo(22, "L3"), _geo(23, "L4"), _geo(24, "L5"), _geo(26, "S")]
    h = {"anterior": 28.0, "middle": 27.0, "posterior": 27.0}
    heights = {22: h, 23: h, 24: dict(h), 26: {"anterior": 41.0, "middle": 30.0, "posterior": 26.0}}
    out = _collapse(geos, heights, {24: True}, load_config()["collapse"])
    pct, why, _ = out[24]
    assert pct == 0.0
    assert "S" not in why.split("vs ")[1] and "L4" in why
