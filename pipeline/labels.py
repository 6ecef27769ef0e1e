"""Shared label codes: VerSe vertebra numbers, structure codes, vertebra-part codes.

VerSe numbering: 1-7 C1-C7, 8-19 T1-T12, 20-24 L1-L5, 25 L6, 26 sacrum, 28 T13.
"""

from __future__ import annotations

from pipeline.errors import InputError

_NAMES: dict[int, str] = {
    **{i: f"C{i}" for i in range(1, 8)},
    **{7 + i: f"T{i}" for i in range(1, 13)},
    **{19 + i: f"L{i}" for i in range(1, 7)},
    26: "S",
    28: "T13",
}
_NUMBERS: dict[str, int] = {v: k for k, v in _NAMES.items()}
_NUMBERS["S1"] = 26
_NUMBERS["SACRUM"] = 26

#: VerSe number of the sacrum (one label for all its segments)
SACRUM = 26

# Column order from head to feet (T13 sits between T12 and L1).
CRANIOCAUDAL_ORDER: tuple[int, ...] = (*range(1, 20), 28, *range(20, 27))

# Structure label map codes.
SAC = 1  # thecal sac / canal CSF
CORD = 2
EPIDURAL = 3
LYTIC = 4
BLASTIC = 5
DISC = 6
STRUCTURE_NAMES: dict[int, str] = {
    SAC: "thecal_sac",
    CORD: "spinal_cord",
    EPIDURAL: "epidural_tumour",
    LYTIC: "lesion_lytic",
    BLASTIC: "lesion_blastic",
    DISC: "disc",
}

# Vertebra part label map codes.
BODY = 1
PEDICLE_L = 2
PEDICLE_R = 3
POSTERIOR = 4
PART_NAMES: dict[int, str] = {
    BODY: "body",
    PEDICLE_L: "pedicle_left",
    PEDICLE_R: "pedicle_right",
    POSTERIOR: "posterior_elements",
}


def level_name(number: int) -> str:
    """VerSe number to level name (``20`` -> ``"L1"``); raises ``InputError`` if unknown."""
    try:
        return _NAMES[int(number)]
    except KeyError as exc:
        raise InputError("UNKNOWN_LEVEL", f"{number} is not a VerSe vertebra number") from exc


def level_number(name: str) -> int:
    """Level name to VerSe number (``"T9"`` -> ``16``; ``"S"``/``"S1"`` -> 26)."""
    try:
        return _NUMBERS[name.strip().upper()]
    except KeyError as exc:
        raise InputError("UNKNOWN_LEVEL", f"{name!r} is not a vertebra level name") from exc


def is_level(number: int) -> bool:
    """Whether ``number`` is a valid VerSe vertebra number."""
    return int(number) in _NAMES


#: File stems of spinemet's own label trio on an image grid (``spinemet run`` writes them,
#: the ``labels`` backend reads them back); the first two are required.
NATIVE_LABELS = ("vertebrae", "structures", "parts")
