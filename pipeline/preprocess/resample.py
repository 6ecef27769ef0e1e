"""Resampling between voxel grids with exact patient geometry.

Two kinds of grids appear: the source grid of a study, and the *model grid*, which has
the same direction cosines and extent but isotropic (or other target) spacing. Values
move between grids by sampling in patient space, so any affine pair works.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from scipy import ndimage

from pipeline.io.volume import Volume


def scaled_grid(
    affine: npt.NDArray[np.float64], shape: tuple[int, int, int], spacing: float | tuple[float, ...]
) -> tuple[npt.NDArray[np.float64], tuple[int, int, int]]:
    """Affine and shape of a grid covering the same extent at another spacing.

    Voxels are treated as boxes: the new grid spans exactly the same box as the old one
    (the spacing is adjusted by at most half a voxel so that it does).
    """
    aff = np.asarray(affine, dtype=np.float64)
    old = np.linalg.norm(aff[:3, :3], axis=0)
    target = np.broadcast_to(np.asarray(spacing, dtype=np.float64), (3,))
    n_old = np.asarray(shape, dtype=np.float64)
    n_new = np.maximum(1, np.rint(n_old * old / target)).astype(int)
    scale = n_old / n_new  # new spacing / old spacing per axis
    new = aff.copy()
    new[:3, :3] = aff[:3, :3] * scale
    new[:3, 3] = aff[:3, 3] + aff[:3, :3] @ (0.5 * scale - 0.5)
    return new, (int(n_new[0]), int(n_new[1]), int(n_new[2]))


def resample_to_spacing(
    vol: Volume, spacing: float | tuple[float, ...], mode: str = "trilinear"
) -> Volume:
    """Resample a volume onto a grid of the given spacing (same directions and extent)."""
    aff, shape = scaled_grid(vol.affine, vol.shape, spacing)
    if shape == vol.shape:
        return Volume(vol.array.astype(np.float32), aff, vol.modality, dict(vol.meta))
    t = torch.from_numpy(np.ascontiguousarray(vol.array, dtype=np.float32))[None, None]
    if mode == "nearest":
        out = F.interpolate(t, size=shape, mode="nearest-exact")
    else:
        out = F.interpolate(t, size=shape, mode="trilinear", align_corners=False)
    return Volume(out[0, 0].numpy(), aff, vol.modality, dict(vol.meta))


def _target_to_source_matrix(
    src_affine: npt.NDArray[np.float64], dst_affine: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """4x4 matrix mapping target voxel indices to source voxel indices."""
    return np.linalg.inv(np.asarray(src_affine, dtype=np.float64)) @ np.asarray(
        dst_affine, dtype=np.float64
    )


def _source_index_chunks(
    src_affine: npt.NDArray[np.float64],
    dst_affine: npt.NDArray[np.float64],
    dst_shape: tuple[int, int, int],
    chunk_voxels: int,
    device: torch.device,
) -> Iterator[torch.Tensor]:
    """Fractional source indices (i, j, k, 3) of every target voxel, in chunks along the
    target's last axis (bounded memory)."""
    m = torch.as_tensor(
        _target_to_source_matrix(src_affine, dst_affine), dtype=torch.float32, device=device
    )
    ni, nj, nk = dst_shape
    per_k = max(1, chunk_voxels // max(1, ni * nj))
    ii = torch.arange(ni, dtype=torch.float32, device=device)
    jj = torch.arange(nj, dtype=torch.float32, device=device)
    for k0 in range(0, nk, per_k):
        kk = torch.arange(k0, min(nk, k0 + per_k), dtype=torch.float32, device=device)
        gi, gj, gk = torch.meshgrid(ii, jj, kk, indexing="ij")
        yield torch.stack([gi, gj, gk], dim=-1) @ m[:3, :3].T + m[:3, 3]


def _grid_sample_at(
    inp: torch.Tensor, idx: torch.Tensor, src_shape: torch.Tensor, mode: str
) -> torch.Tensor:
    """``grid_sample`` of a (1, C, I, J, K) input at fractional source indices (..., 3)."""
    # align_corners=True: -1 -> index 0, +1 -> index n-1; the grid's last dim is (x, y, z)
    # = (K, J, I) of the input; points outside take the border value.
    norm = 2.0 * idx / torch.clamp(src_shape - 1, min=1.0) - 1.0
    grid = norm.flip(-1)[None].to(inp.dtype)
    return F.grid_sample(inp, grid, mode=mode, padding_mode="border", align_corners=True)[0]


def sample_tensor_on_grid(
    data: torch.Tensor,
    src_affine: npt.NDArray[np.float64],
    dst_affine: npt.NDArray[np.float64],
    dst_shape: tuple[int, int, int],
    reduce: Any = None,
    mode: str = "bilinear",
    chunk_voxels: int = 4_000_000,
) -> torch.Tensor:
    """Sample a (C, I, J, K) tensor given on ``src_affine`` at every voxel of a target grid.

    Works in chunks along the target's last axis to bound memory. ``reduce``, if given, is
    applied to each (C, i, j, k) chunk (e.g. ``lambda x: x.argmax(0)``) before the chunks
    are concatenated, so that full-resolution multi-channel data is never held at once.
    Points outside the source take the border value (``padding_mode="border"``).
    """
    src_shape = torch.tensor(data.shape[1:], dtype=torch.float32, device=data.device)
    inp = (
        data[None].float()
        if data.dtype not in (torch.float32, torch.float16, torch.bfloat16)
        else data[None]
    )
    out = []
    for idx in _source_index_chunks(src_affine, dst_affine, dst_shape, chunk_voxels, data.device):
        chunk = _grid_sample_at(inp, idx, src_shape, mode)
        out.append(reduce(chunk) if reduce is not None else chunk)
    return torch.cat(out, dim=-1)


def channel_argmax(c: torch.Tensor) -> torch.Tensor:
    """argmax over dim 0 as uint8, by a running maximum (a strided argmax is slow on CPU)."""
    best = c[0].clone()
    arg = torch.zeros(c.shape[1:], dtype=torch.uint8, device=c.device)
    for ch in range(1, c.shape[0]):
        better = c[ch] > best
        best = torch.where(better, c[ch], best)
        arg[better] = ch
    return arg


def sample_labels_on_grid(
    logits: torch.Tensor,
    nearest: torch.Tensor,
    src_affine: npt.NDArray[np.float64],
    dst_affine: npt.NDArray[np.float64],
    dst_shape: tuple[int, int, int],
    chunk_voxels: int = 4_000_000,
    labels: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Class labels of (C, I, J, K) ``logits`` and nearest values of (D, I, J, K) integer
    maps ``nearest``, both given on ``src_affine``, at every voxel of a target grid.

    The label is the argmax of the trilinearly interpolated logits, as
    ``sample_tensor_on_grid(logits, ..., reduce=argmax)`` gives, but interpolated only
    where it can change: a convex combination of logit vectors that share their argmax
    has that argmax, so a target voxel whose 8 surrounding source voxels agree takes their
    label directly. On a fine CT grid this skips most of the interpolation work. Points
    outside the source take the border value. ``labels``, the argmax of ``logits`` on the
    source grid, is computed when not given. Returns (uint8 labels, int16 nearest maps).
    """
    dev = logits.device
    top = torch.tensor(logits.shape[1:], device=dev) - 1  # last index per axis
    lab = channel_argmax(logits) if labels is None else labels.to(torch.uint8)
    # Per source cell (corner index f, cells at the top border replicated): all 8 agree?
    pad = F.pad(lab[None, None].float(), (0, 1, 0, 1, 0, 1), mode="replicate")[0, 0]
    agree = torch.ones(lab.shape, dtype=torch.bool, device=dev)
    ni, nj, nk = lab.shape
    for di in (0, 1):
        for dj in (0, 1):
            for dk in (0, 1):
                agree &= pad[di : di + ni, dj : dj + nj, dk : dk + nk] == lab
    inp = logits[None].float()
    chunks, near = [], []
    for idx in _source_index_chunks(src_affine, dst_affine, dst_shape, chunk_voxels, dev):
        idx = torch.minimum(torch.clamp(idx, min=0.0), top.float())  # border padding
        f = torch.minimum(idx.floor().long(), top)
        out = lab[f[..., 0], f[..., 1], f[..., 2]]
        mixed = ~agree[f[..., 0], f[..., 1], f[..., 2]]
        if mixed.any():
            val = _grid_sample_at(inp, idx[mixed].view(1, 1, -1, 3), top.float() + 1, "bilinear")
            out[mixed] = channel_argmax(val[:, 0, 0])
        chunks.append(out)
        r = torch.minimum(torch.round(idx).long(), top)
        near.append(nearest[:, r[..., 0], r[..., 1], r[..., 2]].to(torch.int16))
    return torch.cat(chunks, dim=-1), torch.cat(near, dim=-1)


def resample_labels_nearest(
    labels: npt.NDArray[Any],
    src_affine: npt.NDArray[np.float64],
    dst_affine: npt.NDArray[np.float64],
    dst_shape: tuple[int, int, int],
    chunk_voxels: int = 8_000_000,
) -> npt.NDArray[Any]:
    """Nearest-neighbour resampling of an integer label map onto a target grid.

    Target voxels whose centre falls outside the source grid get 0. When both grids are
    the same, the labels are returned unchanged (exact geometry, no rounding drift).
    """
    src_affine = np.asarray(src_affine, dtype=np.float64)
    dst_affine = np.asarray(dst_affine, dtype=np.float64)
    if labels.shape == tuple(dst_shape) and np.allclose(src_affine, dst_affine, atol=1e-4):
        return labels.copy()
    m = _target_to_source_matrix(src_affine, dst_affine)
    # Pure axis permutation/flip/integer shift: index exactly, no interpolation.
    ni, nj, nk = dst_shape
    out = np.zeros(dst_shape, dtype=labels.dtype)
    per_k = max(1, chunk_voxels // max(1, ni * nj))
    gi, gj = np.meshgrid(np.arange(ni), np.arange(nj), indexing="ij")
    for k0 in range(0, nk, per_k):
        k1 = min(nk, k0 + per_k)
        kk = np.arange(k0, k1)
        pts = (
            np.stack(
                [
                    np.repeat(gi[..., None], k1 - k0, -1),
                    np.repeat(gj[..., None], k1 - k0, -1),
                    np.broadcast_to(kk, (ni, nj, k1 - k0)),
                ],
                axis=0,
            )
            .reshape(3, -1)
            .astype(np.float64)
        )
        src = m[:3, :3] @ pts + m[:3, 3:4]
        out[:, :, k0:k1] = ndimage.map_coordinates(
            labels, np.rint(src), order=0, mode="constant", cval=0, prefilter=False
        ).reshape(ni, nj, k1 - k0)
    return out
