"""Compare ``report.json`` with ``truth.json`` field by field, over a cohort.

Metrics (acceptance of the imaging features):

* Bilsky at the worst level: exact agreement, linearly weighted kappa over the ordered
  grades 0 < 1a < 1b < 1c < 2 < 3, low (0-1c) vs high (2-3) agreement;
* SINS imaging components (lesion, alignment, collapse, posterolateral) over the
  vertebrae the truth calls involved (a missing or not-assessable prediction counts as
  wrong; coverage is reported apart);
* collapse percentage within 10 points, translation within 2 mm (where the truth has
  a value);
* levels (VerSe identification): a true vertebra is identified when the report names its
  level *and* that vertebra's body centre lies within ``IDENT_MM`` of the true body centre,
  closer to it than to any other true vertebra (a column numbered one level off names
  most levels but identifies none). Invented levels are names the truth does not have;
  misplaced ones are names it has, found elsewhere. Where either side lacks body centres
  (reports before schema 1.1), the names alone decide.

SINS components, collapse and translation are compared on the same bone: the report's
vertebra whose body centre is nearest the true one (within ``IDENT_MM``), whatever its
name; by name when centres are missing.

Confidence intervals: percentile bootstrap over studies (the unit of sampling), fixed
seed, so the numbers are reproducible.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

GRADES = ["0", "1a", "1b", "1c", "2", "3"]
HIGH = {"2", "3"}
COMPONENTS = ("lesion", "alignment", "collapse", "posterolateral")


def weighted_kappa(
    a: Sequence[str], b: Sequence[str], categories: Sequence[str] = GRADES
) -> float | None:
    """Linearly weighted Cohen's kappa of two ordinal ratings (None if undefined)."""
    idx = {c: i for i, c in enumerate(categories)}
    pairs = [(idx[x], idx[y]) for x, y in zip(a, b, strict=True) if x in idx and y in idx]
    if not pairs:
        return None
    k = len(categories)
    obs = np.zeros((k, k))
    for i, j in pairs:
        obs[i, j] += 1
    obs /= obs.sum()
    exp = np.outer(obs.sum(1), obs.sum(0))
    w = np.abs(np.subtract.outer(np.arange(k), np.arange(k))) / (k - 1)
    den = float((w * exp).sum())
    if den == 0:
        return 1.0 if float((w * obs).sum()) == 0 else None
    return 1.0 - float((w * obs).sum()) / den


def _levels(doc: dict[str, Any]) -> list[str]:
    return [str(x) for x in doc.get("levels", [])]


def _norm_level(lv: str) -> str:
    return "sacrum" if lv in ("S", "S1", "sacrum") else lv


#: VerSe identification tolerance (mm): a level counts as found only this close to the truth.
IDENT_MM = 20.0


def _centre(v: dict[str, Any]) -> np.ndarray | None:
    c = v.get("body_centre_lps")
    if c is None:  # truth files written before schema 1.1 kept it in the measurements
        c = (v.get("measurements") or {}).get("body_centre_lps")
    return np.asarray(c, dtype=float) if c is not None and len(c) == 3 else None


def _identified(
    truth_v: dict[str, np.ndarray], report_v: dict[str, np.ndarray], level: str
) -> bool:
    """VerSe rule: the report's ``level`` lies within IDENT_MM of the truth's, nearest to it."""
    p = report_v[level]
    if float(np.linalg.norm(p - truth_v[level])) > IDENT_MM:
        return False
    nearest = min(truth_v, key=lambda k: float(np.linalg.norm(truth_v[k] - p)))
    return nearest == level


def _same_bone(
    tv: dict[str, Any], report: list[dict[str, Any]], by_name: dict[str, dict[str, Any]]
) -> dict[str, Any] | None:
    """The report vertebra that is this true vertebra: nearest body centre, else by name."""
    tc = _centre(tv)
    cands = [(v, _centre(v)) for v in report]
    if tc is None or not cands or any(c is None for _, c in cands):
        return by_name.get(_norm_level(tv["level"]))
    dist = [float(np.linalg.norm(c - tc)) if c is not None else np.inf for _, c in cands]
    k = int(np.argmin(dist))
    return cands[k][0] if dist[k] <= IDENT_MM else None


@dataclass
class StudyComparison:
    """Per-study records from which every metric is computed."""

    name: str
    grade_true: str | None
    grade_pred: str | None
    levels_true: list[str]
    levels_found: int
    levels_invented: list[str]
    levels_misplaced: list[str] = field(default_factory=list)
    components: dict[str, list[tuple[Any, Any]]] = field(default_factory=dict)
    collapse: list[tuple[float, float | None]] = field(default_factory=list)
    collapse_in_view: list[tuple[float, float | None]] = field(default_factory=list)
    translation: list[tuple[float, float | None]] = field(default_factory=list)
    per_level_grades: list[tuple[str, str | None]] = field(default_factory=list)


