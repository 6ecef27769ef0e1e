"""Canal refinement on axial slices (MR or CT): sac, cord and epidural tumour at 0.5 mm.

The built-in 3-D model works at 2 mm, where a cord of 8 x 10 mm is a handful of voxels;
the Bilsky grade turns on millimetre details of the cord and the dural sac. This stage
re-segments the spinal canal of each axial slice at 0.5 mm with a small 2-D network
(its own model card, ``inference.canal_refine`` in the main card):

1. the slice axis is the series' thickest voxel axis (for a near-isotropic CT, the axis
   closest to the patient's head-feet direction); on each slice the coarse segmentation
   gives the canal centre (centroid of sac + cord, else of any canal label);
2. a square crop of ``size_px`` pixels of ``pixel_mm`` is sampled in the slice plane
   (bilinear), its axes the patient's left and posterior directions projected onto the
   plane, so that every crop looks the same way whatever the series' row / column order;
   a CT crop is the mean of a few parallel planes (a thin slab, as a radiologist reads
   soft tissue on CT: cord, CSF and tumour differ by 10-40 HU, less than the noise of one
   thin slice) and is windowed in HU; an MR crop is one plane scaled by its percentiles
   (:class:`CropSpec`, from the card);
3. the network's class probabilities are sampled back (bilinear) onto the source pixels
   of the crop footprint and the canal labels (sac, cord, epidural tumour) there are
   replaced by its arg-max; bone-lesion and disc labels are left alone.

The crop geometry (:func:`crop_frame`, :class:`CropSpec`) is shared with the training data (:mod:`pipeline.train.canal`), so training and inference see
the same pixels.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np
import numpy.typing as npt
import torch
from scipy import ndimage

from pipeline import labels as L
from pipeline.io.volume import index_to_lps, lps_to_index, sample_at_points

#: Output classes of the canal network, in channel order.
CANAL_CLASSES: tuple[str, ...] = ("background", "sac", "cord", "epidural")
#: Structure code (:mod:`pipeline.labels`) of each canal class (0: none).
CANAL_CODES = np.array([0, L.SAC, L.CORD, L.EPIDURAL], dtype=np.int16)
FArr = npt.NDArray[np.float64]


@dataclass(frozen=True)
class CropSpec:
    """How a crop is sampled and scaled; the card's ``crop`` block.

    Parameters
    ----------
    size_px : int
        Crop side in pixels.
    pixel_mm : float
        Crop pixel size (mm).
    planes : int
        Parallel planes averaged (1: the slice plane only).
    plane_step_mm : float
        Distance between those planes along the slice normal.
    window : (float, float) or None
        Fixed intensity window mapped to [0, 1] (CT, in HU); ``None``: the crop's own 1st
        and 99th percentiles (MR has no units).
    posterior_offset_mm : float
        The crop's centre lies this far posterior of the canal centre (negative:
        anterior; a bone-lesion crop is centred on the vertebra, in front of the canal).
    """

    size_px: int = 96
    pixel_mm: float = 0.5
    planes: int = 1
    plane_step_mm: float = 1.0
    window: tuple[float, float] | None = None
    posterior_offset_mm: float = 0.0

    def centre_on(self, canal_centre: FArr, e_p: FArr) -> FArr:
        """The crop centre (LPS) for a slice whose canal centre is ``canal_centre``."""
        return np.asarray(canal_centre, dtype=np.float64) + self.posterior_offset_mm * e_p

    @classmethod
    def from_card(cls, crop: dict[str, Any]) -> CropSpec:
        """Read a card's ``crop`` block (``size_px``, ``pixel_mm``, optional rest)."""
        win = crop.get("window")
        if win is not None and (len(win) != 2 or float(win[0]) >= float(win[1])):
            raise ValueError(f"crop.window must be [low, high] with low < high, not {win}")
        planes = int(crop.get("planes", 1))
        if planes < 1:
            raise ValueError(f"crop.planes must be at least 1, not {planes}")
        return cls(
            size_px=int(crop["size_px"]),
            pixel_mm=float(crop["pixel_mm"]),
            planes=planes,
            plane_step_mm=float(crop.get("plane_step_mm", 1.0)),
            window=None if win is None else (float(win[0]), float(win[1])),
            posterior_offset_mm=float(crop.get("posterior_offset_mm", 0.0)),
        )

    def as_card(self) -> dict[str, Any]:
        """The card's ``crop`` block."""
        how = (
            f"HU window {self.window[0]:g} to {self.window[1]:g} -> 0-1"
            if self.window is not None
            else "crop percentiles 1-99 -> 0-1"
        )
        out: dict[str, Any] = {"size_px": self.size_px, "pixel_mm": self.pixel_mm,
                               "planes": self.planes, "plane_step_mm": self.plane_step_mm}  # fmt: skip
        if self.window is not None:
            out["window"] = list(self.window)
        if self.posterior_offset_mm:
            out["posterior_offset_mm"] = self.posterior_offset_mm
        return {**out, "normalisation": how}

    def sample(
        self, image: npt.NDArray[Any], affine: FArr, centre: FArr, e_l: FArr, e_p: FArr
    ) -> npt.NDArray[np.float32]:
        """The normalised crop (size, size) centred on ``centre`` (LPS), axes ``e_l``, ``e_p``."""
        n_hat = np.cross(e_l, e_p)
        offsets = (np.arange(self.planes) - (self.planes - 1) / 2.0) * self.plane_step_mm
        stack = []
        for o in offsets:
            pts = crop_points(np.asarray(centre) + o * n_hat, e_l, e_p, self.size_px, self.pixel_mm)
            # outside the grid reads NaN, so that the first and last slices of a stack
            # average only the planes that exist (0 would read as water on CT)
            stack.append(sample_at_points(image, affine, pts, 1, cval=np.nan))
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pixels: outside
            mean = np.nanmean(np.stack(stack), axis=0)
        return normalise_crop(np.nan_to_num(mean, nan=0.0), self.window)


