"""SINS, the Spinal Instability Neoplastic Score (Fisher 2010), as pure functions.

Six items (location, pain, bone lesion, alignment, collapse, posterolateral involvement),
total 0-18, bands 0-6 stable / 7-12 potentially unstable / 13-18 unstable. Missing items
are never imputed: their point sets are enumerated (SCORING.md 0.2). Engine conventions
(multi-level lesions, collapse of exactly 50%, undivided sacrum) follow SCORING.md 1.5 and
0.6 and raise their flags.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

from pipeline.scoring.base import Component, ScoreResult, ScoringError
from pipeline.scoring.intervals import common_band, reachable_sums
from pipeline.scoring.tables import Tables

SYSTEM = "sins"
THORACIC = tuple(f"T{i}" for i in range(1, 13))
SACRUM = "sacrum"
_VERSE = {25: "L6", 26: SACRUM, 28: "T13"}


@dataclass(frozen=True)
class SinsInput:
    """The SINS findings of one lesion (vocabulary of ``scoring_cases.json``).

    ``levels`` lists every vertebra the lesion involves (level names or VerSe numbers);
    ``collapse_pct`` / ``body_involvement_pct`` may replace ``collapse`` (measured
    percentages); ``lytic_pct`` / ``blastic_pct`` (shares of the lesion) may replace
    ``lesion``; ``costovertebral_involved`` is True when a costovertebral joint is part
    of the posterolateral finding.
    """

    levels: tuple[str | int, ...] | None = None
    pain: str | None = None
    lesion: str | None = None
    alignment: str | None = None
    collapse: str | None = None
    posterolateral: str | None = None
    collapse_pct: float | None = None
    body_involvement_pct: float | None = None
    lytic_pct: float | None = None
    blastic_pct: float | None = None
    costovertebral_involved: bool | None = None


def normalise_level(level: str | int) -> str:
    """Level name in SINS vocabulary: ``C0``..``S5``, ``sacrum``, ``T13``, ``L6``, ``Co<n>``.

    Raises ``ScoringError(LEVEL_NOT_IN_SINS)`` for anything else.
    """
    if isinstance(level, bool):
        raise ScoringError("LEVEL_NOT_IN_SINS", f"{level!r} is not a vertebra level")
    if isinstance(level, int):
        from pipeline.labels import is_level, level_name

        if level in _VERSE:
            return _VERSE[level]
        if is_level(level):
            return level_name(level)
        raise ScoringError("LEVEL_NOT_IN_SINS", f"VerSe label {level} is not a vertebra")
    text = str(level).strip()
    # "C0 (occiput)": the vocabulary's own gloss in parentheses
    low = re.sub(r"\s*\(.*\)\s*$", "", text).strip().lower() or text.lower()
    low = re.sub(r"\s+", "_", low)
    if low in ("occiput", "c0", "skull_base", "occiput_c0"):
        return "C0"
    if low in ("sacrum", "s", "sacral"):
        return SACRUM
    if low in ("coccyx", "co", "coccygeal") or re.fullmatch(r"co\d", low):
        return "Co" + (low[2:] or "")
    m = re.fullmatch(r"([ctls])(\d{1,2})", low)
    if m:
        region, num = m.group(1).upper(), int(m.group(2))
        limits = {"C": 7, "T": 13, "L": 6, "S": 5}
        if 1 <= num <= limits[region]:
            return f"{region}{num}"
    raise ScoringError("LEVEL_NOT_IN_SINS", f"{text!r} is not a level scored by SINS")


# Ordered SINS levels for range notation ("C7-T2", "T9/T10"); transitional levels excluded.
ORDERED_LEVELS: tuple[str, ...] = (
    *(f"C{i}" for i in range(0, 8)),
    *THORACIC,
    *(f"L{i}" for i in range(1, 6)),
    *(f"S{i}" for i in range(1, 6)),
)


def expand_levels(levels: tuple[str | int, ...] | None) -> tuple[str, ...]:
    """Normalised, de-duplicated levels; ``"T10-T12"`` / ``"T9/T10"`` expand to each vertebra.

    SCORING.md 1.2 writes ranges inclusive at both ends ("C7-T2" includes C7, T1, T2). A
    range with a transitional end (T13, L6) is refused like the level itself; ends outside
    the ordered table (sacrum, coccyx) are kept as given, so their own rules apply.
    """
    out: list[str] = []
    for lv in levels or ():
        parts = re.split(r"\s*[-/\u2013]\s*", lv.strip()) if isinstance(lv, str) else [lv]
        if len(parts) != 2 or not all(parts):
            out.append(normalise_level(lv))
            continue
        a, b = normalise_level(parts[0]), normalise_level(parts[1])
        if a in ORDERED_LEVELS and b in ORDERED_LEVELS:
            i, j = sorted((ORDERED_LEVELS.index(a), ORDERED_LEVELS.index(b)))
            out.extend(ORDERED_LEVELS[i : j + 1])
        else:
            out.extend((a, b))
    return tuple(dict.fromkeys(out))


def _level_class(level: str, tables: Tables) -> tuple[str, int] | None:
    for cls, row in tables.raw["sins"]["location"].items():
        if level in row["levels"]:
            return str(cls), int(row["points"])
    return None


def location_options(levels: tuple[str, ...], tables: Tables) -> dict[str, tuple[int, ...]]:
    """Per-level location points (several for the undivided sacrum label)."""
    loc = tables.raw["sins"]["location"]
    out: dict[str, tuple[int, ...]] = {}
    for lv in levels:
        if lv in ("T13", "L6"):
            raise ScoringError(
                "TRANSITIONAL_LEVEL_UNCONFIRMED",
                f"{lv} is a transitional level; SINS location is refused until the numbering "
                "is confirmed (which vertebrae form T11-L1 and L5-S1)",
            )
        if lv == SACRUM:
            out[lv] = (int(loc["rigid"]["points"]), int(loc["junctional"]["points"]))
            continue
        cls = _level_class(lv, tables)
        if cls is None:
            raise ScoringError("LEVEL_NOT_IN_SINS", f"{lv} is outside the SINS location table")
        out[lv] = (cls[1],)
    return out


def _component(name: str, value: str | None, table: dict, rule: str | None = None) -> Component:
    if value is None:
        opts = tuple(sorted({int(r["points"]) for r in table.values()}))
        src = next(iter(table.values()))["source"]
        return Component(SYSTEM, name, opts, None, f"{name} missing: any of {list(opts)}", src)
    if value not in table:
        raise ScoringError(
            "INVALID_VALUE", f"sins.{name} must be one of {list(table)}, got {value!r}"
        )
    row = table[value]
    return Component(
        SYSTEM,
        name,
        (int(row["points"]),),
        value,
        rule or f"{name} {value} -> {row['points']}",
        row["source"],
    )


def _check_pct(name: str, value: float | None) -> None:
    if value is not None and not 0 <= value <= 100:
        raise ScoringError("INVALID_VALUE", f"sins.{name} must lie in 0-100, got {value}")


def _collapse(inp: SinsInput, tables: Tables, flags: set[str]) -> Component:
    """Collapse item from the category and/or the measured percentages (SCORING.md 1.5)."""
    table = tables.raw["sins"]["collapse"]
    conv_src = tables.convention_source("sins_collapse_at_50")
    floor = float(tables.convention("sins_collapse_noise_floor_pct"))
    inv_gt = float(tables.convention("sins_body_involvement_gt_pct"))
    pct, inv, cat = inp.collapse_pct, inp.body_involvement_pct, inp.collapse
    _check_pct("collapse_pct", pct)
    _check_pct("body_involvement_pct", inv)
    if cat is not None and cat not in table:
        raise ScoringError(
            "INVALID_VALUE", f"sins.collapse must be one of {list(table)}, got {cat!r}"
        )

    # What the measurements say: a set of admissible categories.
    measured: set[str] = set(table)
    at_50 = False
    if pct is not None:
        if pct > 50:
            measured = {"gt50"}
        elif pct == 50:
            at_50 = True
            measured = {"gt50", "lt50"}
        elif pct > floor:
            measured = {"lt50"}
        else:
            measured = {"no_collapse_gt50_involved", "none"}
    if inv is not None:
        involved = "no_collapse_gt50_involved" if inv > inv_gt else "none"
        measured -= {"no_collapse_gt50_involved", "none"} - {involved}

    if cat is not None:
        if cat not in measured:
            raise ScoringError(
                "CONTRADICTION_COLLAPSE",
                f"sins.collapse {cat!r} contradicts the measurements "
                f"(collapse_pct={pct}, body_involvement_pct={inv})",
            )
        if at_50:
            flags.add("COLLAPSE_AT_50_BOUNDARY")
        return _component("collapse", cat, table)
    if at_50:
        chosen = str(tables.convention("sins_collapse_at_50"))
        flags.add("COLLAPSE_AT_50_BOUNDARY")
        row = table[chosen]
        return Component(
            SYSTEM,
            "collapse",
            (int(row["points"]),),
            chosen,
            f"collapse exactly 50% scored as '{chosen}' by engine convention -> {row['points']}",
            conv_src,
        )
    if len(measured) == 1:
        (chosen,) = measured
        row = table[chosen]
        how = f"collapse_pct={pct}" if pct is not None else ""
        if chosen in ("none", "no_collapse_gt50_involved"):
            how += f"{', ' if how else ''}body_involvement_pct={inv} (>{inv_gt:g}% counts)"
        return Component(
            SYSTEM,
            "collapse",
            (int(row["points"]),),
            chosen,
            f"collapse {chosen} ({how}) -> {row['points']}",
            row["source"],
        )
    flags.add("INCOMPLETE_COLLAPSE_MISSING")
    opts = tuple(sorted({int(table[c]["points"]) for c in measured}))
    return Component(
        SYSTEM,
        "collapse",
        opts,
        None,
        f"collapse undetermined: one of {sorted(measured)}",
        table["none"]["source"],
    )


def _lesion(inp: SinsInput, tables: Tables) -> Component:
    table = tables.raw["sins"]["lesion"]
    if inp.lesion is not None or inp.lytic_pct is None or inp.blastic_pct is None:
        return _component("lesion", inp.lesion, table)
    _check_pct("lytic_pct", inp.lytic_pct)
    _check_pct("blastic_pct", inp.blastic_pct)
    share = float(tables.convention("sins_mixed_min_share_pct"))
    lyt, bla = inp.lytic_pct, inp.blastic_pct
    if lyt > share and bla > share:
        cat = "mixed"
    else:
        cat = "lytic" if lyt >= bla else "blastic"
    rule = f"lesion {cat} (lytic {lyt:g}%, blastic {bla:g}%; mixed when both > {share:g}%, engine parameter)"
    return _component("lesion", cat, table, rule=rule + f" -> {table[cat]['points']}")


def score_sins(inp: SinsInput, tables: Tables) -> ScoreResult:
    """Score one lesion; raises ``ScoringError`` for undefined levels or contradictions."""
    cfg = tables.raw["sins"]
    flags: set[str] = set()
    comps: list[Component] = []

    levels = expand_levels(inp.levels)
    per_level: dict[str, tuple[int, ...]] = {}
    if levels:
        per_level = location_options(levels, tables)
        if SACRUM in per_level:
            flags.add("SACRUM_SEGMENT_UNRESOLVED")
        rule_name = str(tables.convention("sins_multi_level_location"))
        pick = max if rule_name == "max" else min
        combos = list(itertools.product(*per_level.values()))
        opts = tuple(sorted({pick(c) for c in combos}))
        if len(levels) > 1 and any(max(c) != min(c) for c in combos):
            flags.add(f"MULTI_LEVEL_LOCATION_CONVENTION_{rule_name.upper()}")
            src = tables.convention_source("sins_multi_level_location")
            rule = f"location: {rule_name} over levels {dict((k, list(v)) for k, v in per_level.items())}"
        else:
            src = tables.raw["sins"]["location"]["junctional"]["source"]
            parts = []
            for lv in levels:
                cls = _level_class(lv, tables)
                parts.append(
                    f"{lv} {cls[0] if cls else 'sacrum (S1 junctional 3 or S2-S5 rigid 0)'}"
                )
            rule = "location: " + ", ".join(parts)
        rule += f" -> {list(opts) if len(opts) > 1 else opts[0]}"
        comps.append(Component(SYSTEM, "location", opts, "+".join(levels), rule, src))
    else:
        flags.add("INCOMPLETE_LOCATION_MISSING")
        opts = tuple(sorted({int(r["points"]) for r in cfg["location"].values()}))
        comps.append(
            Component(
                SYSTEM,
                "location",
                opts,
                None,
                f"location missing: any of {list(opts)}",
                "fisher2010",
            )
        )

    comps.append(_component("pain", inp.pain, cfg["pain"]))
    comps.append(_lesion(inp, tables))
    comps.append(_component("alignment", inp.alignment, cfg["alignment"]))
    comps.append(_collapse(inp, tables, flags))
    comps.append(_component("posterolateral", inp.posterolateral, cfg["posterolateral"]))

    if inp.costovertebral_involved and levels and not any(lv in THORACIC for lv in levels):
        raise ScoringError(
            "CONTRADICTION_CV_JOINT_LEVEL",
            f"costovertebral joint involvement reported at {'+'.join(levels)}; "
            "costovertebral joints exist only at T1-T12",
        )
    for c in comps:
        if c.value is None and not c.known and c.name not in ("location", "collapse"):
            flags.add(f"INCOMPLETE_{c.name.upper()}_MISSING")

    totals = reachable_sums([c.options for c in comps])
    band = common_band(totals, cfg["bands"])
    return ScoreResult(
        SYSTEM,
        comps,
        totals,
        band["name"] if band else None,
        flags,
        extra={
            "location_per_level": {k: list(v) if len(v) > 1 else v[0] for k, v in per_level.items()}
        },
    )


def category_of(total: int, tables: Tables) -> str:
    """SINS category of a known total (``stable``/``potentially_unstable``/``unstable``)."""
    from pipeline.scoring.intervals import band_of

    if not 0 <= total <= 18:
        raise ScoringError("INVALID_VALUE", f"a SINS total lies in 0-18, got {total}")
    return str(band_of(total, tables.raw["sins"]["bands"])["name"])
