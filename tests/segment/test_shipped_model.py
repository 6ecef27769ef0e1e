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


def _canal_folder(modality: str = "MR"):
    """The canal model the main card names for ``modality`` (None: none named)."""
    main = models_dir() / DEFAULT_MODEL
    spec = yaml.safe_load((main / "card.yaml").read_text())["inference"].get("canal_refine")
    entries = spec if isinstance(spec, list) else [spec] if spec else []
    names = [e["model"] for e in entries if modality in e["modalities"]]
    return models_dir() / names[0] if names else None


@pytest.mark.parametrize("modality", ["MR", "CT"])
def test_canal_model_card_and_weights(modality) -> None:
    folder = _canal_folder(modality)
    if folder is None:
        pytest.skip(f"the main card names no canal model for {modality}")
    card = yaml.safe_load((folder / "card.yaml").read_text())
    for key in ("architecture", "classes", "crop", "training", "metrics", "sha256"):
        assert key in card, key
    assert card["sha256"] == file_sha256(folder / card["weights"])
    assert (folder / card["weights"]).stat().st_size < 25 * 1024**2
    assert card["name"] == folder.name
    assert card.get("input", {}).get("modalities", ["MR"]) == [modality]


def test_canal_refinement_reads_axial_slices_only() -> None:
    """A sagittal series is not refined (the canal model reads axial slices)."""
    from pipeline.io import Volume
    from pipeline.segment.builtin import BuiltinSegmenter
    from pipeline.segment.types import SpineSegmentation

    seg = BuiltinSegmenter.cached(DEFAULT_MODEL, "cpu")
    vol = Volume(np.zeros((4, 8, 8), np.float32), np.diag([4.0, 0.7, 0.7, 1.0]), "MR")
    z = vol.with_array(np.zeros((4, 8, 8), np.int16))
    out = seg.refine_canal(vol, SpineSegmentation(z, z, z, meta={"backend": "builtin"}))
    info = out.meta["canal_refine"]
    assert out.structures is z and not info["applied"]
    if _canal_folder() is not None:
        assert "90 deg from axial" in info["note"]


@pytest.mark.parametrize("modality", ["MR", "CT"])
def test_shipped_canal_model_refines_a_synthetic_axial_stack(modality) -> None:
    """Built-in segmentation of an axial T2 (MR) or CT stack, then the canal refinement
    the main card names for that modality."""
    from pipeline import labels as L
    from pipeline.io import Volume
    from pipeline.synth.acquisition import acquire, ct_axial, mr_axial
    from pipeline.synth.generator import StudyOptions, random_world

    folder = _canal_folder(modality)
    if folder is None:
        pytest.skip(f"the main card names no canal model for {modality}")
    # seeds outside every training and cohort range
    rng = np.random.default_rng(9199999 if modality == "MR" else 9299999)
    world, plan = random_world(rng, StudyOptions(grade="2", region="thoracic"))
    level = plan.epidural_level or plan.index_level
    if modality == "MR":
        series = mr_axial(world, rng, level)
    else:
        series = ct_axial(world, rng, centre_level=level, slice_mm=1.5, n_slices=40)
    img, lab = acquire(world, series, rng)
    vol = Volume(img, np.asarray(series.affine), modality)
    seg = get_segmenter("builtin", device="cpu")
    coarse = seg.segment(vol)
    fine = seg.refine_canal(vol, coarse)  # type: ignore[attr-defined]
    info = fine.meta["canal_refine"]
    assert info["applied"] and info["model"] == folder.name
    assert info["slices"] > (5 if modality == "MR" else 20)
    assert "canal_refine_s" in fine.meta["timings"]
    assert (fine.vertebrae.array == coarse.vertebrae.array).all()
    truth = np.asarray(lab["structures"])

    def dice(code: int, st: np.ndarray) -> float:
        t, p = truth == code, st == code
        return float(2 * (t & p).sum() / max(1, t.sum() + p.sum()))

    # Loose floors (a smoke test; eval_escc.py measures the grading): the refined cord
    # overlaps the true cord, and no non-canal label was changed.
    assert dice(L.CORD, fine.structures.array) > 0.6
    other = ~np.isin(coarse.structures.array, (0, L.SAC, L.CORD, L.EPIDURAL))
    assert (fine.structures.array[other] == coarse.structures.array[other]).all()
    if modality == "CT":  # the CT tumour, better than at 2 mm (gated by the coarse tumour)
        assert info["tumour_gate_mm"] == 20.0 and "kept within 20 mm" in info["note"]
        epi_fine = dice(L.EPIDURAL, fine.structures.array)
        assert epi_fine > max(0.4, dice(L.EPIDURAL, coarse.structures.array))


