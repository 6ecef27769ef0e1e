"""The model shipped in models/ loads by name from its card and segments a small study."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from pipeline.paths import models_dir
from pipeline.segment import get_segmenter
from pipeline.segment.model import DEFAULT_MODEL, ModelCard, file_sha256


def _shipped_folders() -> list:
    """The default model and the thin-input model its card names."""
    main = models_dir() / DEFAULT_MODEL
    thin = yaml.safe_load((main / "card.yaml").read_text())["inference"].get("thin_input")
    return [main] + ([models_dir() / thin["model"]] if thin else [])


@pytest.mark.parametrize("folder", _shipped_folders(), ids=lambda p: p.name)
def test_card_names_everything_the_contract_asks_for(folder) -> None:
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
    assert card["name"] == folder.name


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


def test_on_the_real_ct_sac_and_cord_stay_in_the_spinal_canal() -> None:
    """The contrast-filled aorta of ts-example looks like a canal to the model; the
    output keeps only the canal that runs with the spine (TotalSegmentator's cord as
    the reference)."""
    from pathlib import Path

    from pipeline import labels as L
    from pipeline.io import open_study, read_nifti

    data = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "ts-example-ct-dicom"
    if not (data / "dicom").exists():
        pytest.skip("ts-example-ct-dicom not available")
    vol = next(iter(open_study(data / "dicom").volumes.values()))
    res = get_segmenter("builtin", device="cpu").segment(vol)
    ref = read_nifti(data / "example_seg_dicom_totalseg_fast.nii.gz")

    def lps(mask: np.ndarray, affine: np.ndarray) -> np.ndarray:
        return np.argwhere(mask) @ affine[:3, :3].T + affine[:3, 3]

    canal = lps(np.isin(res.structures.array, (L.SAC, L.CORD)), res.structures.affine)
    cord_ref = lps(ref.array == 79, ref.affine)  # TotalSegmentator: spinal_cord
    assert len(canal) > 500
    centre = cord_ref[:, :2].mean(0)  # the canal runs nearly straight over 40 mm
    assert np.linalg.norm(canal[:, :2] - centre, axis=1).max() < 15.0
