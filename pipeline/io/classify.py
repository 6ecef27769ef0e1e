"""Classification of a series: plane, MR weighting, CT kernel class, localizer/derived flags.

Every decision appends a line to ``Classification.evidence`` saying which tag said what,
so a wrong pick can be traced to the header that caused it.
"""

from __future__ import annotations

import re
from typing import Any

from pipeline.io.geometry import plane_of
from pipeline.io.model import Classification, Series

# Text patterns, matched case-insensitively on SeriesDescription / ProtocolName /
# SequenceName. Order matters: the first weighting whose pattern matches wins.
TEXT_WEIGHTING: list[tuple[str, str]] = [
    ("STIR", r"stir|tirm|\bt2[ _-]?tir|short[ _-]?tau"),
    ("FLAIR", r"flair|\bdark[ _-]?fluid"),
    ("DWI", r"\bdwi\b|diff|\badc\b|trace|ep2d_diff|resolve"),
    ("T2STAR", r"t2\*|t2[ _-]?star|\bmedic\b|\bmerge\b|\bswi\b"),
    ("T2", r"t2|\bt2w|\bhaste\b|\bssfse\b"),
    ("T1", r"t1|\bt1w|\bmprage\b|\bvibe\b|\blava\b"),
    ("PD", r"\bpd\b|\bpdw|proton[ _-]?dens"),
]
FAT_SAT = (
    r"\bfs\b|fat[ _-]?sat|\bspair\b|\bspir\b|\bfatsat|_fs\b|[ _-]fs[ _-]|dixon[ _-]?w(ater)?\b"
)


def _text(h: dict[str, Any]) -> str:
    return " ".join(
        str(h.get(k) or "") for k in ("series_description", "protocol_name", "sequence_name")
    ).lower()


def mr_weighting(h: dict[str, Any]) -> tuple[str, bool, list[str]]:
    """MR weighting (T1, T2, STIR, PD, FLAIR, DWI, T2STAR or other), fat-sat flag, evidence.

    Text in the series description / protocol / sequence name is trusted first
    (sites name their sequences); timing (TR/TE/TI) decides when the text is silent and
    is recorded as a cross-check when it disagrees.
    """
    ev: list[str] = []
    text = _text(h)
    by_text = None
    for name, pat in TEXT_WEIGHTING:
        if re.search(pat, text):
            by_text = name
            ev.append(f"text '{text.strip()}' matches {name}")
            break
    if by_text is None and h.get("acquisition_contrast"):
        ac = str(h["acquisition_contrast"]).upper()
        mapping = {
            "T1": "T1",
            "T2": "T2",
            "PROTON_DENSITY": "PD",
            "DIFFUSION": "DWI",
            "FLUID_ATTENUATED": "FLAIR",
            "STIR": "STIR",
        }
        if ac in mapping:
            by_text = mapping[ac]
            ev.append(f"AcquisitionContrast {ac}")
    tr, te, ti = h.get("repetition_time"), h.get("echo_time"), h.get("inversion_time")
    scanning = str(h.get("scanning_sequence") or "").upper()
    by_timing = None
    if ti and 80 <= ti <= 300 and ("IR" in scanning or not scanning):
        by_timing = "STIR"
    elif ti and ti >= 1500 and te and te >= 60:
        by_timing = "FLAIR"
    elif tr and te:
        if tr < 1000 and te < 30:
            by_timing = "T1"
        elif tr >= 1500 and te >= 60:
            by_timing = "T2"
        elif tr >= 1500 and te < 40:
            by_timing = "PD"
    if tr or te or ti:
        ev.append(
            f"timing TR={tr} TE={te} TI={ti} ScanningSequence={scanning or '-'}"
            + (f" suggests {by_timing}" if by_timing else "")
        )
    if by_text and by_timing and by_text != by_timing:
        ev.append(f"text says {by_text}, timing says {by_timing}: text kept")
    weighting = by_text or by_timing or "other"
    fat = bool(re.search(FAT_SAT, text)) or "FS" in str(h.get("scan_options") or "").upper().split(
        "\\"
    )
    if fat:
        ev.append("fat suppression (description or ScanOptions FS)")
    return weighting, fat, ev


def kernel_class(kernel: str, description: str, classes: dict[str, list[str]]) -> str:
    """Reconstruction kernel class (soft / bone / lung / other) from the kernel name."""
    for text in (kernel, description):
        t = (text or "").lower()
        if not t:
            continue
        for name, patterns in classes.items():
            if any(re.search(p, t) for p in patterns):
                return name
    return "other"


def classify(series: Series, cfg: dict[str, Any]) -> Classification:
    """Classify one series from its header and (sorted) frame geometry."""
    h = series.header
    ev: list[str] = []
    f0 = series.frames[0] if series.frames else None
    plane, obl = "unknown", None
    if f0 is not None and f0.orientation is not None:
        plane, obl = plane_of(f0.orientation, cfg.get("oblique_threshold_deg", 30.0))
        ev.append(f"orientation cosines -> {plane} ({obl:.1f} deg from the nearest axis)")
    itype = [t.upper() for t in str(h.get("image_type") or "").split("\\") if t]
    if f0 is not None and f0.image_type:
        itype = list(f0.image_type)
    desc = str(h.get("series_description") or "")
    localizer = "LOCALIZER" in itype or bool(
        re.search(r"localizer|scout|survey|topogram|\bloc\b|3[ -]?plane|pilot", desc.lower())
    )
    derived = bool(itype) and itype[0] == "DERIVED"
    secondary = "SECONDARY" in itype or h.get("sop_class_uid", "").startswith(
        "1.2.840.10008.5.1.4.1.1.7"
    )
    for flag, on in (("localizer", localizer), ("derived", derived), ("secondary", secondary)):
        if on:
            ev.append(f"{flag}: ImageType {'/'.join(itype) or '-'} description '{desc}'")
    c = Classification(
        modality=series.modality,
        plane=plane,
        obliquity_deg=obl,
        localizer=localizer,
        derived=derived,
        secondary=secondary,
        evidence=ev,
    )
    if series.modality == "MR":
        c.weighting, c.fat_sat, wev = mr_weighting(h)
        c.evidence.extend(wev)
    elif series.modality == "CT":
        c.kernel_class = kernel_class(
            str(h.get("kernel") or ""), desc, cfg.get("kernel_classes", {})
        )
        c.evidence.append(f"kernel '{h.get('kernel') or '-'}' -> {c.kernel_class}")
    return c
