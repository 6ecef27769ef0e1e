"""Random synthetic spines: the plan (what pathology goes where) and the world it builds.

:func:`random_world` draws a :class:`Plan` (explicit options win over random draws) and
builds the :class:`~pipeline.synth.world.World`. The plan is the source of the truth:
:mod:`pipeline.synth.truth` turns it into ``truth.json``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipeline.synth import config as C
from pipeline.synth.anatomy import build_layout, level_run
from pipeline.synth.pathology import EPIDURAL_LEVELS, Lesion, sample_epidural
from pipeline.synth.world import SoftTissue, World, body_involvement

REGIONS: dict[str, tuple[int, int]] = {
    "cervical": (2, 9),  # C2-T2
    "thoracic": (9, 19),  # T2-T12
    "thoracolumbar": (15, 22),  # T8-L3
    "lumbar": (17, 26),  # T10-S
}
LESION_TYPES = ("lytic", "blastic", "mixed", "none")
COLLAPSE_KINDS = ("none", "lt50", "gt50", "involved_gt50")
ALIGNMENTS = ("normal", "translation", "kyphosis", "scoliosis")
POSTEROLATERAL = ("none", "unilateral", "bilateral")


@dataclass
class StudyOptions:
    """What to put in a study; ``None`` means draw at random."""

    region: str | None = None
    grade: str | None = None
    lesion_type: str | None = None
    collapse: str | None = None
    alignment: str | None = None
    posterolateral: str | None = None
    extra_lesions: int | None = None
    wedge: bool | None = None


@dataclass
class Plan:
    """The drawn study: levels, index level and every pathology parameter."""

    region: str
    numbers: list[int]
    index_level: int
    grade: str
    epidural_level: int | None
    lesion_type: str
    collapse_kind: str
    collapse_pct: float
    wedge: bool
    alignment: str
    alignment_level: int | None
    alignment_value: float
    posterolateral: str
    lesions: list[Lesion] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly summary (for manifests)."""
        return {
            "region": self.region,
            "levels": self.numbers,
            "index_level": self.index_level,
            "grade": self.grade,
            "epidural_level": self.epidural_level,
            "lesion_type": self.lesion_type,
            "collapse": self.collapse_kind,
            "collapse_pct": round(self.collapse_pct, 3),
            "wedge": self.wedge,
            "alignment": self.alignment,
            "alignment_level": self.alignment_level,
            "alignment_value": round(self.alignment_value, 3),
            "posterolateral": self.posterolateral,
        }


def _pick(rng: np.random.Generator, options: tuple[str, ...], given: str | None) -> str:
    if given is not None:
        if given not in options:
            raise ValueError(f"{given!r} not one of {options}")
        return given
    return str(options[int(rng.integers(0, len(options)))])


def _body_lesion(number: int, kind: str, rng: np.random.Generator, dims: tuple[float, float, float],
                 frac: float) -> Lesion:  # fmt: skip
    """An ellipsoid in the body whose half-axes are ``frac`` of the body's (centred-ish)."""
    h, w, d = dims
    c = (
        float(rng.uniform(-0.3, 0.3) * w * (1 - frac)),
        float(rng.uniform(-0.3, 0.3) * d * (1 - frac)),
        float(rng.uniform(-0.2, 0.2) * h / 2 * (1 - frac)),
    )
    r = (w * frac, d * frac, h / 2 * min(1.0, frac * 1.1))
    return Lesion(number, kind, c, r, "body")


