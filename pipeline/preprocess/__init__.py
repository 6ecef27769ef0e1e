"""Preprocessing for the segmentation models: grid resampling and intensity normalisation.

Everything works on canonical :class:`~pipeline.io.volume.Volume` objects (loaders return
them) and on torch tensors, so the same code runs on CPU and GPU.
"""

from pipeline.preprocess.normalise import model_input, normalise_intensity
from pipeline.preprocess.resample import (
    channel_argmax,
    resample_labels_nearest,
    resample_to_spacing,
    sample_labels_on_grid,
    sample_tensor_on_grid,
    scaled_grid,
)

__all__ = [
    "channel_argmax",
    "model_input",
    "normalise_intensity",
    "resample_labels_nearest",
    "resample_to_spacing",
    "sample_labels_on_grid",
    "sample_tensor_on_grid",
    "scaled_grid",
]
