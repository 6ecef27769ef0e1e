"""Slice-stack geometry: orientation, plane, sorting, named checks, and the affine.

Check codes (severity) — an *error* means the stack is not loaded as a volume:

========================  ========  =====================================================
code                      severity  meaning
========================  ========  =====================================================
NON_IMAGE_OBJECT          error     SR, SEG, RT, presentation state, ...: not pixels
NOT_GRAYSCALE             error     colour / multi-sample images (screenshots, fusion)
NO_GEOMETRY               error     Image Position/Orientation or Pixel Spacing missing
TOO_FEW_SLICES            error     fewer distinct slice positions than ``min_slices``
DUPLICATE_POSITIONS       error     different images at the same slice position
MISSING_SLICES            error     a gap larger than 1.5x the usual slice spacing
NON_UNIFORM_SPACING       error     slice spacing varies beyond tolerance (no clear gap)
IRREGULAR_POSITIONS       error     slice centres do not lie on one straight line
GANTRY_TILT               warning   stack sheared (tilted gantry): corrected on loading by
                                    shifting each slice in-plane onto an orthogonal grid
MIXED_ORIENTATIONS        warning   the DICOM series held several orientations; it was
                                    split and each orientation checked on its own
REPEATED_POSITIONS        warning   every position occurs N times (several acquisitions
                                    under one series): split into N stacks
DUPLICATE_INSTANCES       warning   the same instance (SOP UID, frame) found twice; one kept
THICKNESS_NE_SPACING      info      SliceThickness differs from the spacing of positions
SINGLE_SLICE              info      one image loaded as a one-slice volume (only when
                                    ``min_slices`` is set to 1)
TRUNCATED_FILE            error     a file is shorter than its uncompressed pixel data
========================  ========  =====================================================

Gaps, duplicates and irregular spacing are refused rather than interpolated: a
volume stacked uniformly over a gap would put every slice above it at the wrong
height, silently. Gantry tilt is a clean linear shear, so it is corrected exactly
by an in-plane shift per slice (linear interpolation), as scanners' own
tilt-correction does; the size of the tilt is reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from pipeline.io.model import Finding, Frame

DEFAULTS: dict[str, Any] = {
    "min_slices": 3,
    "orientation_tol": 1e-3,  # max abs difference of direction cosines in one stack
    "position_tol_mm": 0.01,  # two slices closer than this along the normal coincide
    "spacing_rel_tol": 0.02,  # spacing may vary this fraction of the median ...
    "spacing_abs_tol_mm": 0.01,  # ... or this many mm, whichever is larger
    "gap_factor": 1.5,  # a step this many times the median is a missing slice
    "tilt_drift_mm": 0.05,  # in-plane drift over the stack above this = gantry tilt
    "irregular_mm": 0.1,  # off-line deviation of slice centres above this = irregular
    "oblique_threshold_deg": 30.0,  # normal further than this from every axis = oblique
}


def row_col_normal(orientation: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit row direction, column direction and slice normal from an IOP (6 values)."""
    o = np.asarray(orientation, dtype=np.float64)
    r = o[:3] / np.linalg.norm(o[:3])
    c = o[3:] / np.linalg.norm(o[3:])
    n = np.cross(r, c)
    return r, c, n / np.linalg.norm(n)


def plane_of(orientation: npt.ArrayLike, oblique_deg: float = 30.0) -> tuple[str, float]:
    """Plane name from the slice normal, and the angle (deg) to the closest axis.

    The normal closest to L/R gives sagittal, to A/P coronal, to S/I axial; a normal
    more than ``oblique_deg`` from every axis gives ``oblique``.
    """
    _, _, n = row_col_normal(orientation)
    ax = int(np.argmax(np.abs(n)))
    angle = float(np.degrees(np.arccos(min(1.0, abs(n[ax])))))
    if angle > oblique_deg:
        return "oblique", angle
    return ("sagittal", "coronal", "axial")[ax], angle


def cluster_orientations(frames: list[Frame], tol: float) -> list[list[Frame]]:
    """Group frames whose orientation cosines agree within ``tol`` (order kept)."""
    groups: list[tuple[np.ndarray, list[Frame]]] = []
    for f in frames:
        assert f.orientation is not None
        for ref, members in groups:
            if np.max(np.abs(ref - f.orientation)) <= tol:
                members.append(f)
                break
        else:
            groups.append((f.orientation, [f]))
    return [m for _, m in groups]


