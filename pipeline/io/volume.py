"""The in-memory volume type shared by every stage.

Coordinate conventions
----------------------
* Patient coordinates are DICOM LPS, in millimetres: +x toward the patient's Left,
  +y toward Posterior, +z toward Superior (head).
* ``Volume.array`` is indexed ``array[i, j, k]`` (x-like, y-like, z-like voxel axes) and
  ``Volume.affine`` maps voxel indices to LPS: ``lps = affine @ [i, j, k, 1]``. Voxel
  centres sit at integer indices.
* Canonical array orientation (what the loaders return): the axes are permuted and
  flipped (never resampled) so that axis 0 is the one closest to +L, axis 1 closest to
  +P and axis 2 closest to +S. For an ordinary axial CT this means ``i`` runs right to
  left, ``j`` anterior to posterior and ``k`` feet to head. Oblique acquisitions keep
  their exact (non-diagonal) direction cosines in the affine; only the closest-axis
  order is canonical. Anything that speaks of "anterior" or "superior" must still use
  the affine, not the array axes.
* NIfTI files are RAS; the conversion flips the first two rows of the affine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

Modality = Literal["CT", "MR"]

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


@dataclass
class Volume:
    """A 3-D image with exact patient geometry.

    Attributes
    ----------
    array : ndarray, shape (ni, nj, nk)
        Voxel values; float32 Hounsfield units for CT, arbitrary float32 for MR.
    affine : ndarray, shape (4, 4)
        Voxel index to LPS millimetres.
    modality : {"CT", "MR"}
        Imaging modality (for NIfTI: given by the user or guessed, see ``meta``).
    meta : dict
        Non-identifying description: series description, weighting, plane, source
        (file paths or SOP Instance UIDs), warnings. Never patient name / ID / dates.
    """

    array: npt.NDArray[Any]
    affine: npt.NDArray[np.float64]
    modality: Modality
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.array.ndim != 3:
            raise ValueError(f"Volume.array must be 3-D, got shape {self.array.shape}")
        self.affine = np.asarray(self.affine, dtype=np.float64)
        if self.affine.shape != (4, 4):
            raise ValueError(f"Volume.affine must be 4x4, got {self.affine.shape}")

    @property
    def shape(self) -> tuple[int, int, int]:
        """Array shape ``(ni, nj, nk)``."""
        return tuple(int(s) for s in self.array.shape)  # type: ignore[return-value]

    @property
    def spacing(self) -> npt.NDArray[np.float64]:
        """Voxel size along i, j, k in millimetres (column norms of the affine)."""
        return np.linalg.norm(self.affine[:3, :3], axis=0)

    @property
    def direction(self) -> npt.NDArray[np.float64]:
        """Unit direction cosines of the i, j, k axes as columns (3x3)."""
        return self.affine[:3, :3] / self.spacing

    @property
    def origin(self) -> npt.NDArray[np.float64]:
        """LPS position of voxel (0, 0, 0) in millimetres."""
        return self.affine[:3, 3].copy()

    def index_to_lps(self, ijk: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Map voxel indices, shape (..., 3), to LPS millimetres."""
        return index_to_lps(ijk, self.affine)

    def lps_to_index(self, lps: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Map LPS millimetres, shape (..., 3), to (fractional) voxel indices."""
        return lps_to_index(lps, self.affine)

    def with_array(self, array: npt.NDArray[Any], **meta: Any) -> Volume:
        """Return a volume on the same grid holding another array (e.g. a label map)."""
        if array.shape != self.array.shape:
            raise ValueError(f"shape {array.shape} differs from the grid {self.array.shape}")
        return Volume(array, self.affine.copy(), self.modality, {**self.meta, **meta})

    def to_canonical(self) -> Volume:
        """Permute and flip axes (no resampling) to the canonical L, P, S order."""
        perm, flips = canonical_axes(self.affine)
        arr = np.transpose(self.array, perm)
        aff = self.affine.copy()
        aff[:, :3] = self.affine[:, list(perm)]
        for ax, flip in enumerate(flips):
            if flip:
                n = arr.shape[ax]
                arr = np.flip(arr, axis=ax)
                aff[:3, 3] = aff[:3, 3] + aff[:3, ax] * (n - 1)
                aff[:3, ax] = -aff[:3, ax]
        return Volume(np.ascontiguousarray(arr), aff, self.modality, dict(self.meta))


def canonical_axes(affine: npt.ArrayLike) -> tuple[tuple[int, int, int], tuple[bool, bool, bool]]:
    """Axis permutation and flips that bring an affine closest to L, P, S order.

    Returns
    -------
    perm : tuple of int
        ``perm[a]`` is the source axis that becomes axis ``a``.
    flips : tuple of bool
        Whether new axis ``a`` must be reversed so it points toward +L/+P/+S.
    """
    cols = np.asarray(affine, dtype=np.float64)[:3, :3]
    cols = cols / np.linalg.norm(cols, axis=0)
    # Greedy on the largest absolute cosine, so an oblique stack still gets a permutation.
    remaining_src, remaining_dst = [0, 1, 2], [0, 1, 2]
    perm = [0, 0, 0]
    flips = [False, False, False]
    absd = np.abs(cols)
    for _ in range(3):
        sub = absd[np.ix_(remaining_dst, remaining_src)]
        d_i, s_i = np.unravel_index(int(np.argmax(sub)), sub.shape)
        dst, src = remaining_dst[d_i], remaining_src[s_i]
        perm[dst] = src
        flips[dst] = bool(cols[dst, src] < 0)
        remaining_dst.remove(dst)
        remaining_src.remove(src)
    return (perm[0], perm[1], perm[2]), (flips[0], flips[1], flips[2])


def index_to_lps(ijk: npt.ArrayLike, affine: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Map voxel indices, shape (..., 3), to LPS millimetres through a 4x4 ``affine``."""
    aff = np.asarray(affine, dtype=np.float64)
    return np.asarray(ijk, dtype=np.float64) @ aff[:3, :3].T + aff[:3, 3]


def lps_to_index(lps: npt.ArrayLike, affine: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Map LPS millimetres, shape (..., 3), to (fractional) voxel indices of ``affine``."""
    aff = np.asarray(affine, dtype=np.float64)
    return (np.asarray(lps, dtype=np.float64) - aff[:3, 3]) @ np.linalg.inv(aff[:3, :3]).T


def sample_at_points(
    arr: npt.ArrayLike, affine: npt.ArrayLike, pts: npt.ArrayLike, order: int, cval: float = 0.0
) -> npt.NDArray[Any]:
    """Values of a volume at LPS points, shape (..., 3), through its 4x4 ``affine``.

    ``order`` 0 is nearest neighbour, 1 linear; points outside the grid read ``cval``.
    Coordinates within 1e-6 of a whole voxel index are snapped to it: points in a slice's
    own plane land on that slice index only up to rounding, and a first slice at -1e-15
    would otherwise read as outside.
    """
    from scipy import ndimage

    ijk = lps_to_index(pts, affine)
    near = np.rint(ijk)
    ijk = np.where(np.abs(ijk - near) < 1e-6, near, ijk)
    return ndimage.map_coordinates(
        np.asarray(arr), [ijk[..., 0], ijk[..., 1], ijk[..., 2]], order=order, mode="constant",
        cval=cval,
    )  # fmt: skip