def _gate(raw: dict[str, Any]) -> float | None:
    """The card's ``gate.coarse_tumour_within_mm`` (mm), or None."""
    gate = (raw.get("gate") or {}).get("coarse_tumour_within_mm")
    if gate is not None and float(gate) < 0:
        raise ValueError(f"gate.coarse_tumour_within_mm must be >= 0, not {gate}")
    return None if gate is None else float(gate)


@dataclass
class CanalCard:
    """The canal model's card: architecture, crop geometry and weights."""

    name: str
    folder: Path
    architecture: dict[str, Any]
    crop: CropSpec
    weights: str
    sha256: str | None
    raw: dict[str, Any]
    #: epidural tumour only within this distance (mm) of the coarse model's epidural
    #: tumour or osseous lesion (None: anywhere)
    tumour_gate_mm: float | None = None

    @property
    def crop_px(self) -> int:
        """Crop side in pixels."""
        return self.crop.size_px

    @property
    def pixel_mm(self) -> float:
        """Crop pixel size (mm)."""
        return self.crop.pixel_mm

    @classmethod
    def load(cls, name_or_path: str | Path, classes: tuple[str, ...] = CANAL_CLASSES) -> CanalCard:
        """Load ``models/<name>/card.yaml`` (or a folder) of a slice model with ``classes``
        (the canal model's by default; the bone-lesion model's card has the same shape)."""
        from pipeline.segment.model import card_errors, read_card

        what = "canal model" if classes == CANAL_CLASSES else "slice model"
        card_path, raw = read_card(name_or_path, what)
        with card_errors(card_path):
            if tuple(raw["classes"]) != classes:
                raise ValueError(f"classes must be {list(classes)}")
            return cls(
                name=str(raw["name"]),
                folder=card_path.parent,
                architecture=dict(raw["architecture"]),
                crop=CropSpec.from_card(dict(raw["crop"])),
                tumour_gate_mm=_gate(raw),
                weights=str(raw.get("weights", "model.safetensors")),
                sha256=raw.get("sha256"),
                raw=raw,
            )


#: A voxel axis at least this many times the others' spacing is the slice axis; below
#: (near-isotropic CT), the axis closest to the patient's head-feet direction is.
THICK_AXIS_RATIO = 1.2


def slice_axis(affine: FArr) -> int:
    """The through-plane axis of an axial stack.

    The largest voxel spacing (the last axis on ties) when it is clearly the largest
    (``THICK_AXIS_RATIO``); otherwise the axis most parallel to patient S.
    """
    m = np.asarray(affine, dtype=np.float64)[:3, :3]
    sp = np.linalg.norm(m, axis=0)
    thick = int(len(sp) - 1 - np.argmax(sp[::-1]))
    others = np.delete(sp, thick)
    if sp[thick] >= THICK_AXIS_RATIO * others.max():
        return thick
    return int(np.argmax(np.abs(m[2]) / sp))


#: The canal models read axial slices: an axial stack angled to the spine (an oblique
#: axial T2 follows the local curve; lumbosacral and cervical ones lean 20-40 deg) is
#: refined, a sagittal or coronal series (90 deg) is not.
MAX_AXIAL_TILT_DEG = 50.0


