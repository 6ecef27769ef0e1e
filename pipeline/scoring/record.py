"""One canonical patient record, parsed from the case-file ``inputs`` format.

The same fact (histology, visceral status, metastasis counts, Frankel, ...) may appear
in several per-score blocks of a case file; it is merged here into one value and
projected into every score, so that scores cannot disagree about a shared fact
(SCORING.md 0.1). Disagreeing copies are refused with a named ``CONTRADICTION_*`` code.

Input: a mapping in the case-file format (YAML/JSON object or one CSV row with dotted
column names such as ``sins.pain``). Unknown fields and wrong types are errors
(``UNKNOWN_FIELD``, ``INVALID_TYPE``, ``INVALID_VALUE``).
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from pipeline.scoring import histology as hist
from pipeline.scoring import performance as ps
from pipeline.scoring.base import ScoringError
from pipeline.scoring.bilsky import GRADES, EsccFeatures
from pipeline.scoring.sins import SACRUM, SinsInput, expand_levels
from pipeline.scoring.tables import Tables

# ---------------------------------------------------------------- field specification
# kinds: bool, int, num, str, levels, grades, int_list, str_list, enum:<a|b|c>
_BOOL, _INT, _NUM, _STR = "bool", "int", "num", "str"
SINS_ENUMS = ("pain", "lesion", "alignment", "collapse", "posterolateral")

BLOCKS: dict[str, dict[str, str]] = {
    "sins": {
        "levels": "levels",
        "pain": "sins_enum",
        "lesion": "sins_enum",
        "alignment": "sins_enum",
        "collapse": "sins_enum",
        "posterolateral": "sins_enum",
        "collapse_pct": _NUM,
        "body_involvement_pct": _NUM,
        "lytic_pct": _NUM,
        "blastic_pct": _NUM,
        "costovertebral_involved": _BOOL,
        "posterolateral_sites": "str_list",
        "level": _STR,
        "notes": _STR,
    },
    "escc_features": {
        "epidural_tumour": _BOOL,
        "thecal_sac_deformed": _BOOL,
        "cord_abutment": _BOOL,
        "cord_compressed": _BOOL,
        "csf_visible_around_cord": _BOOL,
        "level": _STR,
        "notes": _STR,
    },
    "noms": {
        "histology": _STR,
        "escc": "grades",
        "sins": _INT,
        "sins_category": "enum:stable|potentially_unstable|unstable",
        "able_to_tolerate_surgery": _BOOL,
        "radiosensitivity": _STR,
        "myelopathy": _BOOL,
        "notes": _STR,
    },
    "tokuhashi": {
        "kps": "kps",
        "ecog": _INT,
        "ecog_mapping": "enum:A|B|C",
        "extraspinal_bone_mets": _INT,
        "vertebral_body_mets": _INT,
        "visceral_major_organs": "enum:none|removable|unremovable",
        "primary": _STR,
        "frankel": "enum:A|B|C|D|E",
        "asia": "enum:A|B|C|D|E",
        "notes": _STR,
    },
    "tomita": {
        "histology": _STR,
        "growth": "enum:slow|moderate|rapid",
        "visceral": "enum:none|treatable|untreatable",
        "bone": "enum:solitary|multiple",
        "notes": _STR,
    },
    "modified_bauer": {
        "primary": _STR,
        "visceral_mets": _BOOL,
        "skeletal_mets_total": _INT,
        "notes": _STR,
    },
}

SCALARS: dict[str, str] = {
    "id": _STR,
    "case_id": _STR,
    "notes": _STR,
    "level": _STR,
    "histology": _STR,
    "primary": _STR,
    "radiosensitivity": _STR,
    "kps": "kps",
    "ecog": _INT,
    "ecog_mapping": "enum:A|B|C",
    "kps_values": "kps_list",
    "frankel": "enum:A|B|C|D|E",
    "asia": "enum:A|B|C|D|E",
    "ambulatory_independent": _BOOL,
    "albumin_g_dl": _NUM,
    "albumin_g_l": _NUM,
    "albumin_as_entered": _STR,
    "albumin_ge_3_5_g_dl": _BOOL,
    "modified_bauer_ge3": _BOOL,
    "visceral_mets": _BOOL,
    "tokuhashi_visceral": "enum:none|removable|unremovable",
    "tomita_visceral": "enum:none|treatable|untreatable",
    "vertebral_body_mets": _INT,
    "extraspinal_bone_mets": _INT,
    "skeletal_mets_total": _INT,
    "able_to_tolerate_surgery": _BOOL,
    "myelopathy": _BOOL,
    "pain": _STR,
}

# where each canonical fact may be entered
_VISCERAL_CANON = {
    "none": "none",
    "removable": "treatable",
    "unremovable": "untreatable",
    "treatable": "treatable",
    "untreatable": "untreatable",
}


def _type_error(path: str, kind: str, value: Any) -> ScoringError:
    return ScoringError(
        "INVALID_TYPE", f"{path} must be {kind}, got {type(value).__name__} {value!r}"
    )


def _check_value(path: str, kind: str, value: Any) -> Any:
    """Validate one value against its kind; returns the normalised value."""
    if value is None:
        return None
    if isinstance(value, float) and not math.isfinite(value):
        raise ScoringError("INVALID_VALUE", f"{path} must be a finite number, got {value!r}")
    if kind == "kps":
        # a number that is not a whole multiple of 10 is an invalid KPS (SCORING.md 4.4)
        if isinstance(value, float) and not value.is_integer():
            raise ScoringError("KPS_INVALID", f"{path}: KPS must be a multiple of 10, got {value}")
        return _check_value(path, _INT, value)
    if kind == _BOOL:
        if not isinstance(value, bool):
            raise _type_error(path, "true/false", value)
        return value
    if kind == _INT:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
            raise _type_error(path, "an integer", value)
        return int(value)
    if kind == _NUM:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _type_error(path, "a number", value)
        return float(value)
    if kind == _STR:
        if not isinstance(value, str):
            raise _type_error(path, "a string", value)
        return value
    if kind.startswith("enum:"):
        choices = kind[5:].split("|")
        if not isinstance(value, str):
            raise _type_error(path, f"one of {choices}", value)
        v = value.strip()
        v = v.upper() if choices[0].isupper() else v.lower()
        if v not in choices:
            raise ScoringError("INVALID_VALUE", f"{path} must be one of {choices}, got {value!r}")
        return v
    if kind == "sins_enum":
        # one finding, or a list of findings that must agree
        items = value if isinstance(value, list) else [value]
        if not items or not all(isinstance(x, str) for x in items):
            raise _type_error(path, "a SINS category string", value)
        if len(set(items)) > 1:
            field = path.rsplit(".", 1)[-1]
            code = (
                "CONTRADICTION_COLLAPSE"
                if field == "collapse"
                else f"CONTRADICTION_SINS_{field.upper()}"
            )
            raise ScoringError(code, f"{path} reports incompatible findings {items}")
        return items[0]
    if kind == "levels":
        items = value if isinstance(value, list) else [value]
        for it in items:
            if isinstance(it, bool) or not isinstance(it, (str, int)):
                raise _type_error(path, "a list of level names", value)
        return tuple(items)
    if kind == "grades":
        items = value if isinstance(value, list) else [value]
        out = []
        for it in items:
            if isinstance(it, bool) or not isinstance(it, (str, int)):
                raise _type_error(path, 'an ESCC grade ("0".."3")', value)
            g = str(it).strip().lower()
            if g not in GRADES:
                raise ScoringError(
                    "INVALID_VALUE", f"{path} must be one of {list(GRADES)}, got {it!r}"
                )
            out.append(g)
        return tuple(out)
    if kind in ("int_list", "str_list", "kps_list"):
        if not isinstance(value, list):
            raise _type_error(path, "a list", value)
        sub = {"int_list": _INT, "str_list": _STR, "kps_list": "kps"}[kind]
        if any(v is None for v in value):
            raise _type_error(path, "a list without null items", value)
        return tuple(_check_value(f"{path}[]", sub, v) for v in value)
    raise AssertionError(kind)  # pragma: no cover


def _cv_flag(block: Mapping[str, Any]) -> bool | None:
    """Costovertebral involvement from the explicit flag or the list of posterolateral sites."""
    flag = block.get("costovertebral_involved")
    sites = block.get("posterolateral_sites") or ()
    in_sites = any("costovertebral" in hist.normalise_term(s) for s in sites)
    if flag is None and not sites:
        return None
    return bool(flag) or in_sites


def _either(a: bool | None, b: bool | None) -> bool | None:
    """True if either is True; None only when both are unknown."""
    if a is None and b is None:
        return None
    return bool(a) or bool(b)


# "<score>_<field>" at the top level: a per-score copy of a block field (e.g.
# "tomita_visceral", "mbauer_skeletal_mets_total"); copies must agree with the block.
_PREFIXES = {
    "modified_bauer": "modified_bauer",
    "mbauer": "modified_bauer",
    "tokuhashi": "tokuhashi",
    "tomita": "tomita",
    "noms": "noms",
    "sins": "sins",
}
_FIELD_ALIASES = {
    ("tokuhashi", "visceral"): "visceral_major_organs",
    ("modified_bauer", "visceral"): "visceral_mets",
    ("modified_bauer", "skeletal_mets"): "skeletal_mets_total",
    ("tokuhashi", "vertebral_mets"): "vertebral_body_mets",
    ("tomita", "primary"): "histology",
    ("modified_bauer", "histology"): "primary",
    ("tokuhashi", "histology"): "primary",
}


def _prefixed(key: str) -> tuple[str, str] | None:
    for pre in sorted(_PREFIXES, key=len, reverse=True):
        if key.startswith(pre + "_"):
            blk = _PREFIXES[pre]
            fld = key[len(pre) + 1 :]
            fld = _FIELD_ALIASES.get((blk, fld), fld)
            if fld in BLOCKS[blk] and fld != "notes":
                return blk, fld
    return None


_NEGATIVE = {"", "none", "no", "false", "absent", "not_involved"}


def _names_cv(value: Any) -> bool:
    """True when a free-text value (or any string inside a list/mapping) names a
    costovertebral joint."""
    if isinstance(value, str):
        term = hist.normalise_term(value)
        return "costovertebral" in term or "cv_joint" in term
    if isinstance(value, list):
        return any(_names_cv(x) for x in value)
    if isinstance(value, Mapping):
        return any(_names_cv(str(k)) or _names_cv(v) for k, v in value.items())
    return False


def _mentions_cv(key: str, value: Any) -> bool | None:
    """Costovertebral involvement stated under another name (SCORING.md 1.5).

    ``costovertebral*`` / ``cv_joint*`` keys (bool, side word, list, mapping) and any other
    key whose value names a costovertebral joint (``"structures": ["costovertebral
    joint"]``) are understood; None when the key is unrelated (an unknown field).
    """
    name = hist.normalise_term(key)
    if "costovertebral" in name or "cv_joint" in name:
        if isinstance(value, bool):
            return value
        if isinstance(value, str):
            return hist.normalise_term(value) not in _NEGATIVE
        if isinstance(value, list):
            return any(
                isinstance(x, str) and hist.normalise_term(x) not in _NEGATIVE for x in value
            )
        if isinstance(value, Mapping):
            return any(
                v is True or (isinstance(v, str) and hist.normalise_term(v) not in _NEGATIVE)
                for v in value.values()
            )
        return None
    return True if _names_cv(value) else None


_SIDES = ("bilateral", "unilateral", "none")


def _posterolateral_with_cv(value: Any) -> tuple[str | None, bool]:
    """``sins.posterolateral`` written together with its structure (``"unilateral
    costovertebral joint"``, ``{"side": "unilateral", "structure": "costovertebral_joint"}``):
    (side category or None when not stated, costovertebral named)."""
    words: list[str] = []
    stack = [value]
    while stack:
        x = stack.pop()
        if isinstance(x, str):
            words.append(hist.normalise_term(x))
        elif isinstance(x, list):
            stack.extend(x)
        elif isinstance(x, Mapping):
            stack.extend(x.values())
    found = {side for w in words for side in _SIDES[:2] if side in w.split("_")}
    side = found.pop() if len(found) == 1 else None
    if found:  # both sides named in one finding
        raise ScoringError(
            "CONTRADICTION_SINS_POSTEROLATERAL", f"sins.posterolateral {value!r} is both sides"
        )
    return side, _names_cv(value)


def validate(inputs: Mapping[str, Any], tables: Tables) -> dict[str, Any]:
    """Check names, types and vocabularies; returns a normalised copy (blocks as dicts)."""
    if not isinstance(inputs, Mapping):
        raise ScoringError("INVALID_TYPE", "the input must be a JSON/YAML object (mapping)")
    out: dict[str, Any] = {}
    unknown: list[str] = []
    for key, value in inputs.items():
        if key in BLOCKS:
            if value is None:
                continue
            if not isinstance(value, Mapping):
                raise _type_error(key, "an object", value)
            spec = BLOCKS[key]
            blk: dict[str, Any] = {}
            for k, v in value.items():
                if k.startswith("_"):
                    continue
                if key == "sins" and k == "posterolateral" and _names_cv(v):
                    side, cv = _posterolateral_with_cv(v)
                    blk[k] = side
                    blk["costovertebral_involved"] = bool(blk.get("costovertebral_involved")) or cv
                elif k in spec:
                    blk[k] = _check_value(f"{key}.{k}", spec[k], v)
                elif key == "sins" and _mentions_cv(k, v) is not None:
                    blk["costovertebral_involved"] = bool(
                        blk.get("costovertebral_involved")
                    ) or _mentions_cv(k, v)
                else:
                    unknown.append(f"{key}.{k}")
            out[key] = blk
        elif key in SCALARS:
            out[key] = _check_value(key, SCALARS[key], value)
        elif _prefixed(str(key)) is not None:
            blk_name, fld = _prefixed(str(key))  # type: ignore[misc]
            checked = _check_value(key, BLOCKS[blk_name][fld], value)
            out.setdefault("_copies", []).append((str(key), blk_name, fld, checked))
        elif _mentions_cv(str(key), value) is not None and (
            "costovertebral" in hist.normalise_term(str(key))
            or "cv_joint" in hist.normalise_term(str(key))
        ):
            # a case-level costovertebral finding belongs to the SINS lesion
            out["_cv"] = bool(out.get("_cv")) or bool(_mentions_cv(str(key), value))
        elif not str(key).startswith("_"):
            unknown.append(str(key))
    if unknown:
        raise ScoringError("UNKNOWN_FIELD", f"unknown input field(s): {', '.join(sorted(unknown))}")
    sins = out.get("sins")
    if sins:
        for k in SINS_ENUMS:
            v = sins.get(k)
            if v is not None and v not in tables.raw["sins"][k]:
                raise ScoringError(
                    "INVALID_VALUE",
                    f"sins.{k} must be one of {list(tables.raw['sins'][k])}, got {v!r}",
                )
    if out.get("pain") is not None and out["pain"] not in tables.raw["sins"]["pain"]:
        raise ScoringError(
            "INVALID_VALUE", f"pain must be one of {list(tables.raw['sins']['pain'])}"
        )
    return out


# ---------------------------------------------------------------- canonical record
@dataclass(frozen=True)
class PatientRecord:
    """Every fact once; ``sources`` says which input fields gave each fact."""

    histology: str | None = None
    radiosensitivity: str | None = None
    tomita_growth: str | None = None
    tomita_bone: str | None = None  # solitary / multiple, as entered
    kps: int | None = None
    ecog: int | None = None
    ecog_mapping: str | None = None
    frankel: str | None = None
    frankel_from_asia: bool = False
    ambulatory_independent: bool | None = None
    albumin_g_dl: float | None = None
    albumin_ge_3_5: bool | None = None
    mbauer_ge3: bool | None = None
    visceral: str | None = None  # none / treatable / untreatable / present
    vertebral_body_mets: int | None = None
    extraspinal_bone_mets: int | None = None
    skeletal_mets_total: int | None = None
    able_to_tolerate_surgery: bool | None = None
    myelopathy: bool | None = None
    sins: SinsInput | None = None
    escc_features: EsccFeatures | None = None
    escc_grades: tuple[str, ...] | None = None
    sins_total_given: int | None = None
    sins_category_given: str | None = None
    kps_values: tuple[int, ...] | None = None
    requested: frozenset[str] = frozenset()
    sources: dict[str, list[str]] = field(default_factory=dict)


class _Merger:
    """Collect the copies of each fact; record contradictions instead of raising at once."""

    def __init__(self) -> None:
        self.values: dict[str, list[tuple[str, Any]]] = {}
        self.errors: list[ScoringError] = []

    def add(self, fact: str, path: str, value: Any) -> None:
        if value is not None:
            self.values.setdefault(fact, []).append((path, value))

    def get(self, fact: str, code: str) -> Any:
        copies = self.values.get(fact, [])
        distinct = {json.dumps(v, sort_keys=True, default=str) for _, v in copies}
        if len(distinct) > 1:
            where = ", ".join(f"{p}={v!r}" for p, v in copies)
            self.errors.append(ScoringError(code, f"{fact} entered differently: {where}"))
            return None
        return copies[0][1] if copies else None

    def fail(self, code: str, message: str) -> None:
        self.errors.append(ScoringError(code, message))


def albumin_from_text(text: str) -> float:
    """``"35 g/L"`` -> 3.5 (g/dL); ``"3.5 g/dL"`` -> 3.5."""
    m = re.fullmatch(r"\s*([0-9]+(?:[.,][0-9]+)?)\s*(g\s*/\s*d\s*l|g\s*/\s*l)\s*", text, flags=re.I)
    if not m:
        raise ScoringError(
            "INVALID_VALUE",
            f"albumin_as_entered must read like '35 g/L' or '3.5 g/dL', got {text!r}",
        )
    value = float(m.group(1).replace(",", "."))
    return value if "d" in m.group(2).lower() else value / 10.0


def _merge_histology(m: _Merger, tables: Tables) -> str | None:
    """One histology from every copy: copies must name the same site, and at most one
    sub-type (``lung`` + ``nsclc`` -> ``nsclc``; ``breast`` + ``lung`` is a contradiction)."""
    copies = [(p, v, hist.canonical(v, tables)) for p, v in m.values.get("histology", [])]
    if not copies:
        return None

    def compatible(a: tuple[str, str, str | None], b: tuple[str, str, str | None]) -> bool:
        if hist.normalise_term(a[1]) == hist.normalise_term(b[1]):
            return True
        if a[2] is None or b[2] is None:
            return False
        return a[2] == b[2] or hist.broader(a[2], b[2], tables) or hist.broader(b[2], a[2], tables)

    if not all(compatible(a, b) for a in copies for b in copies):
        where = ", ".join(f"{p}={v!r}" for p, v, _ in copies)
        m.fail("CONTRADICTION_HISTOLOGY", f"histology entered differently: {where}")
        return None
    mapped = [c for _, _, c in copies if c is not None]
    narrowest = [c for c in mapped if not any(hist.broader(c, o, tables) for o in mapped)]
    if narrowest:
        return narrowest[0]
    return mapped[0] if mapped else str(copies[0][1])


def _merge_visceral(m: _Merger) -> str | None:
    copies = m.values.get("visceral", [])
    vals = {v for _, v in copies}
    if not vals:
        return None
    if "none" in vals and len(vals) > 1 or {"treatable", "untreatable"} <= vals:
        where = ", ".join(f"{p}={v!r}" for p, v in copies)
        m.fail("CONTRADICTION_VISCERAL", f"visceral metastasis status entered differently: {where}")
        return None
    specific = vals - {"present"}
    return specific.pop() if specific else "present"


def _n_vertebrae(levels: tuple[Any, ...]) -> int | None:
    try:
        names = set(expand_levels(levels))
    except ScoringError:
        return None
    sacral = {n for n in names if n == SACRUM or re.fullmatch(r"S\d", n)}
    return len(names - sacral) + (1 if sacral else 0)


def _merge_counts(
    m: _Merger, tomita_bone: str | None, sins_levels: tuple | None, solitary_total: int
) -> tuple[int | None, int | None, int | None]:
    v = m.get("vertebral_body_mets", "CONTRADICTION_SKELETAL_COUNT")
    e = m.get("extraspinal_bone_mets", "CONTRADICTION_SKELETAL_COUNT")
    t = m.get("skeletal_mets_total", "CONTRADICTION_SKELETAL_COUNT")
    bad: list[str] = []
    for name, n in (
        ("vertebral_body_mets", v),
        ("extraspinal_bone_mets", e),
        ("skeletal_mets_total", t),
    ):
        if n is not None and n < 0:
            raise ScoringError("INVALID_VALUE", f"{name} cannot be negative, got {n}")
    if v is not None and e is not None and t is not None and v + e != t:
        bad.append(f"vertebral {v} + extraspinal {e} != skeletal total {t}")
    elif t is not None and v is not None and e is None:
        e = t - v
        if e < 0:
            bad.append(f"vertebral {v} > skeletal total {t}")
    elif t is not None and e is not None and v is None:
        v = t - e
        if v < 1:
            bad.append(f"skeletal total {t} - extraspinal {e} leaves no spinal metastasis")
    elif t is None and v is not None and e is not None:
        t = v + e
    lower = max((v or 1) + (e or 0), 1)
    if tomita_bone == "solitary" and (
        (t is not None and t != solitary_total) or lower > solitary_total
    ):
        bad.append(
            f"Tomita bone 'solitary' but at least {lower if t is None else t} skeletal metastases"
        )
    if tomita_bone == "multiple" and t is not None and t <= solitary_total:
        bad.append(f"Tomita bone 'multiple' but skeletal total {t}")
    if sins_levels:
        nv = _n_vertebrae(sins_levels)
        if nv is not None and v is not None and nv > v:
            bad.append(f"the SINS lesion spans {nv} vertebrae but vertebral_body_mets = {v}")
    if bad:
        m.fail("CONTRADICTION_SKELETAL_COUNT", "; ".join(bad))
        return None, None, None
    if tomita_bone == "solitary" and t is None:
        t = solitary_total
    return v, e, t


def _sins_levels(
    sins_b: Mapping[str, Any] | None, case_level: str | None, m: _Merger
) -> tuple[Any, ...] | None:
    """The SINS lesion's levels: ``sins.levels``, else ``sins.level``, else the case ``level``.

    A level is never dropped silently (SCORING.md 0.2: location is only "missing" when no
    level was given anywhere). ``sins.level`` outside ``sins.levels`` is a contradiction.
    """
    if sins_b is None:
        return None
    levels, one = sins_b.get("levels"), sins_b.get("level")
    if one is not None and levels:
        try:
            inside = set(expand_levels((one,))) <= set(expand_levels(levels))
        except ScoringError:
            inside = True  # the level itself is refused when SINS is scored
        if not inside:
            m.fail(
                "CONTRADICTION_LEVEL",
                f"sins.level {one!r} is not among sins.levels {list(levels)}",
            )
    if levels:
        return tuple(levels)
    if one is not None:
        return (one,)
    return None if case_level is None else (case_level,)


def build_record(inputs: Mapping[str, Any], tables: Tables) -> PatientRecord:
    """Validate ``inputs`` and merge every fact into one :class:`PatientRecord`.

    Raises ``ScoringError``; when several contradictions are found the first is raised
    and all are attached as ``errors`` (list of ``ScoringError``) on the exception.
    """
    d = validate(inputs, tables)
    sins_b = d.get("sins")
    esc_b = d.get("escc_features")
    noms_b = d.get("noms") or {}
    tok = d.get("tokuhashi") or {}
    tom = d.get("tomita") or {}
    mb = d.get("modified_bauer") or {}
    m = _Merger()
    blocks = {"sins": sins_b, "noms": noms_b, "tokuhashi": tok, "tomita": tom, "modified_bauer": mb}
    for key, blk_name, fld, value in d.get("_copies", []):
        target = blocks[blk_name]
        if target is None or value is None:
            continue
        if target.get(fld) is None:
            target[fld] = value
        elif target[fld] != value:
            code = {
                "visceral_major_organs": "CONTRADICTION_VISCERAL",
                "visceral": "CONTRADICTION_VISCERAL",
                "visceral_mets": "CONTRADICTION_VISCERAL",
                "skeletal_mets_total": "CONTRADICTION_SKELETAL_COUNT",
                "vertebral_body_mets": "CONTRADICTION_SKELETAL_COUNT",
                "extraspinal_bone_mets": "CONTRADICTION_SKELETAL_COUNT",
                "bone": "CONTRADICTION_SKELETAL_COUNT",
                "primary": "CONTRADICTION_HISTOLOGY",
                "histology": "CONTRADICTION_HISTOLOGY",
            }.get(fld, f"CONTRADICTION_{fld.upper()}")
            m.fail(code, f"{key}={value!r} disagrees with {blk_name}.{fld}={target[fld]!r}")

    for path, v in (
        ("noms.histology", noms_b.get("histology")),
        ("tokuhashi.primary", tok.get("primary")),
        ("tomita.histology", tom.get("histology")),
        ("modified_bauer.primary", mb.get("primary")),
        ("histology", d.get("histology")),
        ("primary", d.get("primary")),
    ):
        m.add("histology", path, v)
    histology = _merge_histology(m, tables)
    for fact, paths in {
        "radiosensitivity": [("noms.radiosensitivity", noms_b), ("radiosensitivity", d)],
        "kps": [("tokuhashi.kps", tok), ("kps", d)],
        "ecog": [("tokuhashi.ecog", tok), ("ecog", d)],
        "ecog_mapping": [("tokuhashi.ecog_mapping", tok), ("ecog_mapping", d)],
        "frankel": [("tokuhashi.frankel", tok), ("frankel", d)],
        "asia": [("tokuhashi.asia", tok), ("asia", d)],
        "able_to_tolerate_surgery": [
            ("noms.able_to_tolerate_surgery", noms_b),
            ("able_to_tolerate_surgery", d),
        ],
        "myelopathy": [("noms.myelopathy", noms_b), ("myelopathy", d)],
        "vertebral_body_mets": [("tokuhashi.vertebral_body_mets", tok), ("vertebral_body_mets", d)],
        "extraspinal_bone_mets": [
            ("tokuhashi.extraspinal_bone_mets", tok),
            ("extraspinal_bone_mets", d),
        ],
        "skeletal_mets_total": [
            ("modified_bauer.skeletal_mets_total", mb),
            ("skeletal_mets_total", d),
        ],
    }.items():
        for path, blk in paths:
            m.add(fact, path, blk.get(path.split(".")[-1]))
    for path, v in (
        ("tokuhashi.visceral_major_organs", tok.get("visceral_major_organs")),
        ("tokuhashi_visceral", d.get("tokuhashi_visceral")),
        ("tomita.visceral", tom.get("visceral")),
        ("tomita_visceral", d.get("tomita_visceral")),
    ):
        if v is not None:
            m.add("visceral", path, _VISCERAL_CANON[v])
    for path, b in (
        ("modified_bauer.visceral_mets", mb.get("visceral_mets")),
        ("visceral_mets", d.get("visceral_mets")),
    ):
        if b is not None:
            m.add("visceral", path, "present" if b else "none")
    visceral = _merge_visceral(m)

    # albumin, in g/dL
    for path, v in (
        ("albumin_g_dl", d.get("albumin_g_dl")),
        ("albumin_g_l", None if d.get("albumin_g_l") is None else d["albumin_g_l"] / 10.0),
        (
            "albumin_as_entered",
            None
            if d.get("albumin_as_entered") is None
            else albumin_from_text(d["albumin_as_entered"]),
        ),
    ):
        if v is not None:
            m.add("albumin_g_dl", path, round(v, 6))
    albumin = m.get("albumin_g_dl", "CONTRADICTION_ALBUMIN")
    if albumin is not None and not 0 < albumin <= 7.0:
        raise ScoringError(
            "INVALID_VALUE",
            f"albumin {albumin:g} g/dL is implausible (was a g/L value entered as g/dL?)",
        )

    kps = m.get("kps", "CONTRADICTION_KPS")
    if kps is not None:
        ps.check_kps(kps)
    for k in d.get("kps_values") or ():
        ps.check_kps(k, allow_zero=True)
    ecog = m.get("ecog", "CONTRADICTION_ECOG")
    if ecog is not None:
        ps.check_ecog(ecog)
    mapping = m.values.get("ecog_mapping", [(None, None)])[0][1]
    if kps is not None and ecog is not None:
        # both entered: they must agree under the named mapping, or under at least one of
        # the published mappings when none is named (SCORING.md 0.1, 7.3)
        names = (
            [ps.check_mapping(mapping, tables)]
            if mapping
            else list(tables.raw["performance"]["kps_to_ecog"])
        )
        if all(ps.kps_to_ecog(kps, n, tables) != ecog for n in names):
            m.fail(
                "CONTRADICTION_PERFORMANCE_STATUS",
                f"KPS {kps} and ECOG {ecog} disagree under mapping {'/'.join(names)}",
            )
    frankel = m.get("frankel", "CONTRADICTION_FRANKEL")
    asia = m.get("asia", "CONTRADICTION_ASIA")
    from_asia = False
    if frankel is None and asia is not None:
        frankel, from_asia = ps.frankel_from_asia(asia, tables), True
    amb = d.get("ambulatory_independent")
    if frankel is not None and amb is not None and ps.ambulation_contradicts(frankel, amb, tables):
        scale = "ASIA" if from_asia else "Frankel"
        m.fail(
            "CONTRADICTION_NEURO_AMBULATION",
            f"{scale} {frankel} (no useful motor function) contradicts independent ambulation",
        )

    for path, v in (("sins.pain", (sins_b or {}).get("pain")), ("pain", d.get("pain"))):
        m.add("pain", path, v)
    pain = m.get("pain", "CONTRADICTION_PAIN")
    solitary_total = int(tables.convention("tomita_solitary_total"))
    sins_levels = _sins_levels(sins_b, d.get("level"), m)
    v, e, t = _merge_counts(m, tom.get("bone"), sins_levels, solitary_total)

    sins_in = None
    if sins_b is not None:
        sins_in = SinsInput(
            levels=sins_levels,
            pain=pain,
            lesion=sins_b.get("lesion"),
            alignment=sins_b.get("alignment"),
            collapse=sins_b.get("collapse"),
            posterolateral=sins_b.get("posterolateral"),
            collapse_pct=sins_b.get("collapse_pct"),
            body_involvement_pct=sins_b.get("body_involvement_pct"),
            lytic_pct=sins_b.get("lytic_pct"),
            blastic_pct=sins_b.get("blastic_pct"),
            costovertebral_involved=_either(_cv_flag(sins_b), d.get("_cv")),
        )
    esc_in = None
    if esc_b is not None:
        esc_in = EsccFeatures(**{k: esc_b.get(k) for k in EsccFeatures.__dataclass_fields__})

    requested = {k for k in BLOCKS if k in d}
    if any(
        d.get(k) is not None
        for k in (
            "ambulatory_independent",
            "albumin_g_dl",
            "albumin_g_l",
            "albumin_as_entered",
            "albumin_ge_3_5_g_dl",
            "modified_bauer_ge3",
        )
    ):
        requested.add("nesms")
    if d.get("kps_values") is not None:
        requested.add("performance")
    if m.errors:
        err = m.errors[0]
        err.errors = list(m.errors)  # type: ignore[attr-defined]
        raise err
    return PatientRecord(
        histology=histology,
        radiosensitivity=m.get("radiosensitivity", "CONTRADICTION_RADIOSENSITIVITY"),
        tomita_growth=tom.get("growth"),
        tomita_bone=tom.get("bone"),
        kps=kps,
        ecog=ecog,
        ecog_mapping=m.get("ecog_mapping", "CONTRADICTION_ECOG"),
        frankel=frankel,
        frankel_from_asia=from_asia,
        ambulatory_independent=amb,
        albumin_g_dl=albumin,
        albumin_ge_3_5=d.get("albumin_ge_3_5_g_dl"),
        mbauer_ge3=d.get("modified_bauer_ge3"),
        visceral=visceral,
        vertebral_body_mets=v,
        extraspinal_bone_mets=e,
        skeletal_mets_total=t,
        able_to_tolerate_surgery=m.get("able_to_tolerate_surgery", "CONTRADICTION_SYSTEMIC_STATUS"),
        myelopathy=m.get("myelopathy", "CONTRADICTION_MYELOPATHY"),
        sins=sins_in,
        escc_features=esc_in,
        escc_grades=noms_b.get("escc"),
        sins_total_given=noms_b.get("sins"),
        sins_category_given=noms_b.get("sins_category"),
        kps_values=d.get("kps_values"),
        requested=frozenset(requested),
        sources={f: [p for p, _ in c] for f, c in m.values.items()},
    )


# ---------------------------------------------------------------- documents
_CSV_KINDS = {
    **{k: v for k, v in SCALARS.items()},
    **{f"{b}.{k}": v for b, s in BLOCKS.items() for k, v in s.items()},
}


def _csv_cell(path: str, text: str) -> Any:
    kind = _CSV_KINDS.get(path)
    t = text.strip()
    if t == "" or t.lower() in ("null", "na", "n/a"):  # "none" is a vocabulary value
        return None
    if kind is None:
        raise ScoringError("UNKNOWN_FIELD", f"unknown CSV column {path!r}")
    try:
        if kind == _BOOL:
            low = t.lower()
            if low in ("true", "yes", "1", "y"):
                return True
            if low in ("false", "no", "0", "n"):
                return False
            raise ValueError
        if kind == _INT:
            return int(t)
        if kind in (_NUM, "kps"):
            return float(t)
        if kind in ("levels", "str_list", "int_list", "kps_list", "grades"):
            parts = [p.strip() for p in re.split(r"[;|]", t) if p.strip()]
            return [int(p) for p in parts] if kind in ("int_list", "kps_list") else parts
    except ValueError as exc:
        raise ScoringError("INVALID_TYPE", f"CSV column {path}: {t!r} is not {kind}") from exc
    return t


def rows_from_csv(text: str) -> list[dict[str, Any]]:
    """One case-format ``inputs`` mapping per CSV row (columns ``sins.pain``, ``kps``, ...).

    Lists (``sins.levels``) are separated by ``;``; empty cells are missing values.
    """
    reader = csv.DictReader(io.StringIO(text))
    rows: list[dict[str, Any]] = []
    for line in reader:
        row: dict[str, Any] = {}
        for col, cell in line.items():
            if col is None:
                raise ScoringError("INVALID_VALUE", "a CSV row has more cells than the header")
            value = _csv_cell(col.strip(), cell or "")
            if "." in col:
                blk, key = col.strip().split(".", 1)
                if value is not None:
                    row.setdefault(blk, {})[key] = value
                elif blk not in row:
                    row.setdefault(blk, {})
            elif value is not None:
                row[col.strip()] = value
        rows.append({k: v for k, v in row.items() if v != {}})
    return rows


def parse_document(text: str, fmt: str) -> Any:
    """Parse JSON or YAML text (``fmt`` ``json``/``yaml``) into Python objects."""
    try:
        if fmt == "json":
            return json.loads(text)
        return yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ScoringError(
            "INPUT_UNREADABLE", f"the input is not valid {fmt.upper()}: {exc}"
        ) from exc