def random_world(rng: np.random.Generator, opts: StudyOptions | None = None, *,
                 numbers: list[int] | None = None) -> tuple[World, Plan]:  # fmt: skip
    """Draw a plan from ``opts`` and build its world (LPS mm, spine near the origin)."""
    opts = opts or StudyOptions()
    region = _pick(rng, tuple(REGIONS), opts.region)
    if numbers is None:
        first, last = REGIONS[region]
        numbers = level_run(first, last)
    n = len(numbers)
    grade = _pick(rng, C.GRADES, opts.grade)
    needs_lesion = (opts.grade not in (None, "0") or opts.collapse not in (None, "none")
                    or opts.posterolateral not in (None, "none"))  # fmt: skip
    if opts.lesion_type == "none" and needs_lesion:
        raise ValueError(
            "lesion_type 'none' contradicts the requested grade / collapse / posterolateral"
        )
    types = LESION_TYPES[:3] if needs_lesion else LESION_TYPES
    lesion_type = _pick(rng, types, opts.lesion_type)
    collapse_kind = _pick(rng, COLLAPSE_KINDS, opts.collapse)
    alignment = _pick(rng, ALIGNMENTS, opts.alignment)
    postero = _pick(rng, POSTEROLATERAL, opts.posterolateral)
    if lesion_type == "none":
        # Without a lesion nothing can be collapsed, involved, posterolateral or epidural.
        collapse_kind, postero, grade = "none", "none", "0"
    # Index level: 2+ vertebrae on each side; prefer one that may carry epidural tumour.
    inner = numbers[2 : n - 2] if n >= 5 else numbers[1:-1] or numbers
    epi_ok = [x for x in numbers[1:] if x in EPIDURAL_LEVELS]
    cand = [x for x in inner if x in EPIDURAL_LEVELS] if grade != "0" else inner
    index = (
        int(cand[int(rng.integers(0, len(cand)))])
        if cand
        else int(inner[int(rng.integers(0, len(inner)))])
    )
    epi_level: int | None = None
    if grade != "0":
        epi_level = index if index in EPIDURAL_LEVELS else (int(epi_ok[-1]) if epi_ok else None)
        if epi_level is None:
            grade = "0"
    # Alignment at the disc below an alignment level A. The disc must not lie between the
    # index vertebra and its neighbours (A not in {index-1, index}): collapse is defined
    # against the neighbours, which an angulation or step between them would confound.
    ali_level: int | None = None
    ali_value = 0.0
    if alignment != "normal":
        i_x = numbers.index(index)
        ok = [x for x in numbers[1 : n - 2] if numbers.index(x) not in (i_x - 1, i_x)]
        if epi_level is not None:
            i_e = numbers.index(epi_level)
            ok = [x for x in ok if numbers.index(x) not in (i_e - 1, i_e - 2)]
        if not ok:
            alignment = "normal"
        else:
            ali_level = int(ok[int(rng.integers(0, len(ok)))])
            lo, hi = C.TRANSLATION_RANGE_MM if alignment == "translation" else C.DEFORMITY_RANGE_DEG
            ali_value = float(rng.uniform(lo, hi))
            # Kyphosis is a flexion deformity (positive); scoliosis goes either way.
            if alignment != "translation" and rng.random() < 0.5 and alignment == "scoliosis":
                ali_value = -ali_value
    collapse_pct = 0.0
    wedge = False
    if collapse_kind in ("lt50", "gt50"):
        lo, hi = C.COLLAPSE_LT50_RANGE if collapse_kind == "lt50" else C.COLLAPSE_GT50_RANGE
        collapse_pct = float(rng.uniform(lo, hi))
        wedge = bool(rng.random() < 0.5) if opts.wedge is None else opts.wedge
    plan = Plan(region, list(numbers), index, grade, epi_level, lesion_type, collapse_kind, collapse_pct,
                wedge, alignment, ali_level, ali_value, postero)  # fmt: skip
    layout = build_layout(
        numbers, rng,
        collapse={index: (collapse_pct / 100, wedge)} if collapse_pct > 0 else None,
        translation={ali_level: ali_value} if alignment == "translation" and ali_level else None,
        kyphosis={ali_level: ali_value} if alignment == "kyphosis" and ali_level else None,
        scoliosis={ali_level: ali_value} if alignment == "scoliosis" and ali_level else None,
    )  # fmt: skip
    plan.lesions = _plan_lesions(plan, layout, rng, opts)
    soft = SoftTissue(
        habitus=float(rng.uniform(0.8, 1.15)), fat=float(rng.uniform(5, 25)), muscle=float(rng.uniform(7, 12)),
        contrast=bool(rng.random() < 0.4),
    )  # fmt: skip
    world = World(layout, plan.lesions, [], soft, cortex=float(rng.uniform(0.8, 1.4)))
    _settle_involvement(world, plan)
    if epi_level is not None:
        w0 = sum(layout.segment_s[epi_level]) / 2 + float(rng.uniform(-1.5, 1.5))
        world.epidurals.append(sample_epidural(epi_level, grade, w0, rng, layout.scale))
    return world, plan


