"""Synthetic spine studies with ground truth by construction.

* :func:`make_training_pair`: fast in-memory image + label maps for training.
* :mod:`pipeline.synth.world`: the continuous world model, sampled onto any grid.
"""

from pipeline.synth.training import make_training_pair

__all__ = ["make_training_pair"]
