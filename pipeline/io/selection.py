"""Rule-based series selection (``configs/series_selection.yaml``).

A role (``ct_axial``, ``mr_sagittal_t2``, ...) has hard requirements and an ordered list
of preferences. Series failing a requirement, or whose geometry checks found an error,
are rejected with the reason; the others are ranked and the best is picked. Every
series gets one reason line per role, so ``spinemet inspect`` can say why.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from pipeline.errors import ConfigError
from pipeline.io.model import Selection, Series, Study
from pipeline.paths import config_dir, load_yaml

RULES_FILE = "series_selection.yaml"


@lru_cache(maxsize=4)
def _load_rules_cached(path: str) -> dict[str, Any]:
    doc = load_yaml(path)
    if not isinstance(doc, dict) or not isinstance(doc.get("roles"), dict):
        raise ConfigError("CONFIG_INVALID", f"{path}: a mapping with 'roles' is required")
    return doc


def load_rules(rules: dict[str, Any] | str | None = None) -> dict[str, Any]:
    """The selection rules: a dict as given, a YAML path, or the project's default file."""
    if isinstance(rules, dict):
        return rules
    path = str(rules) if rules is not None else str(config_dir() / RULES_FILE)
    return _load_rules_cached(path)


def _extent(s: Series) -> float:
    if s.slice_spacing is None:
        return 0.0
    return s.slice_spacing * max(s.n_frames - 1, 0)


def _pixel(s: Series) -> float:
    f0 = s.frames[0] if s.frames else None
    if f0 is None or f0.pixel_spacing is None:
        return float("inf")
    return f0.pixel_spacing[0] * f0.pixel_spacing[1]


REQUIRE_KEYS = {"modality", "plane", "weighting", "stir_or_fat_sat", "not_localizer", "not_derived"}


def rejection(series: Series, req: dict[str, Any]) -> str | None:
    """Why ``series`` fails the role's requirements, or ``None`` when it passes."""
    c = series.classification
    if c is None:
        return "not classified"
    if series.errors:
        return "geometry: " + ", ".join(f.code for f in series.errors)
    if "modality" in req and c.modality != req["modality"]:
        return f"modality {c.modality}, not {req['modality']}"
    if req.get("not_localizer") and c.localizer:
        return "localizer"
    if req.get("not_derived") and c.derived:
        return "derived image"
    if "plane" in req and c.plane not in req["plane"]:
        return f"plane {c.plane}, not {'/'.join(req['plane'])}"
    if "weighting" in req and c.weighting not in req["weighting"]:
        return f"weighting {c.weighting}, not {'/'.join(req['weighting'])}"
    if req.get("stir_or_fat_sat") and not (c.weighting == "STIR" or c.fat_sat):
        return "neither STIR nor fat-suppressed"
    return None


def _sort_key(series: Series, prefer: list[Any]) -> tuple[Any, ...]:
    c = series.classification
    assert c is not None
    key: list[Any] = []
    for p in prefer:
        name, arg = next(iter(p.items())) if isinstance(p, dict) else (p, None)
        if name == "not_localizer":
            key.append(c.localizer)
        elif name == "not_derived":
            key.append(c.derived)
        elif name == "not_secondary":
            key.append(c.secondary)
        elif name == "not_tilted":
            key.append(any(f.code == "GANTRY_TILT" for f in series.findings))
        elif name == "kernel":
            order = list(arg or [])
            key.append(order.index(c.kernel_class) if c.kernel_class in order else len(order))
        elif name == "weighting":
            order = list(arg or [])
            key.append(order.index(c.weighting) if c.weighting in order else len(order))
        elif name == "fat_sat":
            key.append(c.fat_sat != bool(arg))
        elif name == "thinnest":
            key.append(series.slice_spacing if series.slice_spacing is not None else float("inf"))
        elif name == "finest_pixels":
            key.append(_pixel(series))
        elif name == "coverage":
            key.append(-_extent(series))
        elif name == "most_slices":
            key.append(-series.n_frames)
        elif name == "least_oblique":
            key.append(c.obliquity_deg if c.obliquity_deg is not None else 90.0)
        elif name == "series_number":
            key.append(series.series_number if series.series_number is not None else 1 << 30)
        else:
            raise ConfigError("CONFIG_INVALID", f"unknown selection preference '{name}'")
    key.append(series.key)  # deterministic final tie-break
    return tuple(key)


def _describe(series: Series) -> str:
    c = series.classification
    bits = [series.modality, c.plane if c else "?"]
    if c and c.weighting:
        bits.append(c.weighting + (" FS" if c.fat_sat else ""))
    if c and c.kernel_class:
        bits.append(f"kernel {c.kernel_class}")
    if series.slice_spacing:
        bits.append(f"{series.slice_spacing:.2f} mm spacing")
    bits.append(f"{series.n_frames} slices")
    return ", ".join(bits)


def select_in_study(study: Study, rules: dict[str, Any] | str | None = None) -> Selection:
    """Pick the best series of one study for each role, with reasons."""
    doc = load_rules(rules)
    sel = Selection(study_uid=study.study_uid)
    for s in study.series:
        sel.reasons.setdefault(s.key, [])
    for role, spec in doc["roles"].items():
        req = dict(spec.get("require") or {})
        unknown = set(req) - REQUIRE_KEYS
        if unknown:
            raise ConfigError(
                "CONFIG_INVALID",
                f"role {role}: unknown requirement(s) {', '.join(sorted(unknown))} "
                f"(known: {', '.join(sorted(REQUIRE_KEYS))})",
            )
        prefer = list(spec.get("prefer") or [])
        passing = []
        for s in study.series:
            why = rejection(s, req)
            if why is None:
                passing.append(s)
            else:
                sel.reasons[s.key].append(f"{role}: rejected ({why})")
        if not passing:
            continue
        ranked = sorted(passing, key=lambda s: _sort_key(s, prefer))
        best = ranked[0]
        sel.picked[role] = best
        sel.ranked[role] = ranked
        sel.reasons[best.key].append(f"{role}: picked ({_describe(best)})")
        for other in ranked[1:]:
            sel.reasons[other.key].append(
                f"{role}: eligible, ranked below {best.key} by "
                + ", ".join(p if isinstance(p, str) else next(iter(p)) for p in prefer[:3])
            )
    return sel


def select_series(
    studies: list[Study] | Study, rules: dict[str, Any] | str | None = None
) -> Selection:
    """Select series by role from discovered studies.

    With several studies, the study whose selection fills the most roles wins (ties:
    more slices in the picked series, more loadable series, then the study key in sort
    order); see :func:`choose_study`.
    """
    if isinstance(studies, Study):
        return select_in_study(studies, rules)
    if not studies:
        return Selection()
    return choose_study(studies, rules)[1]


def choose_study(
    studies: list[Study], rules: dict[str, Any] | str | None = None
) -> tuple[Study, Selection]:
    """The study to process when a path holds several, and its selection."""
    scored = []
    for st in studies:
        sel = select_in_study(st, rules)
        n_ok = sum(s.loadable for s in st.series)
        n_picked_frames = sum(s.n_frames for s in sel.picked.values())
        scored.append(((-len(sel.picked), -n_picked_frames, -n_ok, st.study_uid), st, sel))
    scored.sort(key=lambda t: t[0])
    return scored[0][1], scored[0][2]
