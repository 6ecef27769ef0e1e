"""Performance status and neurology: KPS, ECOG, Frankel and ASIA (SCORING.md 7).

Conversions happen only when the caller names a mapping (KPS<->ECOG: A, B or C) or gives
ASIA instead of Frankel, and always raise a flag (SCORING.md 0.4).
"""

from __future__ import annotations

from pipeline.scoring.base import ScoringError
from pipeline.scoring.tables import Tables

KPS_STEPS: tuple[int, ...] = (100, 90, 80, 70, 60, 50, 40, 30, 20, 10, 0)
GRADES_FRANKEL: tuple[str, ...] = ("A", "B", "C", "D", "E")


def check_kps(kps: int, *, allow_zero: bool = False) -> int:
    """Validate a KPS for scoring: a multiple of 10 in 10-100 (0 only for conversion)."""
    lo = 0 if allow_zero else 10
    if isinstance(kps, bool) or not isinstance(kps, int) or kps % 10 or not lo <= kps <= 100:
        raise ScoringError("KPS_INVALID", f"KPS must be a multiple of 10 in {lo}-100, got {kps!r}")
    return kps


def check_ecog(ecog: int) -> int:
    """Validate an ECOG grade for scoring (0-4; 5 = dead is not a valid input)."""
    if isinstance(ecog, bool) or not isinstance(ecog, int) or not 0 <= ecog <= 4:
        raise ScoringError("ECOG_INVALID", f"ECOG must be an integer 0-4, got {ecog!r}")
    return ecog


def check_mapping(mapping: str, tables: Tables) -> str:
    """Validate the name of a KPS<->ECOG mapping (A, B or C)."""
    m = str(mapping).strip().upper()
    if m not in tables.raw["performance"]["kps_to_ecog"]:
        raise ScoringError("INVALID_VALUE", f"ecog_mapping must be A, B or C, got {mapping!r}")
    return m


def kps_to_ecog(kps: int, mapping: str, tables: Tables) -> int:
    """ECOG for a KPS under a named mapping (SCORING.md 7.3)."""
    check_kps(kps, allow_zero=True)
    values = tables.raw["performance"]["kps_to_ecog"][check_mapping(mapping, tables)]["values"]
    return int(values[KPS_STEPS.index(kps)])


def ecog_to_kps(ecog: int, mapping: str, tables: Tables) -> tuple[int, ...]:
    """Every KPS (>= 10) that the named mapping sends to ``ecog`` (ascending)."""
    check_ecog(ecog)
    values = tables.raw["performance"]["kps_to_ecog"][check_mapping(mapping, tables)]["values"]
    return tuple(sorted(k for k, e in zip(KPS_STEPS, values, strict=True) if e == ecog and k > 0))


def check_frankel(grade: str) -> str:
    """Validate a Frankel (or ASIA) letter A-E."""
    g = str(grade).strip().upper()
    if g not in GRADES_FRANKEL:
        raise ScoringError("INVALID_VALUE", f"Frankel/ASIA grade must be A-E, got {grade!r}")
    return g


def frankel_from_asia(asia: str, tables: Tables) -> str:
    """Letter-for-letter ASIA -> Frankel approximation (caller flags FRANKEL_FROM_ASIA)."""
    return str(tables.raw["performance"]["asia_to_frankel"][check_frankel(asia)]["frankel"])


def ambulation_contradicts(frankel: str, ambulatory: bool, tables: Tables) -> bool:
    """True when independent ambulation is claimed with a Frankel grade that excludes it."""
    return bool(ambulatory) and check_frankel(frankel) in tables.convention(
        "neuro_no_ambulation_frankel"
    )