def test_a_card_without_canal_model_leaves_the_segmentation_alone() -> None:
    from pipeline.io import Volume
    from pipeline.segment.builtin import BuiltinSegmenter
    from pipeline.segment.types import SpineSegmentation

    seg = BuiltinSegmenter.cached("spinemet-unet-2mm-slab", "cpu")
    assert not seg.card.raw.get("inference", {}).get("canal_refine")
    vol = Volume(np.zeros((8, 8, 4), np.float32), np.diag([0.7, 0.7, 4.0, 1.0]), "MR")
    z = vol.with_array(np.zeros((8, 8, 4), np.int16))
    out = seg.refine_canal(vol, SpineSegmentation(z, z, z, meta={"backend": "builtin"}))
    assert out.structures is z and not out.meta["canal_refine"]["applied"]
    assert "names no canal model" in out.meta["canal_refine"]["note"]


def _lesion_folder(modality: str = "CT", plane: str = "axial"):
    """The bone-lesion model the main card names for a modality and plane (None: none)."""
    main = models_dir() / DEFAULT_MODEL
    spec = yaml.safe_load((main / "card.yaml").read_text())["inference"].get("lesion_refine")
    entries = spec if isinstance(spec, list) else [spec] if spec else []
    names = [
        e["model"]
        for e in entries
        if modality in e["modalities"] and e.get("plane", "axial") == plane
    ]
    return models_dir() / names[0] if names else None


def _lesion_dice(seg, truth: np.ndarray) -> float:
    """Dice of all osseous lesion labels (lytic or blastic) against the true structures."""
    from pipeline import labels as L

    t = np.isin(truth, (L.LYTIC, L.BLASTIC))
    p = np.isin(seg.structures.array, (L.LYTIC, L.BLASTIC))
    return float(2 * (t & p).sum() / max(1, t.sum() + p.sum()))


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * (a & b).sum() / max(1, a.sum() + b.sum()))


def test_lesion_model_card_and_weights() -> None:
    folder = _lesion_folder()
    if folder is None:
        pytest.skip("the main card names no bone-lesion model")
    card = yaml.safe_load((folder / "card.yaml").read_text())
    for key in ("architecture", "classes", "crop", "training", "metrics", "sha256"):
        assert key in card, key
    assert card["classes"] == ["background", "bone", "lytic", "blastic"]
    assert card["sha256"] == file_sha256(folder / card["weights"])
    assert (folder / card["weights"]).stat().st_size < 25 * 1024**2
    assert card["name"] == folder.name


def test_shipped_lesion_model_finds_a_lytic_lesion_the_3d_model_misses() -> None:
    """Built-in segmentation of a synthetic CT with a lytic lesion, then the bone-lesion
    refinement the main card names: more of the lesion found, only lesion labels (and the
    vertebrae of attached lesion voxels) changed."""
    from pipeline import labels as L
    from pipeline.io import Volume
    from pipeline.synth.acquisition import acquire, ct_axial
    from pipeline.synth.generator import StudyOptions, random_world

    folder = _lesion_folder()
    if folder is None:
        pytest.skip("the main card names no bone-lesion model")
    rng = np.random.default_rng(9399999)  # outside every training and cohort range
    world, plan = random_world(rng, StudyOptions(lesion_type="lytic", region="thoracic"))
    series = ct_axial(world, rng, centre_level=plan.index_level, slice_mm=1.5, n_slices=40)
    img, lab = acquire(world, series, rng)
    vol = Volume(img, np.asarray(series.affine), "CT")
    seg = get_segmenter("builtin", device="cpu")
    coarse = seg.segment(vol)
    fine = seg.refine_lesions(vol, coarse)  # type: ignore[attr-defined]
    info = fine.meta["lesion_refine"]
    assert info["applied"] and info["model"] == folder.name and info["slices"] > 20
    assert "lesion_refine_s" in fine.meta["timings"]
    truth = np.asarray(lab["structures"])
    assert np.isin(truth, (L.LYTIC, L.BLASTIC)).sum() > 100
    assert _lesion_dice(fine, truth) > max(0.5, _lesion_dice(coarse, truth))
    canal = np.isin(coarse.structures.array, (L.SAC, L.CORD, L.EPIDURAL, L.DISC))
    assert (fine.structures.array[canal] == coarse.structures.array[canal]).all()
    # the outline redrawn at 1 mm: closer to the true bone; only voxels below the card's
    # remove_below_hu left it, and the voxels that stayed kept their vertebra
    bone, kept = coarse.vertebrae.array > 0, fine.vertebrae.array > 0
    assert (img[bone & ~kept] < 60).all() and info["bone_reshaped"]["added"] > 0
    assert (fine.vertebrae.array[bone & kept] == coarse.vertebrae.array[bone & kept]).all()
    true_bone = np.asarray(lab["vertebrae"]) > 0
    assert _dice(kept, true_bone) > _dice(bone, true_bone) + 0.01


