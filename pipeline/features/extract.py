"""Assemble all imaging features of one study from a volume and its segmentation."""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import numpy.typing as npt

from pipeline import labels as L
from pipeline.errors import ConfigError
from pipeline.features import vertebra as V
from pipeline.features.alignment import PairAlignment, consecutive, pair_alignments
from pipeline.features.escc import grade_escc
from pipeline.features.geometry import (
    PATIENT_L,
    VertebraGeometry,
    vertebra_geometries,
    voxel_volume_mm3,
)
from pipeline.features.types import Finding, ImagingFeatures, Provenance, VertebraFeatures
from pipeline.io.volume import Volume
from pipeline.paths import config_dir, load_yaml

_REQUIRED = ("involvement", "lesion_quality", "posterolateral", "collapse", "alignment", "escc")


def load_config(path: str | None = None, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Read ``configs/features.yaml`` (or ``path``), with optional nested overrides."""
    cfg = load_yaml(path or config_dir() / "features.yaml")
    if not isinstance(cfg, dict) or any(k not in cfg for k in _REQUIRED):
        raise ConfigError(
            "CONFIG_INVALID", f"features config needs the blocks {', '.join(_REQUIRED)}"
        )
    cfg = copy.deepcopy(cfg)
    for block, vals in (overrides or {}).items():
        cfg.setdefault(block, {}).update(vals)
    return cfg


def _arr(x: Any) -> npt.NDArray[Any] | None:
    if x is None:
        return None
    return np.asarray(x.array if isinstance(x, Volume) else x)


def _same_grid(a: Volume, b: Volume) -> bool:
    return a.shape == b.shape and np.allclose(a.affine, b.affine, atol=1e-3)


def contiguous_segments(labels_involved: list[int]) -> list[list[str]]:
    """Group involved vertebrae into runs of anatomically consecutive levels."""
    order = [n for n in L.CRANIOCAUDAL_ORDER if n in set(labels_involved)]
    segs: list[list[int]] = []
    for n in order:
        if segs and consecutive(segs[-1][-1], n):
            segs[-1].append(n)
        else:
            segs.append([n])
    return [[L.level_name(n) for n in s] for s in segs]


def _alignment_for(
    level: str, pairs: list[PairAlignment], cfg: dict[str, Any]
) -> tuple[Finding, dict[str, float | None]]:
    """SINS alignment of a vertebra from the segment below it.

    Convention (as in "T10 on T11" listhesis): a translation or focal angle at a disc is
    attributed to the vertebra above it. The lowest vertebra in view has no segment below.
    """
    below = [p for p in pairs if p.upper == level]
    if not below:
        above = [p for p in pairs if p.lower == level]
        meas_na: dict[str, float | None] = {
            "translation_mm": None,
            "kyphosis_deg": None,
            "scoliosis_deg": None,
        }
        if above and all(
            p.translation_mm < cfg["translation_mm"]
            and abs(p.focal_kyphosis_deg) < cfg["kyphosis_deg"]
            and abs(p.focal_scoliosis_deg) < cfg["scoliosis_deg"]
            for p in above
        ):
            return Finding(
                "normal", "estimated", "no vertebra below in view; aligned with the one above"
            ), meas_na
        return Finding.na(
            "no measurable segment below (next vertebra absent or only partly seen)"
        ), meas_na
    p = below[0]
    meas: dict[str, float | None] = {
        "translation_mm": round(p.translation_mm, 2),
        "kyphosis_deg": round(p.focal_kyphosis_deg, 2),
        "scoliosis_deg": None if p.sagittal_only else round(p.focal_scoliosis_deg, 2),
    }
    prov: Provenance = (
        "measured" if p.focal_from_neighbours and not p.sagittal_only else "estimated"
    )
    seg = f"{p.upper}/{p.lower}"
    if p.sagittal_only:
        seg += f" (sagittal plane only: {p.sagittal_why})"
    if p.translation_mm >= cfg["translation_mm"]:
        return Finding(
            "subluxation_translation", prov, f"{p.translation_mm:.1f} mm translation {seg}"
        ), meas
    if (
        abs(p.focal_kyphosis_deg) >= cfg["kyphosis_deg"]
        or abs(p.focal_scoliosis_deg) >= cfg["scoliosis_deg"]
    ):
        return Finding(
            "de_novo_deformity",
            prov,
            f"focal kyphosis {p.focal_kyphosis_deg:.1f} deg, scoliosis {p.focal_scoliosis_deg:.1f} deg at {seg} "
            "(prior imaging unavailable: 'de novo' not verified)",
        ), meas
    why = f"{seg}: translation {p.translation_mm:.1f} mm, focal angles {p.focal_kyphosis_deg:.1f}/{p.focal_scoliosis_deg:.1f} deg"
    if not p.focal_from_neighbours:
        why += " (no neighbouring segment: normal curvature not subtracted)"
    return Finding("normal", prov, why), meas


def _collapse(
    geos: list[VertebraGeometry],
    heights: dict[int, dict[str, float] | None],
    involved: dict[int, bool],
    cfg: dict[str, Any],
) -> dict[int, tuple[float | None, str, Provenance]]:
    """Collapse percentage per vertebra against the expected height from intact neighbours."""
    out: dict[int, tuple[float | None, str, Provenance]] = {}
    maxd = int(cfg["max_reference_distance"])
    for i, g in enumerate(geos):
        h = heights.get(g.label)
        if g.cut_by_fov and not g.cut_laterally_only:
            out[g.label] = (None, "vertebra cut by the edge of the field of view", "not_assessable")
            continue
        if h is None:
            out[g.label] = (None, "body heights not measurable", "not_assessable")
            continue
        refs: list[tuple[int, VertebraGeometry]] = []
        for side in (-1, 1):
            cands = [
                geos[i + side * k] for k in range(1, maxd + 1) if 0 <= i + side * k < len(geos)
            ]
            # C1 has no body, C2 carries the dens and the sacrum's label spans all its
            # segments (41/30/26 mm "heights" against a 28 mm L5): none is a reference
            cands = [
                c
                for c in cands
                if heights.get(c.label) is not None
                and c.label > 2
                and c.label != L.SACRUM
                and (not c.cut_by_fov or c.cut_laterally_only)
            ]
            intact = [c for c in cands if not involved.get(c.label)]
            pick = intact[0] if intact else (cands[0] if cands else None)
            if pick is not None:
                refs.append((side, pick))
        if not refs:
            out[g.label] = (
                None,
                "no neighbouring vertebra to estimate the expected height",
                "not_assessable",
            )
            continue
        losses = {}
        for band in ("anterior", "middle", "posterior"):
            ref_h = [heights[r.label].get(band) for _, r in refs]  # type: ignore[union-attr]
            if band not in h or any(x is None for x in ref_h):
                continue  # e.g. C2's middle (dens)
            exp = float(np.mean([float(x) for x in ref_h if x is not None]))
            losses[band] = 100.0 * (1.0 - h[band] / exp) if exp > 0 else 0.0
        if not losses:
            out[g.label] = (None, "no comparable body height in the neighbours", "not_assessable")
            continue
        band = max(losses, key=lambda b: losses[b])
        pct = max(0.0, losses[band])
        names = ", ".join(r.level for _, r in refs)
        prov: Provenance = "measured"
        why = f"largest loss {band} ({pct:.0f}%) vs {names}"
        if len(refs) < 2:
            prov = "estimated"
            why += " (one neighbour only)"
        if g.cut_by_fov:
            why += " (body cut left-right by the field of view: heights from the part in view)"
        if any(involved.get(r.label) for _, r in refs):
            prov = "estimated"
            why += " (reference vertebra involved)"
        out[g.label] = (round(pct, 2), why, prov)
    return out


def extract_features(
    image: Volume,
    vertebrae: Any,
    structures: Any,
    parts: Any = None,
    *,
    ct: Volume | None = None,
    escc_source: str | None = None,
    config: dict[str, Any] | None = None,
) -> ImagingFeatures:
    """Compute every imaging feature of a study.

    Parameters
    ----------
    image : Volume
        The image the segmentation was made on (CT or MR).
    vertebrae, structures, parts : Volume or ndarray
        Label maps on ``image``'s grid (``parts`` optional).
    ct : Volume, optional
        A CT on the same grid for lesion quality when ``image`` is MR.
    escc_source : str, optional
        What the ESCC grade is read on, e.g. ``"mr_axial_t2"`` (measured); anything else
        (CT, sagittal MR) makes the grade an estimate.
    config : dict, optional
        Parsed ``configs/features.yaml``; read from disk when omitted.

    Returns
    -------
    ImagingFeatures
    """
    cfg = config or load_config()
    vert = _arr(vertebrae)
    st = _arr(structures)
    pa = _arr(parts)
    if vert is None or st is None or vert.shape != image.shape or st.shape != image.shape:
        raise ValueError("label maps must be on the image grid")
    if pa is not None and (pa.shape != image.shape or not np.any(pa)):
        pa = None
    affine = image.affine
    vox = voxel_volume_mm3(affine)
    geos = vertebra_geometries(vert, pa, affine)
    messages: list[str] = []
    if not geos:
        messages.append("no vertebra found in the segmentation")
    if pa is None:
        messages.append("no vertebra-parts segmentation: posterolateral involvement not assessable")

    ct_img: Volume | None = image if image.modality == "CT" else ct
    if ct_img is not None and not _same_grid(ct_img, image):
        messages.append("the CT is not on the segmentation grid: lesion quality not assessable")
        ct_img = None

    inv_cfg, q_cfg, pl_cfg = cfg["involvement"], cfg["lesion_quality"], cfg["posterolateral"]
    lesion_masks = {g.label: V.lesion_voxels(g, st) for g in geos}
    if ct_img is not None:
        lesion_masks, dropped = _drop_implausible_lesion_voxels(
            geos, lesion_masks, ct_img.array, float(inv_cfg["min_plausible_lesion_hu"])
        )
        if dropped:
            messages.append(
                f"{dropped} osseous-lesion voxels below {inv_cfg['min_plausible_lesion_hu']:g} HU "
                "(fat or air, not tumour) were ignored: a segmentation error"
            )
    involved = {
        g.label: bool(lesion_masks[g.label].sum() * vox / 1000.0 >= inv_cfg["min_lesion_ml"])
        for g in geos
    }
    c_cfg = cfg["collapse"]
    heights = {
        g.label: V.body_heights(
            g,
            affine,
            c_cfg["band_fraction"],
            hu=None if ct_img is None else ct_img.array[tuple(g.index.T)],
            lesion=lesion_masks[g.label],
            endplate_hu=c_cfg.get("ct_endplate_hu"),
            max_trim_mm=float(c_cfg.get("ct_max_trim_mm", 0.0)),
        )
        for g in geos
    }
    collapse = _collapse(geos, heights, involved, cfg["collapse"])
    pairs = pair_alignments(
        geos,
        V.voxel_extent_along(affine, PATIENT_L),
        float(cfg["alignment"].get("max_lateral_spacing_mm", math.inf)),
    )
    ref_hu = None
    if ct_img is not None:
        ref_hu = V.reference_bone_hu(geos, involved, ct_img.array, q_cfg)

    out: list[VertebraFeatures] = []
    for g in geos:
        les = lesion_masks[g.label]
        body = g.body_mask
        les_ml = float(les.sum() * vox / 1000.0)
        body_pct = float(100.0 * (les & body).sum() / max(body.sum(), 1))
        meas: dict[str, float | None] = {
            "lesion_volume_ml": round(les_ml, 3),
            "body_involvement_pct": round(body_pct, 2),
            "body_volume_ml": round(float(body.sum() * vox / 1000.0), 3),
        }
        h = heights[g.label]
        if h is not None:
            meas.update({f"height_{k}_mm": round(v, 2) for k, v in h.items() if k != "depth"})
        inv = involved[g.label]
        # lesion quality
        if not inv:
            lesion = Finding(None, "measured", "not involved")
        elif ref_hu is not None and ct_img is not None:
            lesion, qm = V.lesion_quality_ct(g, les, ct_img.array, ref_hu[0], q_cfg, ref_hu[1])
            if not ref_hu[2] and lesion.provenance == "measured":
                lesion.provenance = "estimated"
            meas.update(qm)
        else:
            lesion = Finding.na("MR only: lytic/blastic character needs CT attenuation")
        # posterolateral
        if inv:
            pl, pm = V.posterolateral(g, les, vox, pl_cfg)
            meas.update(pm)
        else:
            pl = Finding("none", "measured", "not involved")
        # collapse
        pct, cwhy, cprov = collapse[g.label]
        meas["collapse_pct"] = pct
        if cprov == "not_assessable":
            col = Finding.na(cwhy)
        else:
            cat = V.collapse_category(pct, body_pct, cfg["collapse"], inv_cfg["body_involved_pct"])
            col = Finding(cat, cprov, cwhy)
            if pct is not None and abs(pct - 50.0) < 0.5:
                col.why += "; COLLAPSE_AT_50_BOUNDARY"
        # alignment
        al, am = _alignment_for(g.level, pairs, cfg["alignment"])
        meas.update(am)
        loc = V.location_class(g.label)
        vf = VertebraFeatures(
            label=g.label,
            level=g.level,
            involved=inv,
            location=loc,
            lesion=lesion,
            collapse=col,
            alignment=al,
            posterolateral=pl,
            measurements=meas,
            partly_in_view=g.cut_by_fov,
            body_centre_lps=(
                float(g.body_centroid[0]),
                float(g.body_centroid[1]),
                float(g.body_centroid[2]),
            ),
        )
        for name in ("location", "lesion", "collapse", "alignment", "posterolateral"):
            f: Finding = getattr(vf, name)
            vf.provenance[name] = f.provenance
            vf.why[name] = f.why
        vf.provenance["involvement"] = "measured"
        vf.why["involvement"] = (
            f"{les_ml:.2f} ml osseous lesion (threshold {inv_cfg['min_lesion_ml']} ml)"
        )
        vf.why["frame"] = g.frame_source
        if g.cut_by_fov:
            vf.why["involvement"] += "; vertebra cut by the edge of the field of view (partly seen)"
        out.append(vf)

    # epidural compression
    if image.modality == "MR" and escc_source == "mr_axial_t2":
        eprov: Provenance = "measured"
        ewhy = "graded on axial T2 MR"
    elif image.modality == "MR":
        eprov, ewhy = "estimated", "graded on resliced non-axial MR (Bilsky is read on axial T2)"
    else:
        eprov, ewhy = "estimated", "graded on CT: the Bilsky scale is defined on axial T2 MR"
    if ct_img is not None:
        st, dropped = _drop_implausible_tumour_voxels(
            st, ct_img.array, float(cfg["escc"]["min_plausible_tumour_hu"])
        )
        if dropped:
            messages.append(
                f"{dropped} epidural-tumour voxels below "
                f"{cfg['escc']['min_plausible_tumour_hu']:g} HU (fat or air, not tumour) were "
                "ignored: a segmentation error"
            )
    escc = grade_escc(geos, st, affine, cfg["escc"], eprov, ewhy)
    inv_labels = [g.label for g in geos if involved[g.label]]
    return ImagingFeatures(
        modality=image.modality,
        vertebrae=out,
        escc=escc,
        involved_levels=[L.level_name(n) for n in inv_labels],
        segments=contiguous_segments(inv_labels),
        messages=messages,
    )


def _drop_implausible_tumour_voxels(
    structures: npt.NDArray[np.integer], ct: npt.NDArray[np.floating], min_hu: float
) -> tuple[npt.NDArray[np.integer], int]:
    """Epidural-tumour labels at fat or air attenuation set to background; map and count."""
    bad = (structures == L.EPIDURAL) & (np.asarray(ct) < min_hu)
    n = int(bad.sum())
    if not n:
        return structures, 0
    return np.where(bad, 0, structures).astype(structures.dtype), n


def _drop_implausible_lesion_voxels(
    geos: list[VertebraGeometry],
    masks: dict[int, npt.NDArray[np.bool_]],
    ct: npt.NDArray[np.floating],
    min_hu: float,
) -> tuple[dict[int, npt.NDArray[np.bool_]], int]:
    """Remove lesion voxels whose CT attenuation is fat or air; returns masks and count."""
    out, dropped = {}, 0
    for g in geos:
        m = masks[g.label]
        ok = np.asarray(ct)[tuple(g.index.T)] >= min_hu
        dropped += int((m & ~ok).sum())
        out[g.label] = m & ok
    return out, dropped
