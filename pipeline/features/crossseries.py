"""One level numbering for a study read on two series.

An MR study is numbered on its sagittal series (which sees the sacrum or C2 more often)
and graded for Bilsky on its axial T2, whose few vertebrae the model numbers on their
own. Both series share the study's frame of reference, so each axial vertebra is the
sagittal vertebra whose body centre (LPS) is nearest to its own: the Bilsky levels are
renamed to the sagittal numbering, so that "1c at T7" means the T7 of the rest of the
report.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from pipeline.features.types import EsccResult

#: An axial vertebra takes a sagittal name only when their body centres are this close
#: (mm): the VerSe identification radius.
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


def relabel_escc(result: EsccResult, mapping: dict[str, str]) -> EsccResult:
    """``result`` with its level names replaced through ``mapping`` (others unchanged).

    Two source levels mapped onto one name keep the worse grade.
    """
    from pipeline.features.escc import grade_index

    def name(lv: str | None) -> str | None:
        return None if lv is None else mapping.get(lv, lv)

    per: dict[str, str] = {}
    for lv, g in result.per_level.items():
        n = str(name(lv))
        if n not in per or grade_index(g) > grade_index(per[n]):
            per[n] = g
    ws = result.worst_slice
    return dataclasses.replace(
        result,
        per_level=per,
        worst_level=name(result.worst_level),
        worst_slice=None if ws is None else dataclasses.replace(ws, level=str(name(ws.level))),
        slices=[dataclasses.replace(m, level=str(name(m.level))) for m in result.slices],
    )