@dataclass
class StackGeometry:
    """Result of :func:`check_stack`: sorted frames and the measured geometry."""

    frames: list[Frame]
    findings: list[Finding]
    spacing: float | None = None
    tilt_deg: float | None = None
    step: np.ndarray | None = None  # mean position step between neighbours (LPS mm)


def _key(f: Frame) -> tuple[str, int]:
    return (f.sop_uid, -1 if f.frame_index is None else f.frame_index)


def dedupe(frames: list[Frame]) -> tuple[list[Frame], list[Finding]]:
    """Drop repeated instances (same SOP Instance UID and frame) found in several files."""
    seen: set[tuple[str, int]] = set()
    out: list[Frame] = []
    dropped = 0
    for f in frames:
        k = _key(f)
        if f.sop_uid and k in seen:
            dropped += 1
            continue
        seen.add(k)
        out.append(f)
    findings = []
    if dropped:
        findings.append(
            Finding("DUPLICATE_INSTANCES", "warning", f"{dropped} repeated instance(s) ignored")
        )
    return out, findings


def split_repeats(frames: list[Frame], cfg: dict[str, Any]) -> list[list[Frame]] | None:
    """If every slice position occurs exactly N>1 times, split into N stacks.

    The i-th occurrence (by instance number) of each position goes to stack i. Returns
    ``None`` when the positions do not repeat that regularly.
    """
    if not frames or any(f.position is None or f.orientation is None for f in frames):
        return None
    _, _, n = row_col_normal(frames[0].orientation)  # type: ignore[arg-type]
    d = np.array([float(np.dot(f.position, n)) for f in frames])  # type: ignore[arg-type]
    order = np.argsort(d, kind="stable")
    tol = cfg["position_tol_mm"]
    bins: list[list[int]] = []
    for idx in order:
        if bins and abs(d[idx] - d[bins[-1][0]]) <= tol:
            bins[-1].append(int(idx))
        else:
            bins.append([int(idx)])
    counts = {len(b) for b in bins}
    if len(counts) != 1:
        return None
    m = counts.pop()
    if m < 2 or len(bins) < cfg["min_slices"]:
        return None
    stacks: list[list[Frame]] = [[] for _ in range(m)]
    for b in bins:
        members = sorted(
            (frames[i] for i in b),
            key=lambda f: (
                f.instance_number if f.instance_number is not None else 0,
                f.frame_index or 0,
            ),
        )
        for j, f in enumerate(members):
            stacks[j].append(f)
    return stacks