def compare_study(name: str, report: dict[str, Any], truth: dict[str, Any]) -> StudyComparison:
    """Field-by-field comparison of one study."""
    lt = [_norm_level(x) for x in _levels(truth)]
    lp = [_norm_level(x) for x in _levels(report)]
    invented = [x for x in lp if x not in lt]
    rlist = list(report.get("vertebrae", []))
    rv = {_norm_level(v["level"]): v for v in rlist}
    tv_named = {_norm_level(v["level"]): v for v in truth.get("vertebrae", [])}
    tc = {k: ctr for k, v in tv_named.items() if (ctr := _centre(v)) is not None}
    rc = {k: ctr for k, v in rv.items() if (ctr := _centre(v)) is not None}
    misplaced: list[str] = []
    found = 0
    for x in lt:
        if x not in lp:
            continue
        if x in tc and x in rc:  # by position (VerSe); names alone only without centres
            ok = _identified(tc, rc, x)
            found += int(ok)
            if not ok:
                misplaced.append(x)
        else:
            found += 1
    comps: dict[str, list[tuple[Any, Any]]] = {c: [] for c in COMPONENTS}
    col: list[tuple[float, float | None]] = []
    colv: list[tuple[float, float | None]] = []
    tra: list[tuple[float, float | None]] = []
    for tv in truth.get("vertebrae", []):
        pv = _same_bone(tv, rlist, rv)
        tm = tv.get("measurements") or {}
        pm = (pv or {}).get("measurements") or {}
        if tm.get("translation_mm") is not None:
            tra.append((float(tm["translation_mm"]), pm.get("translation_mm")))
        if not tv.get("involved"):
            continue
        full = pv is not None and not pv.get("partly_in_view", False)
        for c in COMPONENTS:
            t = (tv.get("sins") or {}).get(c)
            if t is None:
                continue
            p = ((pv or {}).get("sins") or {}).get(c)
            comps[c].append((t, p))
            if full:
                comps.setdefault(f"{c}_in_view", []).append((t, p))
        if tm.get("collapse_pct") is not None:
            col.append((float(tm["collapse_pct"]), pm.get("collapse_pct")))
            if full:
                colv.append((float(tm["collapse_pct"]), pm.get("collapse_pct")))
    te, pe = truth.get("escc") or {}, report.get("escc") or {}
    plg = [
        (g, (pe.get("per_level") or {}).get(lv)) for lv, g in (te.get("per_level") or {}).items()
    ]
    return StudyComparison(
        name=name,
        grade_true=te.get("worst_grade"),
        grade_pred=pe.get("worst_grade"),
        levels_true=lt,
        levels_found=found,
        levels_invented=invented,
        levels_misplaced=misplaced,
        components=comps,
        collapse=col,
        collapse_in_view=colv,
        translation=tra,
        per_level_grades=plg,
    )


def _metrics(studies: Sequence[StudyComparison]) -> dict[str, float | None]:
    m: dict[str, float | None] = {}
    g = [(s.grade_true, s.grade_pred) for s in studies if s.grade_true is not None]
    if g:
        m["bilsky_exact"] = float(np.mean([t == p for t, p in g]))
        m["bilsky_weighted_kappa"] = weighted_kappa(
            [t for t, _ in g], [p if p else "missing" for _, p in g]
        )
        m["bilsky_low_high"] = float(
            np.mean([(t in HIGH) == (p in HIGH) and p is not None for t, p in g])
        )
    pl = [(t, p) for s in studies for t, p in s.per_level_grades]
    if pl:
        m["bilsky_per_level_exact"] = float(np.mean([t == p for t, p in pl]))
    for c in (*COMPONENTS, *(f"{x}_in_view" for x in COMPONENTS)):
        pairs = [x for s in studies for x in s.components.get(c, [])]
        m[f"sins_{c}_accuracy"] = float(np.mean([t == p for t, p in pairs])) if pairs else None
        m[f"sins_{c}_coverage"] = (
            float(np.mean([p is not None for _, p in pairs])) if pairs else None
        )
    col = [x for s in studies for x in s.collapse]
    m["collapse_within_10"] = (
        float(np.mean([p is not None and abs(p - t) <= 10 for t, p in col])) if col else None
    )
    colv = [x for s in studies for x in s.collapse_in_view]
    m["collapse_within_10_in_view"] = (
        float(np.mean([p is not None and abs(p - t) <= 10 for t, p in colv])) if colv else None
    )
    cm = [abs(p - t) for t, p in col if p is not None]
    m["collapse_mae"] = float(np.mean(cm)) if cm else None
    tra = [x for s in studies for x in s.translation]
    # the lowest vertebra in view has no segment below: no translation to compare
    trm = [(t, p) for t, p in tra if p is not None]
    m["translation_within_2mm"] = float(np.mean([abs(p - t) <= 2 for t, p in trm])) if trm else None
    m["translation_coverage"] = len(trm) / len(tra) if tra else None
    trs = [(t, p) for t, p in tra if t >= 3.0]
    m["translation_within_2mm_translated"] = (
        float(np.mean([p is not None and abs(p - t) <= 2 for t, p in trs])) if trs else None
    )
    n_true = sum(len(s.levels_true) for s in studies)
    m["levels_identified"] = sum(s.levels_found for s in studies) / n_true if n_true else None
    m["levels_invented_per_study"] = (
        float(np.mean([len(s.levels_invented) for s in studies])) if studies else None
    )
    m["levels_exact_study"] = (
        float(
            np.mean(
                [s.levels_found == len(s.levels_true) and not s.levels_invented for s in studies]
            )
        )
        if studies
        else None
    )
    return m


