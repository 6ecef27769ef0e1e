"""Training recipe and built-in backend end to end on tiny phantoms (seconds, CPU)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from pipeline.errors import ConfigError
from pipeline.io import Volume
from pipeline.segment import get_segmenter
from pipeline.segment.builtin import BuiltinSegmenter, resolve_device
from pipeline.segment.model import ModelCard, file_sha256
from pipeline.train.cache import build_cache, load_case
from pipeline.train.config import TrainConfig, load_train_config
from pipeline.train.loop import sample_patch, train

TINY = {
    "type": "monai.networks.nets.UNet", "spatial_dims": 3, "in_channels": 2, "out_channels": 12,
    "channels": [4, 8], "strides": [2], "num_res_units": 0, "norm": "instance",
}  # fmt: skip


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, TrainConfig]:
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from conftest import spine_phantom

    root = tmp_path_factory.mktemp("train")

    def src(seeds: range):
        for s in seeds:
            img, t = spine_phantom(
                3, sacrum=bool(s % 2), spacing=4.0, modality="CT" if s % 2 else "MR"
            )
            yield f"ph-{s}", img, t

    build_cache(root / "cache" / "train", src(range(2)), 4.0)
    build_cache(root / "cache" / "val", src(range(5, 6)), 4.0)
    torch.manual_seed(0)
    cfg = TrainConfig(name="tiny", run_dir=str(root / "run"), cache_dir=str(root / "cache"),
                      export_dir=str(root / "model"), spacing_mm=4.0, steps=4, patch_size=16, roi_size=16,
                      ckpt_every=2, log_every=1, val_every=2, architecture=TINY)  # fmt: skip
    train(cfg, log=lambda m: None, max_steps=2)
    out = train(cfg, log=lambda m: None)
    return out, cfg


def test_cache_case_holds_model_grid_image_and_targets(
    tiny_model: tuple[Path, TrainConfig],
) -> None:
    _, cfg = tiny_model
    case = load_case(next((cfg.path("cache_dir") / "train").glob("*.npz")))
    assert case["image"].dtype == np.float16 and case["sem"].shape == case["image"].shape
    assert set(np.unique(case["sem"])) >= {0, 1, 5, 6}  # background, body, sac, cord
    assert float(case["level"].max()) > 0
    x, y, lt = sample_patch(case, 16, np.random.default_rng(0), 1.0)
    assert x.shape == (2, 16, 16, 16) and y.shape == (1, 16, 16, 16) and lt.shape == (1, 16, 16, 16)
    assert np.isnan(lt[y == 0]).all()


def test_thin_slab_patches_replicate_their_edge_slices_in_image_and_targets() -> None:
    from pipeline.train.loop import thin_slab

    rng = np.random.default_rng(4)
    img = rng.standard_normal((20, 20, 20)).astype(np.float32)
    lab = rng.integers(0, 5, (20, 20, 20))
    seen = set()
    for _ in range(30):
        x, y = thin_slab((img, lab), rng)
        assert x.shape == img.shape and y.shape == lab.shape
        # exactly one axis is cut: along it, the distinct slices are a run of the original
        # ones, and every other slice repeats the first or last of that run
        ax = [a for a in range(3) if not np.array_equal(x, img) and
              len({np.moveaxis(x, a, 0)[i].tobytes() for i in range(20)}) < 20]  # fmt: skip
        assert len(ax) == 1
        a = ax[0]
        seen.add(a)
        xs, ys, src = np.moveaxis(x, a, 0), np.moveaxis(y, a, 0), np.moveaxis(img, a, 0)
        kept = [i for i in range(20) if np.array_equal(xs[i], src[i])]
        lo, hi = kept[0], kept[-1]
        assert kept == list(range(lo, hi + 1)) and 6 <= len(kept) <= 12
        assert all(
            np.array_equal(xs[i], xs[lo]) and np.array_equal(ys[i], ys[lo]) for i in range(lo)
        )
        assert all(np.array_equal(xs[i], xs[hi]) for i in range(hi, 20))
        assert np.array_equal(ys[lo : hi + 1], np.moveaxis(lab, a, 0)[lo : hi + 1])
    assert seen == {0, 1, 2}


def test_training_resumes_logs_and_exports_a_card(tiny_model: tuple[Path, TrainConfig]) -> None:
    out, cfg = tiny_model
    log = (cfg.path("run_dir") / "metrics.jsonl").read_text().splitlines()
    steps = [int(line.split('"step": ')[1].split(",")[0]) for line in log if '"loss"' in line]
    assert steps == [1, 2, 3, 4]  # two calls, resumed at step 2
    card = yaml.safe_load((out / "card.yaml").read_text())
    assert card["sha256"] == file_sha256(out / "model.safetensors")
    assert card["training"]["steps_done"] == 4 and card["spacing_mm"] == [4.0] * 3
    assert card["classes"][0] == "background" and card["level_channel"] == 11


def test_builtin_segments_onto_the_source_grid_and_is_cached(
    tiny_model: tuple[Path, TrainConfig], phantom
) -> None:
    out, _ = tiny_model
    seg = get_segmenter("builtin", device="cpu", model=str(out))
    assert get_segmenter("builtin", device="cpu", model=str(out)) is seg  # loaded once per process
    img, _ = phantom(3, spacing=3.0)
    # Non-canonical input: flip the first axis; results must come back on this grid.
    aff = img.affine.copy()
    aff[:3, 3] = img.index_to_lps([img.shape[0] - 1, 0, 0])
    aff[:3, 0] *= -1
    vol = Volume(img.array[::-1].copy(), aff, "CT")
    res = seg.segment(vol)
    for m in (res.vertebrae, res.structures, res.parts):
        assert (
            m.shape == vol.shape and np.allclose(m.affine, vol.affine) and m.array.dtype == np.int16
        )
    assert res.meta["backend"] == "builtin" and res.meta["device"] == "cpu"
    assert set(res.meta["timings"]) == {"preprocess_s", "inference_s", "postprocess_s"}


def test_thin_inputs_go_to_the_thin_input_model_the_card_names(
    tmp_path: Path, tiny_model: tuple[Path, TrainConfig], phantom
) -> None:
    """An input thinner than the card's limit is segmented by its thin-input model."""
    import shutil

    out, _ = tiny_model
    main, thin = tmp_path / "main", tmp_path / "thin"
    shutil.copytree(out, main)
    shutil.copytree(out, thin)
    (thin / "card.yaml").write_text(
        (thin / "card.yaml").read_text().replace("name: tiny", "name: tiny-thin")
    )
    card = yaml.safe_load((main / "card.yaml").read_text())
    card["inference"]["thin_input"] = {"model": "thin", "max_thickness_mm": 40.0}
    (main / "card.yaml").write_text(yaml.safe_dump(card))
    seg = get_segmenter("builtin", device="cpu", model=str(main))
    img, _ = phantom(3, spacing=3.0)
    res = seg.segment(img)  # the phantom is thicker than 40 mm along every axis
    assert res.meta["model"] == "tiny", res.meta["model_choice"]
    slab = Volume(img.array[:10].copy(), img.affine.copy(), img.modality)  # 30 mm
    res = seg.segment(slab)
    assert res.meta["model"] == "tiny-thin" and "thin-input" in res.meta["model_choice"]
    assert res.vertebrae.shape == slab.shape
    # Only for the modalities the card names: a CT slab stays with the main model.
    other = "MR" if slab.modality == "CT" else "CT"
    card["inference"]["thin_input"]["modalities"] = [other]
    (main / "card.yaml").write_text(yaml.safe_dump(card))
    BuiltinSegmenter._cache.clear()
    res = get_segmenter("builtin", device="cpu", model=str(main)).segment(slab)
    assert (
        res.meta["model"] == "tiny" and f"not used for {slab.modality}" in res.meta["model_choice"]
    )
    # A card naming a thin-input model that is not installed keeps its own model, and says so.
    card["inference"]["thin_input"].pop("modalities")
    (main / "card.yaml").write_text(yaml.safe_dump(card))
    shutil.rmtree(thin)
    BuiltinSegmenter._cache.clear()
    res = get_segmenter("builtin", device="cpu", model=str(main)).segment(slab)
    assert res.meta["model"] == "tiny" and "not installed" in res.meta["model_choice"]