def normal_angle_deg(affine: FArr, patient_axis: int) -> float:
    """Angle (deg) between the slice normal (:func:`slice_axis`) and a patient axis
    (0 left-right, 1 anterior-posterior, 2 head-feet), either sense."""
    col = np.asarray(affine, dtype=np.float64)[:3, slice_axis(affine)]
    return float(np.degrees(np.arccos(min(1.0, abs(col[patient_axis]) / np.linalg.norm(col)))))


def axial_tilt_deg(affine: FArr) -> float:
    """Angle (deg) between the slice normal (:func:`slice_axis`) and patient head-feet."""
    return normal_angle_deg(affine, 2)


def crop_frame(affine: FArr, axis: int) -> tuple[FArr, FArr]:
    """In-plane unit vectors of a slice closest to patient left (L) and posterior (P).

    Parameters
    ----------
    affine : ndarray (4, 4)
        Voxel index -> LPS (mm).
    axis : int
        The slice axis (:func:`slice_axis`).

    Returns
    -------
    e_l, e_p : ndarray (3,)
        Orthonormal, in the slice plane; ``e_l`` the projection of L, ``e_p`` completes it
        and points posterior. For a plane nearly perpendicular to L (sagittal) the
        projection of P is taken first.
    """
    n = np.asarray(affine, dtype=np.float64)[:3, axis]
    n = n / np.linalg.norm(n)
    lvec, pvec = np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])
    e_l = lvec - (lvec @ n) * n
    if np.linalg.norm(e_l) < 0.3:
        e_p = pvec - (pvec @ n) * n
        e_p /= np.linalg.norm(e_p)
        e_l = np.cross(e_p, n)
        return (e_l if e_l[0] >= 0 else -e_l), e_p
    e_l /= np.linalg.norm(e_l)
    e_p = np.cross(n, e_l)
    return e_l, (e_p if e_p[1] >= 0 else -e_p)


def crop_points(centre: FArr, e_l: FArr, e_p: FArr, size_px: int, pixel_mm: float) -> FArr:
    """LPS points (size, size, 3) of a square crop centred on ``centre``; axis 0 along L."""
    g = (np.arange(size_px) - (size_px - 1) / 2.0) * pixel_mm
    return np.asarray(centre)[None, None] + g[:, None, None] * e_l + g[None, :, None] * e_p


def normalise_crop(
    img: npt.NDArray[Any], window: tuple[float, float] | None = None
) -> npt.NDArray[np.float32]:
    """Scale a crop to about [0, 1].

    With ``window`` (CT, HU) that window maps to [0, 1], clipped; without, the crop's own
    1st and 99th percentiles do (MR has no units), clipped to [-0.5, 1.5].
    """
    if window is not None:
        lo, hi = window
        return np.clip((img - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)
    lo, hi = np.percentile(img, [1.0, 99.0])
    return np.clip((img - lo) / max(float(hi - lo), 1e-6), -0.5, 1.5).astype(np.float32)


def canal_centres(
    structures: npt.NDArray[np.integer], axis: int, tumour_fallback: bool = True
) -> dict[int, FArr]:
    """Per slice index (ascending): voxel-index centre of the canal.

    The centroid of sac + cord; with ``tumour_fallback``, of any canal label on slices
    where sac and cord are (almost) absent. Slices with fewer than 3 such voxels are left
    out.
    """
    st = np.moveaxis(np.asarray(structures), axis, -1)
    out: dict[int, FArr] = {}
    for k in range(st.shape[-1]):
        sl = st[..., k]
        m = np.isin(sl, (L.SAC, L.CORD))
        if m.sum() < 3 and tumour_fallback:
            m = np.isin(sl, (L.SAC, L.CORD, L.EPIDURAL))
        if m.sum() < 3:
            continue
        ijk = np.insert(np.argwhere(m).mean(0), axis, float(k))
        out[k] = ijk
    return out


def crop_footprint(
    shape: tuple[int, ...],
    axis: int,
    k: int,
    affine: FArr,
    centre: FArr,
    e_l: FArr,
    e_p: FArr,
    prob: npt.NDArray[np.floating],
    pixel_mm: float,
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.float64]] | None:
    """The source voxels of slice ``k`` under a crop, and the crop's probabilities there.

    ``prob`` (classes, n, n) is sampled bilinearly at each source pixel of the crop's
    footprint. Returns voxel indices (m, 3) and probabilities (classes, m), or None when
    the crop misses the slice.
    """
    n = prob.shape[-1]
    half = (n - 1) / 2.0
    # only the slice's pixels within the crop's bounding box (a 512 x 512 CT slice has
    # 260,000 pixels, the crop's footprint a few thousand)
    corners = np.array([[a, b] for a in (-half, half) for b in (-half, half)]) * pixel_mm
    lps = centre + corners[:, :1] * e_l + corners[:, 1:] * e_p
    ijk = lps_to_index(lps, affine)
    ranges = []
    for ax in range(3):
        if ax == axis:
            ranges.append(np.array([k]))
            continue
        lo = max(0, int(np.floor(ijk[:, ax].min())))
        hi = min(shape[ax] - 1, int(np.ceil(ijk[:, ax].max())))
        if hi < lo:
            return None
        ranges.append(np.arange(lo, hi + 1))
    idx = np.stack(np.meshgrid(*ranges, indexing="ij"), axis=-1).reshape(-1, 3)
    rel = index_to_lps(idx, affine) - centre
    u, v = rel @ e_l / pixel_mm + half, rel @ e_p / pixel_mm + half
    inside = (u >= 0) & (u <= n - 1) & (v >= 0) & (v <= n - 1)
    if not inside.any():
        return None
    pv = np.stack(
        [
            ndimage.map_coordinates(prob[c], [u[inside], v[inside]], order=1)
            for c in range(len(prob))
        ]
    )
    return idx[inside], pv