def _plan_lesions(
    plan: Plan, layout: Any, rng: np.random.Generator, opts: StudyOptions
) -> list[Lesion]:
    """Osseous lesions realising the plan's lesion type, involvement and posterolateral sites."""
    if plan.lesion_type == "none":
        return []
    out: list[Lesion] = []
    x = plan.index_level
    v = layout.vertebrae[x]
    dims = (v.height, v.width, v.depth)
    kinds = {"lytic": ["lytic"], "blastic": ["blastic"], "mixed": ["lytic", "blastic"]}[
        plan.lesion_type
    ]
    if plan.collapse_kind == "involved_gt50":
        # Most of the body replaced: an elliptic cylinder (volume fraction ~ frac^3).
        frac = float(rng.uniform(0.9, 0.95))
        r = (v.width * frac, v.depth * frac, v.height / 2 * frac)
        if len(kinds) == 1:
            out.append(Lesion(x, kinds[0], (0.0, 0.0, 0.0), r, "body", "cylinder"))
        else:
            for i, k in enumerate(kinds):
                cx = (-1 if i == 0 else 1) * v.width * frac / 2
                out.append(
                    Lesion(x, k, (cx, 0.0, 0.0), (r[0] / 2 + 1.0, r[1], r[2]), "body", "cylinder")
                )
    else:
        frac = float(rng.uniform(0.35, 0.55))
        if len(kinds) == 1:
            out.append(_body_lesion(x, kinds[0], rng, dims, frac))
        else:  # mixed: two lesions side by side
            for i, k in enumerate(kinds):
                les = _body_lesion(x, k, rng, dims, frac * 0.75)
                cx = (-1 if i == 0 else 1) * v.width * 0.35
                out.append(
                    Lesion(
                        x,
                        k,
                        (cx, les.centre[1], les.centre[2]),
                        (les.radii[0] * 0.6, *les.radii[1:]),
                        "body",
                    )
                )
    # Epidural origin: a lesion at the posterior body wall of the epidural level.
    if plan.epidural_level is not None:
        e = layout.vertebrae[plan.epidural_level]
        kind = kinds[0]
        out.append(Lesion(plan.epidural_level, kind, (0.0, 0.6 * e.depth, 0.0),
                          (0.45 * e.width, 0.3 * e.depth, 0.4 * e.height), "body"))  # fmt: skip
    sides = {"none": [], "unilateral": [int(rng.choice([1, -1]))], "bilateral": [1, -1]}[
        plan.posterolateral
    ]
    for sgn in sides:
        pw = float(np.clip(0.16 * v.width, 2.8, 5.5))
        c = (sgn * (v.canal_lat + pw), v.canal_y - 0.3 * v.canal_ap, 0.15 * v.height)
        site = "pedicle_left" if sgn > 0 else "pedicle_right"
        out.append(Lesion(x, kinds[-1], c, (pw * 1.6, 6.0, 0.35 * v.height), site))
    n_extra = int(rng.integers(0, 3)) if opts.extra_lesions is None else opts.extra_lesions
    others = [m for m in plan.numbers if m != x and m != plan.epidural_level and m not in (1, 26)]
    for _ in range(n_extra):
        if not others:
            break
        m = int(others.pop(int(rng.integers(0, len(others)))))
        w = layout.vertebrae[m]
        kind = kinds[int(rng.integers(0, len(kinds)))]
        out.append(
            _body_lesion(m, kind, rng, (w.height, w.width, w.depth), float(rng.uniform(0.2, 0.4)))
        )
    return out


def _settle_involvement(world: World, plan: Plan) -> None:
    """Resize body lesions so every involvement fraction is clear of the 50 % threshold."""
    lo_max, hi_min = C.INVOLVEMENT_LOW_RANGE[1], C.INVOLVEMENT_HIGH_RANGE[0]
    for n in {le.number for le in world.lesions}:
        want_high = n == plan.index_level and plan.collapse_kind == "involved_gt50"
        for _ in range(25):
            inv = body_involvement(world, n, step=0.8)
            if (want_high and inv >= hi_min) or (not want_high and inv <= lo_max):
                break
            f = 1.04 if want_high else 0.92
            for le in world.lesions:
                if le.number == n and le.site == "body":
                    le.radii = tuple(r * f for r in le.radii)  # type: ignore[assignment]
        else:
            raise RuntimeError(f"could not settle involvement of vertebra {n}")
