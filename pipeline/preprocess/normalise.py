"""Intensity normalisation and the model's input channels.

One rule for CT and MR: robust percentiles (0.5 %, 99.5 %) of the whole volume map to 0
and 1. The model is trained on domain-randomised synthetic images (random intensity per
tissue, already in [0, 1]) mixed with realistic CT (HU) and MR renders; a percentile rule
puts all of them, and real scans, on the same footing. The modality still enters as a
separate CT-flag channel.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import torch

from pipeline.io.volume import Modality

PERCENTILES = (0.5, 99.5)
CLIP = (-0.5, 1.5)


def normalise_intensity(
    array: npt.NDArray[np.floating] | torch.Tensor, modality: Modality
) -> torch.Tensor:
    """Map raw intensities to the model's scale (float32 tensor, same shape).

    ``modality`` is accepted for symmetry with :func:`model_input`; the rule is the same.
    """
    t = torch.as_tensor(array, dtype=torch.float32)
    flat = t.reshape(-1)
    step = max(1, flat.numel() // 1_000_000)  # quantile on a subsample: fast, stable
    sample = flat[::step]
    lo, hi = torch.quantile(sample, torch.tensor([p / 100 for p in PERCENTILES]))
    scale = torch.clamp(hi - lo, min=1e-6)
    return torch.clamp((t - lo) / scale, *CLIP)


def model_input(array: npt.NDArray[np.floating] | torch.Tensor, modality: Modality) -> torch.Tensor:
    """Two input channels (C=2, I, J, K): normalised intensity and a CT flag (1 CT, 0 MR)."""
    x = normalise_intensity(array, modality)
    flag = torch.full_like(x, 1.0 if modality == "CT" else 0.0)
    return torch.stack([x, flag], dim=0)
