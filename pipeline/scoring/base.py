"""Typed results shared by the scoring modules: components, score results, errors."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pipeline.errors import InputError

# Error codes of SCORING.md 0.5, in the order used when several apply.
ERROR_ORDER: tuple[str, ...] = (
    "LEVEL_NOT_IN_SINS",
    "TRANSITIONAL_LEVEL_UNCONFIRMED",
    "CONTRADICTION_COLLAPSE",
    "CONTRADICTION_CV_JOINT_LEVEL",
    "CONTRADICTION_ESCC_FEATURES",
    "NO_SPINAL_METASTASIS",
    "KPS_INVALID",
    "HISTOLOGY_UNMAPPED",
    "RADIOSENSITIVITY_UNDETERMINED",
    "SYSTEMIC_STATUS_MISSING",
    "CONTRADICTION_NEURO_AMBULATION",
    "CONTRADICTION_VISCERAL",
    "CONTRADICTION_SKELETAL_COUNT",
)


class ScoringError(InputError):
    """A score cannot be given for these inputs (contradiction, undefined level, ...).

    ``code`` is one of :data:`ERROR_ORDER` or an input-format code (``UNKNOWN_FIELD``,
    ``INVALID_TYPE``, ``INVALID_VALUE``, ``CONTRADICTION_*``).
    """


def error_sort_key(code: str) -> tuple[int, str]:
    """Order codes as listed in SCORING.md 0.5; other codes after, alphabetically."""
    try:
        return (ERROR_ORDER.index(code), code)
    except ValueError:
        return (len(ERROR_ORDER), code)


@dataclass(frozen=True)
class Component:
    """One scored item of a system, with every point value it can still take.

    Attributes
    ----------
    system, name : str
        E.g. ``"sins"``, ``"pain"``.
    options : tuple of int
        Points the item can take: one value when the input is known, several when it
        is missing or ambiguous (SCORING.md 0.2).
    value : str or None
        The input category that gave the points (``"mechanical"``), or None if missing.
    rule : str
        Human-readable rule (``"pain mechanical -> 3"``).
    source : str
        Citation key in ``configs/scoring.yaml`` ``sources``.
    """

    system: str
    name: str
    options: tuple[int, ...]
    value: str | None
    rule: str
    source: str

    @property
    def known(self) -> bool:
        """True when the item has exactly one possible point value."""
        return len(self.options) == 1

    @property
    def points(self) -> int | None:
        """The points, or None while the item is undetermined."""
        return self.options[0] if self.known else None


@dataclass
class ScoreResult:
    """The outcome of one score: total or reachable range, band, components, flags."""

    system: str
    components: list[Component]
    reachable: tuple[int, ...]
    band: str | None
    flags: set[str] = field(default_factory=set)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def total(self) -> int | None:
        """The total when every reachable total agrees, else None."""
        return self.reachable[0] if len(self.reachable) == 1 else None

    @property
    def total_range(self) -> list[int]:
        """``[lowest, highest]`` reachable total."""
        return [self.reachable[0], self.reachable[-1]]


def missing_component(
    system: str,
    name: str,
    points: Iterable[Any],
    why: str,
    source: str,
    flags: set[str],
    item: str | None = None,
) -> Component:
    """A component whose input is missing: every point value it can take (SCORING.md 0.2).

    Adds the flag ``INCOMPLETE_<ITEM>_MISSING`` (``item`` defaults to ``name``: the
    missing input, e.g. ``kps`` for the general-condition item); never imputes.
    """
    flags.add(f"INCOMPLETE_{(item or name).upper()}_MISSING")
    opts = tuple(sorted({int(p) for p in points}))
    return Component(system, name, opts, None, f"{why}: any of {list(opts)}", source)