def paste_labels(
    out: npt.NDArray[np.int16],
    sub: npt.NDArray[np.intp],
    pv: npt.NDArray[np.floating],
    codes: npt.NDArray[np.int16],
    replace: tuple[int, ...],
) -> None:
    """Give voxels ``sub`` the code of their arg-max class where they hold one of
    ``replace`` (in place); other labels are kept."""
    new = codes[np.argmax(pv, axis=0)]
    cur = out[sub[:, 0], sub[:, 1], sub[:, 2]]
    keep = ~np.isin(cur, replace)
    out[sub[:, 0], sub[:, 1], sub[:, 2]] = np.where(keep, cur, new)


def paste_slice(
    out: npt.NDArray[np.int16],
    axis: int,
    k: int,
    affine: FArr,
    centre: FArr,
    e_l: FArr,
    e_p: FArr,
    prob: npt.NDArray[np.floating],
    pixel_mm: float,
    codes: npt.NDArray[np.int16] = CANAL_CODES,
    replace: tuple[int, ...] = (0, L.SAC, L.CORD, L.EPIDURAL),
) -> None:
    """Write a crop's arg-max labels onto slice ``k`` of ``out`` (in place).

    ``prob`` (classes, n, n) is sampled at each source pixel of the crop's footprint
    (:func:`crop_footprint`); there, voxels labelled one of ``replace`` take the structure
    code (``codes``) of the arg-max class, other structure labels are kept (the canal model
    leaves bone lesions and discs alone, the lesion model the canal and discs).
    """
    got = crop_footprint(out.shape, axis, k, affine, centre, e_l, e_p, prob, pixel_mm)
    if got is not None:
        paste_labels(out, got[0], got[1], codes, replace)


@dataclass
class SliceCrops:
    """The crops of an axial series: slice axis, in-plane axes, slice indices, crop
    centres (LPS, by slice index) and the crops (one per slice, in that order)."""

    axis: int
    e_l: FArr
    e_p: FArr
    slices: list[int]
    centres: dict[int, FArr]
    crops: npt.NDArray[np.float32]


