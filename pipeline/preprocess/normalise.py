"""Intensity normalisation and the model's input channels."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import torch

from pipeline.io.volume import Modality

# CT: Hounsfield units clipped to this window, then scaled so that water = 0, 1000 HU = 1.
CT_WINDOW = (-1000.0, 2000.0)
# MR: robust percentiles mapped to 0 and 1 (no physical unit, scanner dependent).
MR_PERCENTILES = (0.5, 99.5)


def normalise_intensity(
    array: npt.NDArray[np.floating] | torch.Tensor, modality: Modality
) -> torch.Tensor:
    """Map raw intensities to the model's scale (float32 tensor, same shape)."""
    t = torch.as_tensor(array, dtype=torch.float32)
    if modality == "CT":
        return torch.clamp(t, *CT_WINDOW) / 1000.0
    flat = t.reshape(-1)
    step = max(1, flat.numel() // 1_000_000)  # quantile on a subsample: fast, stable
    sample = flat[::step]
    lo, hi = torch.quantile(sample, torch.tensor([p / 100 for p in MR_PERCENTILES]))
    scale = torch.clamp(hi - lo, min=1e-6)
    return torch.clamp((t - lo) / scale, -0.5, 1.5)


def model_input(array: npt.NDArray[np.floating] | torch.Tensor, modality: Modality) -> torch.Tensor:
    """Two input channels (C=2, I, J, K): normalised intensity and a CT flag (1 CT, 0 MR)."""
    x = normalise_intensity(array, modality)
    flag = torch.full_like(x, 1.0 if modality == "CT" else 0.0)
    return torch.stack([x, flag], dim=0)