def check_stack(frames: list[Frame], cfg: dict[str, Any] | None = None) -> StackGeometry:
    """Sort one single-orientation stack along its normal and run the geometry checks."""
    c = {**DEFAULTS, **(cfg or {})}
    findings: list[Finding] = []
    if any(f.position is None or f.orientation is None or f.pixel_spacing is None for f in frames):
        missing = sum(
            f.position is None or f.orientation is None or f.pixel_spacing is None for f in frames
        )
        findings.append(
            Finding(
                "NO_GEOMETRY",
                "error",
                f"{missing} of {len(frames)} images lack a valid Image Position/Orientation "
                "(Patient) or Pixel Spacing",
            )
        )
        return StackGeometry(frames, findings)
    r, col, n = row_col_normal(frames[0].orientation)  # type: ignore[arg-type]
    d = np.array([float(np.dot(f.position, n)) for f in frames])  # type: ignore[arg-type]
    order = np.argsort(d, kind="stable")
    frames = [frames[i] for i in order]
    d = d[order]
    pos = np.array([f.position for f in frames], dtype=np.float64)

    diffs = np.diff(d)
    same = diffs <= c["position_tol_mm"]
    dup = int(np.sum(same))
    n_distinct = len(frames) - dup
    if dup:
        # images that coincide with a neighbour along the normal
        involved = np.zeros(len(frames), bool)
        involved[:-1] |= same
        involved[1:] |= same
        findings.append(
            Finding(
                "DUPLICATE_POSITIONS",
                "error",
                f"{int(involved.sum())} of {len(frames)} images share a slice position with "
                f"another ({n_distinct} distinct positions)",
            )
        )
    if n_distinct < c["min_slices"]:
        findings.append(
            Finding(
                "TOO_FEW_SLICES",
                "error",
                f"{n_distinct} distinct slice position(s); at least {c['min_slices']} are needed "
                "for a volume",
            )
        )
    if dup or n_distinct < c["min_slices"]:
        return StackGeometry(frames, findings)
    if len(frames) == 1:  # allowed only when min_slices <= 1 (e.g. codec tests)
        thick = frames[0].slice_thickness or 1.0
        findings.append(
            Finding("SINGLE_SLICE", "info", f"one slice; SliceThickness {thick:g} mm used as depth")
        )
        return StackGeometry(frames, findings, spacing=thick, tilt_deg=0.0)

    spacing = float(np.median(diffs))
    tol = max(c["spacing_abs_tol_mm"], c["spacing_rel_tol"] * spacing)
    dev = np.abs(diffs - spacing)
    if np.any(dev > tol):
        gaps = diffs > c["gap_factor"] * spacing
        if np.any(gaps):
            where = [f"{diffs[i]:.2f} mm after slice {i}" for i in np.flatnonzero(gaps)[:3]]
            missing = int(np.sum(np.rint(diffs[gaps] / spacing) - 1))
            findings.append(
                Finding(
                    "MISSING_SLICES",
                    "error",
                    f"gap of {', '.join(where)} where the spacing is {spacing:.2f} mm "
                    f"(about {max(missing, 1)} slice(s) missing)",
                )
            )
        else:
            findings.append(
                Finding(
                    "NON_UNIFORM_SPACING",
                    "error",
                    f"slice spacing varies from {diffs.min():.3f} to {diffs.max():.3f} mm "
                    f"(tolerance {tol:.3f} mm around {spacing:.3f} mm)",
                )
            )

    # Shear: the in-plane part of the positions should not move along the stack.
    inplane = pos - np.outer(pos @ n, n)
    k = (d - d[0]) / spacing  # slice index as a real number
    drift = inplane[-1] - inplane[0]
    step = (pos[-1] - pos[0]) / max(len(frames) - 1, 1)
    tilt_deg = float(np.degrees(np.arctan2(np.linalg.norm(drift), d[-1] - d[0])))
    # deviation of the in-plane centres from a straight line through first and last
    if k[-1] > 0:
        line = inplane[0] + np.outer(k / k[-1], drift)
        off_line = float(np.max(np.linalg.norm(inplane - line, axis=1)))
    else:
        off_line = 0.0
    if off_line > c["irregular_mm"]:
        findings.append(
            Finding(
                "IRREGULAR_POSITIONS",
                "error",
                f"slice centres deviate {off_line:.2f} mm from a straight line (several stacks?)",
            )
        )
    elif np.linalg.norm(drift) > c["tilt_drift_mm"]:
        findings.append(
            Finding(
                "GANTRY_TILT",
                "warning",
                f"stack sheared by {tilt_deg:.2f} deg (gantry tilt, in-plane drift "
                f"{np.linalg.norm(drift):.1f} mm); resampled onto an orthogonal grid on loading",
            )
        )
    thick_mm = frames[0].slice_thickness
    if thick_mm and abs(thick_mm - spacing) > tol:
        findings.append(
            Finding(
                "THICKNESS_NE_SPACING",
                "info",
                f"SliceThickness {thick_mm:g} mm differs from the spacing of positions "
                f"{spacing:.3f} mm; the spacing of positions is used",
            )
        )
    return StackGeometry(frames, findings, spacing=spacing, tilt_deg=tilt_deg, step=step)


def native_affine(frames: list[Frame], spacing: float) -> np.ndarray:
    """Affine of the stacked array ``[col, row, slice]`` of sorted frames (LPS, orthogonal).

    Axis 0 runs along the row direction (Columns, spacing PixelSpacing[1]); axis 1 along
    the column direction (Rows, PixelSpacing[0]); axis 2 along the slice normal with the
    spacing measured from positions. The origin is the first frame's position.
    """
    f0 = frames[0]
    assert f0.orientation is not None and f0.position is not None and f0.pixel_spacing is not None
    r, c, n = row_col_normal(f0.orientation)
    aff = np.eye(4)
    aff[:3, 0] = r * f0.pixel_spacing[1]
    aff[:3, 1] = c * f0.pixel_spacing[0]
    aff[:3, 2] = n * (spacing if len(frames) > 1 else (f0.slice_thickness or 1.0))
    aff[:3, 3] = f0.position
    return aff