def test_bad_model_and_device_requests_are_named_errors(
    tmp_path: Path, tiny_model: tuple[Path, TrainConfig]
) -> None:
    out, _ = tiny_model
    with pytest.raises(ConfigError) as e:
        get_segmenter("nope")
    assert e.value.code == "UNKNOWN_SEGMENTER"
    with pytest.raises(ConfigError) as e:
        get_segmenter("labels")
    assert e.value.code == "SEGMENTER_NEEDS_PATH"
    with pytest.raises(ConfigError) as e:
        ModelCard.load(tmp_path / "absent")
    assert e.value.code == "MODEL_NOT_FOUND"
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError) as e:
            resolve_device("cuda:0")
        assert e.value.code == "DEVICE_UNAVAILABLE"
    # Weights that do not match the card's checksum are refused.
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "card.yaml").write_text((out / "card.yaml").read_text())
    (bad / "model.safetensors").write_bytes((out / "model.safetensors").read_bytes()[:-4] + b"0000")
    with pytest.raises(ConfigError) as e:
        BuiltinSegmenter(bad, "cpu")
    assert e.value.code == "MODEL_WEIGHTS_MISMATCH"


def test_shipped_training_config_loads() -> None:
    cfg = load_train_config("train.yaml")
    assert cfg.architecture["out_channels"] == 12 and cfg.spacing_mm == 2.0
    with pytest.raises(ConfigError):
        load_train_config("train.yaml", bogus=1)


