"""Training recipe for the built-in segmentation model (``spinemet train``).

:mod:`pipeline.train.cache` renders training pairs (synthetic, domain-randomised; or a
user's labelled NIfTI cases) once onto the model grid; :mod:`pipeline.train.loop` trains
on random patches from that cache, resumably, and exports weights + card to ``models/``.
"""

from pipeline.train.config import TrainConfig, load_train_config

__all__ = ["TrainConfig", "load_train_config"]
