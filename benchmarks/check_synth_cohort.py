"""Verify synthetic truth from label maps alone over a balanced cohort (acceptance, issue 4).

For every study of ``cohort_plan(N, SEED)`` the label maps of each series are sampled
(exactly what ``spinemet synth cohort`` writes) and measured with
:mod:`pipeline.synth.verify`, which never sees the world model:

* Bilsky grade on every axial stack (CT axial, T2 axial) == truth ``escc.worst_grade``;
* collapse % of the index vertebra (CT, else T2 sagittal): within TOL_COLLAPSE pp and the
  same category (> 50 / NO_COLLAPSE_PP-50 / below);
* translation (mm) and focal kyphosis/scoliosis (deg) at the alignment level: within
  TOL_MM / TOL_DEG and on the same side of the threshold; at normal studies, the index
  level's segment must measure below both thresholds.

Usage: ``nice .venv/bin/python benchmarks/check_synth_cohort.py [--n 60] [--seed 7]``.
Prints one line per study and a summary; exit code 1 on any disagreement.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from pipeline.synth import config as C
from pipeline.synth import verify as V
from pipeline.synth.acquisition import acquire_labels
from pipeline.synth.cohort import cohort_plan
from pipeline.synth.study import generate_study

TOL_COLLAPSE = 8.0
TOL_MM = 2.0
TOL_DEG = 5.0
#: Angles and translation measured on a sagittal MR slab (1-1.2 mm pixels, 3-4 mm slices,
#: pedicles seen on few slices) are noisier: MR-only studies use these tolerances instead.
TOL_DEG_SAG = 8.0
TOL_MM_SAG = 3.0
#: Measured loss below this counts as "no collapse" (height quantisation at 1-2 mm slices).
#: Sagittal MR slabs use the same collapse tolerances as CT: since body heights are read
#: against the grid's own point density (verify.body_heights), the 3-4 mm lateral slices
#: no longer bias them (60-study cohort: MR-only |error| <= 3.9 pp, CT <= 7.9 pp).
NO_COLLAPSE_PP = 15.0


def check(seed: int, opts, modality: str) -> dict:  # type: ignore[no-untyped-def]
    res = generate_study(seed, None, opts, modality=modality, orientation=None)
    truth, plan = res.truth, res.plan
    # Label maps of the series the checks use (axial stacks; CT or else sagittal MR).
    names = {s.name for s in res.series}
    use = {n for n in names if n in ("ct_axial", "t2_ax")} | (
        {"t2_sag"} if "ct_axial" not in names else set()
    )
    labels = {s.name: (s, acquire_labels(res.world, s)) for s in res.series if s.name in use}
    out: dict = {
        "seed": seed,
        "modality": modality,
        "grade": truth["escc"]["worst_grade"],
        "fail": [],
    }
    for name, (s, lab) in labels.items():
        if s.plane == "axial":
            m = V.measure_escc(lab["structures"], s.affine)
            out[f"grade_{name}"] = m.grade
            if m.grade != truth["escc"]["worst_grade"]:
                out["fail"].append(f"grade {name} {m.grade} != {truth['escc']['worst_grade']}")
    s, lab = labels["ct_axial"] if "ct_axial" in labels else labels["t2_sag"]
    vert, parts, aff = lab["vertebrae"], lab["parts"], s.affine
    nums = plan.numbers
    i = nums.index(plan.index_level)
    tv = {v["label"]: v for v in truth["vertebrae"]}
    col = V.measure_collapse(vert, parts, aff, plan.index_level, nums[i - 1], nums[i + 1])
    tc = tv[plan.index_level]["measurements"]["collapse_pct"]
    out["collapse_truth"], out["collapse_meas"] = tc, col
    if col is None:
        out["fail"].append("collapse not measurable")
    else:
        floor, tol_c = NO_COLLAPSE_PP, TOL_COLLAPSE
        cat = "gt50" if col > 50 else ("lt50" if col > floor else "none")
        tcat = "gt50" if tc > 50 else ("lt50" if tc > 0 else "none")
        if (tc == 0 and cat != "none") or (tc > 0 and (abs(col - tc) > tol_c or cat != tcat)):
            out["fail"].append(f"collapse {col:.1f} vs {tc:.1f}")
    # Alignment level; for normal studies a level whose three segments avoid the collapsed
    # index vertebra (a collapsed body's centroid moves, which tilts its measured frame).
    if plan.alignment_level is not None:
        a = plan.alignment_level
    else:
        ok = [
            n
            for k2, n in enumerate(nums)
            if k2 >= 1 and k2 + 2 < len(nums) and (k2 - 1 > i or k2 + 2 < i)
        ]
        a = ok[0] if ok else plan.index_level
    j = nums.index(a)
    out["alignment_checked_at"] = int(a)
    if j + 2 < len(nums):
        tr = V.measure_translation(vert, parts, aff, a, nums[j + 1], nums[j + 2])
        fa = V.focal_angles(vert, parts, aff, nums, a) if j >= 1 else None
        t_tr = tv[a]["measurements"]["translation_mm"]
        t_k, t_s = tv[a]["measurements"]["kyphosis_deg"], tv[a]["measurements"]["scoliosis_deg"]
        out["translation_truth"], out["translation_meas"] = t_tr, tr
        out["angles_truth"], out["angles_meas"] = (t_k, t_s), fa
        if abs(t_k) > 0 or abs(t_s) > 0:
            pass  # an angulated segment has no well-defined posterior-wall step: not checked
        elif tr is None:
            out["fail"].append("translation not measurable")
        elif abs(tr - t_tr) > (TOL_MM if "ct_axial" in labels else TOL_MM_SAG) or (
            tr >= C.TRANSLATION_THRESHOLD_MM
        ) != (t_tr >= C.TRANSLATION_THRESHOLD_MM):
            out["fail"].append(f"translation {tr:.1f} vs {t_tr:.1f}")
        if fa is not None:
            for meas, tru, nm in ((fa[0], t_k, "kyphosis"), (fa[1], t_s, "scoliosis")):
                tol = TOL_DEG if "ct_axial" in labels else TOL_DEG_SAG
                if abs(meas - tru) > tol or (abs(meas) >= C.DEFORMITY_THRESHOLD_DEG) != (
                    abs(tru) >= C.DEFORMITY_THRESHOLD_DEG
                ):
                    out["fail"].append(f"{nm} {meas:.1f} vs {tru:.1f}")
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=60)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--json", default=None, help="write the per-study results here")
    ap.add_argument("--start", type=int, default=0, help="first study index (to split a run)")
    ap.add_argument("--stop", type=int, default=None, help="stop before this study index")
    args = ap.parse_args()
    rows = []
    t0 = time.time()
    for k, (seed, opts, modality) in enumerate(cohort_plan(args.n, args.seed)):
        if k < args.start or (args.stop is not None and k >= args.stop):
            continue
        r = check(seed, opts, modality)
        rows.append(r)
        grades = " ".join(f"{key[6:]}={v}" for key, v in r.items() if key.startswith("grade_"))
        print(
            f"{k:3d} seed {seed} {modality:4s} truth {r['grade']:2s} {grades:28s} collapse {r['collapse_truth']:5.1f}/"
            f"{(r['collapse_meas'] or float('nan')):5.1f} trans {r.get('translation_truth', 0):4.1f}/"
            f"{(r.get('translation_meas') or float('nan')):4.1f} angles {r.get('angles_truth')}/"
            f"{tuple(round(x, 1) for x in r['angles_meas']) if r.get('angles_meas') else None}"
            f" {'FAIL ' + '; '.join(r['fail']) if r['fail'] else 'ok'}",
            flush=True,
        )
    fails = [r for r in rows if r["fail"]]
    ce = [
        abs(r["collapse_meas"] - r["collapse_truth"])
        for r in rows
        if r["collapse_meas"] is not None and r["collapse_truth"] > 0
    ]
    te = [
        abs(r["translation_meas"] - r["translation_truth"])
        for r in rows
        if r.get("translation_meas") is not None
    ]
    print(
        f"studies {len(rows)}, disagreements {len(fails)}, grades by truth "
        f"{ {g: sum(r['grade'] == g for r in rows) for g in C.GRADES} }, "
        f"collapse |err| max {max(ce, default=0):.1f} pp (n={len(ce)}), translation |err| max {max(te, default=0):.2f} mm, "
        f"{time.time() - t0:.0f} s"
    )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1, default=float)
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