def test_labelled_nifti_cases_enter_the_cache(tmp_path: Path, phantom) -> None:
    from pipeline.io import write_nifti
    from pipeline.train.cache import nifti_source

    img, truth = phantom(3, spacing=3.0)
    write_nifti(img, tmp_path / "case1_ct_image.nii.gz")
    for key in ("vertebrae", "structures", "parts"):
        write_nifti(img.with_array(truth[key]), tmp_path / f"case1_ct_{key}.nii.gz", dtype=np.int16)
    written = build_cache(tmp_path / "cache", nifti_source(tmp_path), 3.0)
    case = load_case(written[0])
    assert bool(case["ct"]) and case["sem"].shape == img.shape
    assert set(np.unique(case["sem"])) >= {1, 2, 3, 4, 5, 6, 10}  # body .. cord, sacrum


def test_warm_start_begins_from_the_given_weights(tiny_model: tuple[Path, TrainConfig]) -> None:
    from dataclasses import replace

    from safetensors.torch import load_file

    out, cfg = tiny_model
    run2 = cfg.path("run_dir").parent / "run-warm"
    logs: list[str] = []
    cfg2 = replace(cfg, run_dir=str(run2), export_dir=str(run2 / "model"), steps=1, lr=0.0,
                   init_weights=str(out / "model.safetensors"))  # fmt: skip
    out2 = train(cfg2, log=logs.append)
    assert any("warm start" in m for m in logs)
    a, b = load_file(str(out / "model.safetensors")), load_file(str(out2 / "model.safetensors"))
    # lr 0: one step changes nothing, so the export equals the weights it started from.
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ConfigError, match="init_weights"):
        train(replace(cfg2, run_dir=str(run2 / "x"), init_weights="nope.safetensors"))