def bootstrap_ci(
    studies: Sequence[StudyComparison],
    fn: Callable[[Sequence[StudyComparison]], dict[str, float | None]],
    n: int = 1000,
    seed: int = 0,
) -> dict[str, tuple[float, float] | None]:
    """95% percentile bootstrap intervals of every metric, resampling studies."""
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {}
    k = len(studies)
    for _ in range(n):
        pick = [studies[i] for i in rng.integers(0, k, k)]
        for key, v in fn(pick).items():
            if v is not None:
                draws.setdefault(key, []).append(v)
    out: dict[str, tuple[float, float] | None] = {}
    for key, vals in draws.items():
        out[key] = (float(np.percentile(vals, 2.5)), float(np.percentile(vals, 97.5)))
    return out


ACCEPTANCE = {
    "bilsky_exact": 0.85,
    "bilsky_weighted_kappa": 0.90,
    "bilsky_low_high": 0.95,
    "sins_lesion_accuracy": 0.90,
    "sins_alignment_accuracy": 0.90,
    "sins_collapse_accuracy": 0.90,
    "sins_posterolateral_accuracy": 0.90,
    "levels_identified": 0.95,
}


def evaluate_pairs(
    pairs: Sequence[tuple[str, dict[str, Any], dict[str, Any]]], n_boot: int = 1000, seed: int = 0
) -> dict[str, Any]:
    """Metrics, bootstrap CIs and per-study disagreements for (name, report, truth) triples."""
    studies = [compare_study(n, r, t) for n, r, t in pairs]
    metrics = _metrics(studies)
    ci = bootstrap_ci(studies, _metrics, n=n_boot, seed=seed) if studies and n_boot > 0 else {}
    disagreements = []
    for s in studies:
        d: dict[str, Any] = {}
        if s.grade_true != s.grade_pred:
            d["bilsky"] = [s.grade_true, s.grade_pred]
        for c, prs in s.components.items():
            bad = [list(x) for x in prs if x[0] != x[1]]
            if bad:
                d[c] = bad
        if s.levels_found != len(s.levels_true) or s.levels_invented:
            d["levels"] = {
                "missed": len(s.levels_true) - s.levels_found,
                "invented": s.levels_invented,
                "misplaced": s.levels_misplaced,
            }
        if d:
            disagreements.append({"study": s.name, **d})
    return {
        "n_studies": len(studies),
        "metrics": metrics,
        "ci95": {k: list(v) if v else None for k, v in ci.items()},
        "acceptance": {
            k: {"threshold": thr, "value": metrics.get(k), "met": (metrics.get(k) or 0.0) >= thr}
            for k, thr in ACCEPTANCE.items()
        },
        "disagreements": disagreements,
    }


def find_pairs(reports: Path, truths: Path) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """Match ``reports/<name>/report.json`` with ``truths/<name>/truth.json`` (or ``truths/<name>.json``)."""
    out = []
    for rp in sorted(Path(reports).glob("*/report.json")):
        name = rp.parent.name
        cands = [Path(truths) / name / "truth.json", Path(truths) / f"{name}.json"]
        tp = next((c for c in cands if c.exists()), None)
        if tp is None:
            continue
        out.append((name, json.loads(rp.read_text()), json.loads(tp.read_text())))
    return out