class SliceRefiner:
    """A 2-D slice model (its card, weights and device), loaded once per process.

    Subclasses name the ``classes`` their card must declare (:class:`CanalRefiner`,
    :class:`pipeline.segment.lesion.LesionRefiner`).
    """

    classes: ClassVar[tuple[str, ...]] = CANAL_CLASSES
    _cache: ClassVar[dict[tuple[type, str, str], Any]] = {}

    def __init__(self, model: str | Path, device: torch.device) -> None:
        from pipeline.segment.model import load_network

        self.card = CanalCard.load(model, classes=self.classes)
        self.device = device
        self.net = load_network(self.card, device)  # type: ignore[arg-type]

    @classmethod
    def cached(cls: type[_R], model: str | Path, device: torch.device) -> _R:
        """One instance per (class, model, device) per process."""
        key = (cls, str(model), str(device))
        if key not in SliceRefiner._cache:
            SliceRefiner._cache[key] = cls(model, device)
        return SliceRefiner._cache[key]

    def slice_crops(
        self, image: npt.NDArray[Any], affine: FArr, structures: npt.NDArray[np.integer]
    ) -> SliceCrops:
        """The crops of every slice through the canal of ``structures`` (the card's
        :class:`CropSpec`, centred by its offset from each slice's canal centre)."""
        axis = slice_axis(affine)
        e_l, e_p = crop_frame(affine, axis)
        spec = self.card.crop
        found = canal_centres(np.asarray(structures), axis)
        ks = sorted(found)
        cen = {k: spec.centre_on(index_to_lps(found[k], affine), e_p) for k in ks}
        img = np.asarray(image, dtype=np.float32)
        n = spec.size_px
        crops = (
            np.stack([spec.sample(img, affine, cen[k], e_l, e_p) for k in ks])
            if ks
            else np.zeros((0, n, n), np.float32)
        )
        return SliceCrops(axis, e_l, e_p, ks, cen, crops)

    def _predict(self, crops: npt.NDArray[np.float32], batch: int = 32) -> npt.NDArray[np.float32]:
        """Class probabilities (m, classes, n, n) of crops (m, n, n)."""
        outs = []
        with torch.inference_mode():
            for i in range(0, len(crops), batch):
                x = torch.from_numpy(crops[i : i + batch, None]).to(self.device)
                outs.append(torch.softmax(self.net(x).float(), dim=1).cpu().numpy())
        return np.concatenate(outs)


_R = TypeVar("_R", bound=SliceRefiner)


class CanalRefiner(SliceRefiner):
    """Loads a canal model once and refines the canal labels of axial slices."""

    def __init__(self, model: str | Path, device: torch.device) -> None:
        super().__init__(model, device)
        self.tumour_gate_mm = self.card.tumour_gate_mm

    def refine(
        self, image: npt.NDArray[Any], affine: FArr, structures: npt.NDArray[np.integer]
    ) -> tuple[npt.NDArray[np.int16], int]:
        """Canal labels re-segmented slice by slice; returns the new map and slices done.

        Parameters
        ----------
        image : ndarray
            The axial series (any array order; ``affine`` maps its indices to LPS), of the
            modality the model was trained on.
        affine : ndarray (4, 4)
        structures : ndarray
            The coarse structures map on the same grid.
        """
        out = np.asarray(structures).astype(np.int16, copy=True)
        sc = self.slice_crops(image, affine, out)
        if not sc.slices:
            return out, 0
        prob = self._predict(sc.crops)
        if self.tumour_gate_mm is not None:
            self._gate_tumour(prob, [sc.centres[k] for k in sc.slices], sc.e_l, sc.e_p, affine, out)
        for k, pk in zip(sc.slices, prob, strict=True):
            paste_slice(out, sc.axis, k, affine, sc.centres[k], sc.e_l, sc.e_p, pk,
                        self.card.pixel_mm)  # fmt: skip
        return out, len(sc.slices)

    def _gate_tumour(
        self,
        prob: npt.NDArray[np.float32],
        centres: list[FArr],
        e_l: FArr,
        e_p: FArr,
        affine: FArr,
        coarse: npt.NDArray[np.integer],
    ) -> None:
        """No epidural tumour (probability 0) farther than the gate from the coarse tumour.

        Epidural metastases grow from a vertebral lesion into the canal (Bilsky et al.,
        J Neurosurg Spine 2010;13:324-8), and the 3-D model sees each vertebra and its
        lesion in context: epidural tumour is kept only within ``tumour_gate_mm`` of the
        coarse model's epidural tumour or osseous lesion; the 2-D model redraws *where* it
        is. On CT without intrathecal contrast, normal epidural soft tissue (ligamentum
        flavum, veins) is close to tumour in attenuation, and the 2-D crop alone cannot
        tell them apart.
        """
        from scipy.spatial import cKDTree

        src = np.argwhere(np.isin(np.asarray(coarse), (L.EPIDURAL, L.LYTIC, L.BLASTIC)))
        src = src[:: max(1, len(src) // 200_000)]  # a 10 mm gate needs no voxel-exact source
        n = prob.shape[-1]
        if len(src) == 0:
            prob[:, CANAL_CLASSES.index("epidural")] = 0.0
            return
        tree = cKDTree(index_to_lps(src, affine))
        gate = float(self.tumour_gate_mm)  # type: ignore[arg-type]
        for i, c in enumerate(centres):
            pts = crop_points(c, e_l, e_p, n, self.card.pixel_mm).reshape(-1, 3)
            d, _ = tree.query(pts, distance_upper_bound=gate + 1e-6)
            far = ~np.isfinite(d).reshape(n, n)
            prob[i, CANAL_CLASSES.index("epidural")][far] = 0.0