def test_late_train_glob_takes_over_within_one_run(tiny_model: tuple[Path, TrainConfig]) -> None:
    from dataclasses import replace

    _, cfg = tiny_model
    run3 = cfg.path("run_dir").parent / "run-late"
    logs: list[str] = []
    cfg3 = replace(cfg, run_dir=str(run3), export_dir=str(run3 / "model"), steps=101,
                   ckpt_every=1000, log_every=1000, val_every=1000,
                   late_train_glob="ph-1*", late_from_step=100)  # fmt: skip
    train(cfg3, log=logs.append)
    assert logs[0].startswith("2 training cases")
    assert any(m == "step 100: 1 training cases (ph-1*)" for m in logs), logs


def test_patches_do_not_depend_on_the_number_of_workers(
    tiny_model: tuple[Path, TrainConfig],
) -> None:
    from dataclasses import replace

    from pipeline.train.loop import PatchSampler, _batches

    _, cfg = tiny_model
    cases = [load_case(p) for p in sorted((cfg.path("cache_dir") / "train").glob("*.npz"))]
    data = PatchSampler(cases, cfg.patch_size, cfg.foreground_crop_prob, cfg.seed)
    one = list(_batches(replace(cfg, batch_size=3, num_workers=0), data, 5, 8))
    two = list(_batches(replace(cfg, batch_size=3, num_workers=2), data, 5, 8))
    assert len(one) == len(two) == 3
    for a, b in zip(one, two, strict=True):
        assert all(
            torch.equal(ta.nan_to_num(-9), tb.nan_to_num(-9)) for ta, tb in zip(a, b, strict=True)
        )
    # ...and a different step range draws different patches.
    other = next(iter(_batches(replace(cfg, batch_size=3), data, 6, 7)))
    assert not torch.equal(other[0], one[0][0])


def test_time_budget_stops_the_run_and_is_kept_across_resumes(
    tiny_model: tuple[Path, TrainConfig],
) -> None:
    from dataclasses import replace

    out, cfg = tiny_model
    run4 = cfg.path("run_dir").parent / "run-budget"
    logs: list[str] = []
    cfg4 = replace(cfg, run_dir=str(run4), export_dir=str(run4 / "model"), steps=1000,
                   time_budget_s=1e-6, init_weights=str(out / "model.safetensors"))  # fmt: skip
    train(cfg4, log=logs.append)
    state = torch.load(run4 / "checkpoint.pt", weights_only=True)
    assert state["step"] == 1 and state["elapsed_s"] > 0
    assert any(m.startswith("time budget of 0 s spent at step 1") for m in logs), logs
    assert any('"val_dice"' in m for m in logs)  # a budget-stopped run is still validated
    card = yaml.safe_load((run4 / "model" / "card.yaml").read_text())
    assert card["training"]["steps_done"] == 1
    # Resuming with the budget already spent trains nothing more.
    train(cfg4, log=logs.append)
    assert torch.load(run4 / "checkpoint.pt", weights_only=True)["step"] == 1


def test_synthetic_cache_renders_the_same_with_several_processes(tmp_path: Path) -> None:
    from pipeline.train.cache import build_synthetic_cache

    kw = {"modalities": ["CT", "MR"], "spacing": 4.0, "shape": (48, 48, 56)}
    a = build_synthetic_cache(tmp_path / "a", range(3), workers=1, **kw)  # type: ignore[arg-type]
    seen: list[str] = []
    b = build_synthetic_cache(tmp_path / "b", range(3), workers=2, progress=seen.append, **kw)  # type: ignore[arg-type]
    assert [p.name for p in a] == [p.name for p in b]
    assert sorted(seen) == sorted(p.stem for p in b)
    assert [p.name[:9] for p in a] == ["synth-dr-", "synth-dr-", "synth-rea"]
    for pa, pb in zip(a, b, strict=True):
        ca, cb = load_case(pa), load_case(pb)
        assert all(np.array_equal(ca[k], cb[k]) for k in ca)
