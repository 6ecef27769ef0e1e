"""The model shipped in models/ loads by name from its card and segments a small study."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from pipeline.paths import models_dir
from pipeline.segment import get_segmenter
from pipeline.segment.model import DEFAULT_MODEL, ModelCard, file_sha256


def test_card_names_everything_the_contract_asks_for() -> None:
    folder = models_dir() / DEFAULT_MODEL
    card = yaml.safe_load((folder / "card.yaml").read_text())
    for key in (
        "architecture",
        "classes",
        "input",
        "spacing_mm",
        "patch_size",
        "training",
        "metrics",
        "sha256",
    ):
        assert key in card, key
    assert card["sha256"] == file_sha256(folder / card["weights"])
    assert (folder / card["weights"]).stat().st_size < 25 * 1024**2


def test_shipped_model_segments_a_small_synthetic_ct() -> None:
    synth = pytest.importorskip("pipeline.synth")
    vol, lab = synth.make_training_pair(123456, "CT", domain_randomised=False, spacing_mm=(2.0, 2.0, 2.0),
                                        shape=(64, 64, 64))  # fmt: skip
    seg = get_segmenter("builtin", device="cpu")
    assert seg.card.name == ModelCard.load(DEFAULT_MODEL).name  # type: ignore[attr-defined]
    res = seg.segment(vol)
    assert res.vertebrae.shape == vol.shape and res.structures.shape == vol.shape
    assert res.meta["model"] == DEFAULT_MODEL
    # The model finds bone where the truth has vertebrae (a loose floor: this is a smoke
    # test; accuracy is measured by benchmarks/eval_segment.py).
    truth = lab["vertebrae"].array > 0
    pred = res.vertebrae.array > 0
    assert truth.any()
    assert 2 * (pred & truth).sum() / (pred.sum() + truth.sum()) > 0.3
    assert np.isin(np.unique(res.structures.array), [0, 1, 2, 3, 4, 5, 6]).all()
    # A card that declares its own status (e.g. below target) says so in every result.
    status = ModelCard.load(DEFAULT_MODEL).raw.get("status")
    if status:
        assert any(w.startswith(f"model {DEFAULT_MODEL}:") for w in res.meta["warnings"])
