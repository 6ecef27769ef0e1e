"""Matching the vertebrae of two series of one study by position.

An MR study is numbered on its sagittal series and graded for Bilsky on its axial T2,
whose few vertebrae the model numbers on their own. Both series share the study's frame
of reference, so a vertebra of one is the vertebra of the other whose body centre (LPS) is
nearest; ``spinemet run`` uses this to say when the two numberings disagree.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: Two vertebrae match only when their body centres are this close (mm): the VerSe
#: identification radius.
MATCH_MM = 20.0


Centre = tuple[float, float, float] | None


def match_levels(
    src: Sequence[tuple[str, Centre]], ref: Sequence[tuple[str, Centre]], max_mm: float = MATCH_MM
) -> dict[str, str]:
    """Name in ``ref`` of each vertebra of ``src``, matched by nearest body centre.

    Parameters
    ----------
    src, ref : sequence of (level name, LPS body centre or None)
        E.g. ``[(v.level, v.body_centre_lps) for v in features.vertebrae]``.
    max_mm : float
        Mutual nearest neighbours within this distance only; vertebrae of ``src`` without
        a match are left out of the mapping.
    """
    s = [(n, c) for n, c in src if c is not None]
    r = [(n, c) for n, c in ref if c is not None]
    if not s or not r:
        return {}
    a = np.array([c for _, c in s], dtype=np.float64)
    b = np.array([c for _, c in r], dtype=np.float64)
    d = np.linalg.norm(a[:, None] - b[None], axis=-1)
    out: dict[str, str] = {}
    for i, (name, _) in enumerate(s):
        j = int(np.argmin(d[i]))
        if d[i, j] <= max_mm and int(np.argmin(d[:, j])) == i:
            out[name] = r[j][0]
    return out