def test_lesion_refinement_reads_axial_ct_only() -> None:
    from pipeline.io import Volume
    from pipeline.segment.builtin import BuiltinSegmenter
    from pipeline.segment.types import SpineSegmentation

    seg = BuiltinSegmenter.cached(DEFAULT_MODEL, "cpu")
    for vol in (
        Volume(np.zeros((4, 8, 8), np.float32), np.diag([4.0, 0.7, 0.7, 1.0]), "CT"),  # sagittal
        Volume(np.zeros((8, 8, 4), np.float32), np.diag([0.7, 0.7, 4.0, 1.0]), "MR"),
    ):
        z = vol.with_array(np.zeros(vol.shape, np.int16))
        out = seg.refine_lesions(vol, SpineSegmentation(z, z, z, meta={"backend": "builtin"}))
        assert out.structures is z and not out.meta["lesion_refine"]["applied"]
        if _lesion_folder() is not None:
            assert out.meta["lesion_refine"]["note"]


def test_sagittal_lesion_model_card_and_weights() -> None:
    folder = _lesion_folder("MR", "sagittal")
    if folder is None:
        pytest.skip("the main card names no sagittal MR lesion model")
    card = yaml.safe_load((folder / "card.yaml").read_text())
    assert card["classes"] == ["background", "bone", "lytic", "blastic", "epidural"]
    assert card["input"]["plane"] == "sagittal" and card["name"] == folder.name
    assert card["sha256"] == file_sha256(folder / card["weights"])
    assert (folder / card["weights"]).stat().st_size < 25 * 1024**2


def test_shipped_sagittal_model_finds_more_of_a_lesion_on_sagittal_mr() -> None:
    """Built-in segmentation of a synthetic sagittal T1, then the sagittal lesion
    refinement: more of the lesions found; sac and cord untouched."""
    from pipeline import labels as L
    from pipeline.io import Volume
    from pipeline.synth.acquisition import acquire, mr_sagittal
    from pipeline.synth.generator import StudyOptions, random_world

    folder = _lesion_folder("MR", "sagittal")
    if folder is None:
        pytest.skip("the main card names no sagittal MR lesion model")
    rng = np.random.default_rng(9499999)  # outside every training and cohort range
    world, _ = random_world(rng, StudyOptions(lesion_type="lytic", region="lumbar"))
    series = mr_sagittal(world, rng, "T1")
    img, lab = acquire(world, series, rng)
    vol = Volume(img, np.asarray(series.affine), "MR")
    seg = get_segmenter("builtin", device="cpu")
    coarse = seg.segment(vol)
    fine = seg.refine_lesions(vol, coarse)  # type: ignore[attr-defined]
    info = fine.meta["lesion_refine"]
    assert info["applied"] and info["model"] == folder.name and info["slices"] > 20
    assert "sagittal" in info["note"]
    truth = np.asarray(lab["structures"])
    assert np.isin(truth, (L.LYTIC, L.BLASTIC)).sum() > 100
    assert _lesion_dice(fine, truth) > max(0.5, _lesion_dice(coarse, truth))
    canal = np.isin(coarse.structures.array, (L.SAC, L.CORD, L.DISC))
    assert (fine.structures.array[canal] == coarse.structures.array[canal]).all()
    true_bone = np.asarray(lab["vertebrae"]) > 0  # the 3-D model misses lateral bone
    assert (
        _dice(fine.vertebrae.array > 0, true_bone)
        > _dice(coarse.vertebrae.array > 0, true_bone) + 0.02
    )


def test_an_axial_mr_gets_no_lesion_refinement() -> None:
    """The MR lesion model reads sagittal slices: an axial T2 is left alone, with a note."""
    from pipeline.io import Volume
    from pipeline.segment.builtin import BuiltinSegmenter
    from pipeline.segment.types import SpineSegmentation

    if _lesion_folder("MR", "sagittal") is None:
        pytest.skip("the main card names no sagittal MR lesion model")
    seg = BuiltinSegmenter.cached(DEFAULT_MODEL, "cpu")
    vol = Volume(np.zeros((8, 8, 4), np.float32), np.diag([0.7, 0.7, 4.0, 1.0]), "MR")
    z = vol.with_array(np.zeros(vol.shape, np.int16))
    out = seg.refine_lesions(vol, SpineSegmentation(z, z, z, meta={"backend": "builtin"}))
    assert out.structures is z and not out.meta["lesion_refine"]["applied"]
    assert "reads sagittal slices only" in out.meta["lesion_refine"]["note"]
    sag = Volume(np.zeros((4, 8, 8), np.float32), np.diag([4.0, 0.7, 0.7, 1.0]), "MR")
    z = sag.with_array(np.zeros(sag.shape, np.int16))
    out = seg.refine_lesions(sag, SpineSegmentation(z, z, z, meta={"backend": "builtin"}))
    assert out.meta["lesion_refine"]["note"] == "no vertebra found: nothing to refine"
