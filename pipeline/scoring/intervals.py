"""Interval arithmetic for missing inputs (SCORING.md 0.2): never impute, enumerate.

Each missing item contributes the set of points it can take; the reachable totals are
the set sums; a band is reported only when every reachable total lies in one band.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any


def reachable_sums(options: Sequence[Iterable[int]]) -> tuple[int, ...]:
    """All totals reachable by picking one value from each option set.

    >>> reachable_sums([{3}, {0, 1, 3}, {2}])
    (5, 6, 8)
    """
    totals = {0}
    for opts in options:
        vals = set(opts)
        if not vals:
            raise ValueError("an item with no possible value")
        totals = {t + v for t in totals for v in vals}
    return tuple(sorted(totals))


def band_of(total: int, bands: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The band row (``{name, min, max, ...}``) containing ``total``; ``max: null`` = open."""
    for row in bands:
        hi = row.get("max")
        if row["min"] <= total and (hi is None or total <= hi):
            return row
    raise ValueError(f"total {total} lies in no band")


def common_band(totals: Iterable[int], bands: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The band shared by every total, or None when the totals span several bands."""
    rows = {id(band_of(t, bands)): band_of(t, bands) for t in totals}
    return next(iter(rows.values())) if len(rows) == 1 else None


def common_value(values: Iterable[Any]) -> Any:
    """The single value shared by all ``values``, or None when they differ."""
    uniq = list(dict.fromkeys(values))
    return uniq[0] if len(uniq) == 1 else None


def map_reachable(totals: Iterable[int], fn: Callable[[int], int]) -> tuple[int, ...]:
    """Apply ``fn`` (e.g. a ceiling) to reachable totals; sorted unique result."""
    return tuple(sorted({fn(t) for t in totals}))
