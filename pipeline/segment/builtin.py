"""The ``builtin`` backend: the shipped MONAI model, sliding-window inference.

Flow: canonical volume -> resample to the model spacing (trilinear) -> normalise ->
sliding-window logits on the model grid -> (a) semantic argmax on the model grid for
instances and level numbers, (b) logits sampled trilinearly onto the source grid and
argmax there for smooth full-resolution boundaries -> three label maps on the source grid.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from scipy import ndimage

from pipeline import labels as L
from pipeline.errors import ConfigError, InputError
from pipeline.io.volume import Volume, index_to_lps, lps_to_index
from pipeline.preprocess import (
    channel_argmax,
    model_input,
    resample_to_spacing,
    sample_labels_on_grid,
)
from pipeline.segment.model import (
    SEM,
    ModelCard,
    derive_maps,
    load_network,
    semantic_structures,
    target_to_level,
)
from pipeline.segment.types import SpineSegmentation


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` -> first CUDA device if any, else CPU; checks that a named GPU exists."""
    if device in ("auto", "", None):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise ConfigError(
            "DEVICE_INVALID", f"{device!r} is not a device (use auto, cpu, cuda or cuda:N)"
        ) from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(
                "DEVICE_UNAVAILABLE", f"{device} requested but no CUDA GPU is available"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(
                "DEVICE_UNAVAILABLE",
                f"{device} requested but only {torch.cuda.device_count()} GPU(s) exist",
            )
    elif dev.type != "cpu":
        raise ConfigError("DEVICE_INVALID", f"unsupported device {device!r}")
    return dev


def autocast_for(device: torch.device, cpu_autocast: str) -> Any:
    """Mixed precision context: fp16/bf16 on GPU, bf16 on CPU only where the card says it is faster."""
    if device.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)
    if cpu_autocast == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


class BuiltinSegmenter:
    """The shipped model; build with :meth:`cached` so that weights load once per process."""

    name = "builtin"
    _cache: ClassVar[dict[tuple[str, str], BuiltinSegmenter]] = {}

    def __init__(self, model: str | Path | None = None, device: str = "auto") -> None:
        self.card = ModelCard.load(model)
        self.device = resolve_device(device)
        t0 = time.perf_counter()
        self.net = load_network(self.card, self.device)
        self.load_s = time.perf_counter() - t0

    @classmethod
    def cached(cls, model: str | Path | None = None, device: str = "auto") -> BuiltinSegmenter:
        """One instance per (model, device) per process."""
        key = (str(model or ""), str(resolve_device(device)))
        if key not in cls._cache:
            cls._cache[key] = cls(model, device)
        return cls._cache[key]

    @torch.inference_mode()
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Sliding-window logits (C, I, J, K) for an input (2, I, J, K) on the model grid."""
        from monai.inferers import sliding_window_inference

        inp = x[None].to(self.device)
        with autocast_for(self.device, self.card.cpu_autocast):
            out = sliding_window_inference(
                inp,
                roi_size=self.card.roi_size,
                sw_batch_size=1,
                predictor=self.net,
                overlap=0.25,
                mode="gaussian",
                padding_mode="replicate",
            )
        return out[0].float()

    def model_grid_input(self, volume: Volume) -> tuple[Volume, Volume, torch.Tensor]:
        """The canonical volume, its resampling to the model spacing and the network input."""
        src = volume.to_canonical()
        on_model = resample_to_spacing(src, self.card.spacing_mm)
        return src, on_model, model_input(on_model.array, volume.modality)

    def split_logits(self, logits: torch.Tensor) -> tuple[torch.Tensor, np.ndarray | None]:
        """Semantic argmax (tensor) and the learned level estimate (None if the card does
        not use it) from the network output."""
        nc = len(self.card.classes)
        use_learned = self.card.level_estimate == "learned" and logits.shape[0] > nc
        est = target_to_level(logits[nc].cpu().numpy()) if use_learned else None
        return channel_argmax(logits[:nc]), est

    def segment(self, volume: Volume) -> SpineSegmentation:
        """Segment one study; the label maps lie on ``volume``'s grid."""
        if volume.modality not in ("CT", "MR"):
            raise InputError(
                "MODALITY_UNSUPPORTED", f"the built-in model reads CT or MR, not {volume.modality}"
            )
        if min(volume.shape) < 1 or not np.isfinite(volume.array).all():
            raise InputError("VOLUME_INVALID", "the image holds no voxels or non-finite values")
        times: dict[str, float] = {}
        t = time.perf_counter()
        src, on_model, x = self.model_grid_input(volume)
        runner, route_note = self._runner_for(on_model.shape, volume.modality)
        times["preprocess_s"] = time.perf_counter() - t
        t = time.perf_counter()
        logits = runner.logits(x)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        times["inference_s"] = time.perf_counter() - t
        t = time.perf_counter()
        nc = len(runner.card.classes)
        sem_t, level_est = runner.split_logits(logits)
        sem_m = sem_t.cpu().numpy()
        vert_m, struct_m, parts_m, conf, uncertain, why = derive_maps(
            sem_m, on_model.affine, level_est, split_waists=True, use_conus=volume.modality == "MR"
        )
        # Level numbers and pedicle sides: dilate one voxel so that source voxels at bone
        # borders (finer than the model grid) still find a number, then sample nearest.
        fp = ndimage.generate_binary_structure(3, 1)
        vert_d = np.where(vert_m > 0, vert_m, ndimage.grey_dilation(vert_m, footprint=fp))
        parts_d = np.where(parts_m > 0, parts_m, ndimage.grey_dilation(parts_m, footprint=fp))
        # Sac / cord only in (one voxel around) the spinal canal that derive_maps kept: a
        # contrast-filled aorta the model took for a canal stays out of the output too.
        canal_d = ndimage.binary_dilation(np.isin(struct_m, (L.SAC, L.CORD)), structure=fp)
        # Only the box around what the model found is sampled at full resolution; the
        # rest of a large CT is background (saves most of the time and memory).
        box, sub_affine = _source_box(sem_m > 0, on_model.affine, src.affine, src.shape)
        vertebrae = np.zeros(src.shape, np.int16)
        structures = np.zeros(src.shape, np.int16)
        parts = np.zeros(src.shape, np.int16)
        if box is not None:
            sub_shape = tuple(b.stop - b.start for b in box)
            sem_s_t, near_t = sample_labels_on_grid(
                logits[:nc],
                torch.from_numpy(np.stack([vert_d, parts_d, canal_d]).astype(np.int16)).to(
                    self.device
                ),
                on_model.affine,
                sub_affine,
                sub_shape,
                labels=sem_t,
            )
            sem_s, near = sem_s_t.cpu().numpy(), near_t.cpu().numpy()
            v, st, p = _source_maps(sem_s, near[0], near[1], near[2] > 0)
            vertebrae[box], structures[box], parts[box] = v, st, p
        times["postprocess_s"] = time.perf_counter() - t
        # Back to the caller's array order if the input was not canonical.
        maps = [
            Volume(a, src.affine.copy(), volume.modality, {"labels": n})
            for a, n in ((vertebrae, "vertebrae"), (structures, "structures"), (parts, "parts"))
        ]
        if not np.allclose(src.affine, volume.affine):
            maps = [_to_grid_of(m, volume) for m in maps]
        meta = {
            "backend": "builtin",
            "model": runner.card.name,
            "model_choice": route_note,
            "device": str(self.device),
            "precision": "autocast"
            if (self.device.type == "cuda" or self.card.cpu_autocast == "bf16")
            else "fp32",
            "model_grid": list(on_model.shape),
            "timings": {k: round(v, 3) for k, v in times.items()},
            "numbering": why,
            "warnings": ([why] if uncertain else []) + runner._card_warnings(),
        }
        return SpineSegmentation(maps[0], maps[1], maps[2], conf, uncertain, meta)

    def refine_canal(self, volume: Volume, seg: SpineSegmentation) -> SpineSegmentation:
        """Re-segment the canal of the axial series Bilsky is read on at 0.5 mm.

        Uses the canal model the card names for the series' modality in
        ``inference.canal_refine`` (:mod:`pipeline.segment.canal`; one entry per model,
        each with its ``modalities``); without one, when it is not installed, or when the
        series is not axial, ``seg`` comes back unchanged. ``meta["canal_refine"]``
        records ``applied``, the ``model``, the number of ``slices`` refined and a
        ``note``. Only the sac, cord and epidural-tumour labels change.
        """
        meta = dict(seg.meta)
        folder, why_not, _ = self._slice_model("canal_refine", volume)
        if folder is None:
            meta["canal_refine"] = {"applied": False, "model": None, "slices": 0, "note": why_not}
            return dataclasses.replace(seg, meta=meta)
        from pipeline.segment.canal import CanalRefiner

        t = time.perf_counter()
        refiner = CanalRefiner.cached(folder, self.device)
        st, n = refiner.refine(volume.array, volume.affine, seg.structures.array)
        note = f"canal re-segmented at {refiner.card.pixel_mm:g} mm on {n} slices"
        if refiner.tumour_gate_mm is not None:
            note += (
                f", epidural tumour kept within {refiner.tumour_gate_mm:g} mm of the 3-D "
                "model's tumour or bone lesion"
            )
        meta["canal_refine"] = {
            "applied": n > 0,
            "model": refiner.card.name,
            "slices": n,
            "tumour_gate_mm": refiner.tumour_gate_mm,
            "note": note if n else "no canal found on any slice: nothing to refine",
        }
        meta["timings"] = {
            **dict(meta.get("timings", {})),
            "canal_refine_s": round(time.perf_counter() - t, 3),
        }
        return dataclasses.replace(seg, structures=seg.structures.with_array(st), meta=meta)

    def refine_lesions(self, volume: Volume, seg: SpineSegmentation) -> SpineSegmentation:
        """Re-segment the osseous lesions of an axial CT at 1 mm (or of a sagittal MR).

        Uses the bone-lesion model the card names in ``inference.lesion_refine`` for the
        modality and slice plane (:mod:`pipeline.segment.lesion`,
        :mod:`pipeline.segment.sagittal`); without one, or when it is not installed, ``seg``
        comes back unchanged. ``meta["lesion_refine"]`` records ``applied``, the ``model``,
        the ``slices`` refined, the lesion voxels ``attached`` to a vertebra, the voxels
        ``gated_out``, the ``bone_reshaped`` counts and a ``note``. The lytic / blastic
        labels change, lesion voxels the 3-D model left out of the bone join the nearest
        vertebra, and where the model card has ``bone_reshape`` the vertebra outline is
        redrawn from the 2-D model's bone (:func:`~pipeline.segment.lesion.reshape_bone`).
        """
        meta = dict(seg.meta)
        folder, why_not, plane = self._slice_model("lesion_refine", volume)
        if folder is None:
            meta["lesion_refine"] = {"applied": False, "model": None, "slices": 0, "note": why_not}
            return dataclasses.replace(seg, meta=meta)
        from pipeline.segment.lesion import LesionRefiner
        from pipeline.segment.sagittal import SagittalLesionRefiner

        t = time.perf_counter()
        kind = SagittalLesionRefiner if plane == "sagittal" else LesionRefiner
        refiner = kind.cached(folder, self.device)
        vert, parts, st, n, n_att = refiner.refine(
            volume.array, volume.affine, seg.vertebrae.array, seg.structures.array,
            seg.parts.array if seg.parts is not None else None,
        )  # fmt: skip
        unit = "vertebra crops on sagittal slices" if plane == "sagittal" else "slices"
        note = f"osseous lesions re-segmented at {refiner.card.pixel_mm:g} mm on {n} {unit}"
        if refiner.dropped:
            note += (
                f"; {refiner.dropped} voxels of new lesion left out by the model's gate (not "
                "lytic against the patient's bone, or blastic far from the 3-D model's lesions)"
            )
        if any(refiner.reshaped):
            removed, added = refiner.reshaped
            note += (
                f"; vertebra outline redrawn where the crops looked ({removed} voxels removed, "
                f"{added} added)"
            )
        if n_att:
            note += (
                f"; {n_att} lesion voxels outside the 3-D model's bone joined the nearest vertebra"
            )
        meta["lesion_refine"] = {
            "applied": n > 0,
            "model": refiner.card.name,
            "slices": n,
            "attached": n_att,
            "gated_out": refiner.dropped,
            "bone_reshaped": {"removed": refiner.reshaped[0], "added": refiner.reshaped[1]},
            "note": note
            if n
            else (
                "no vertebra found: nothing to refine"
                if plane == "sagittal"
                else "no canal found on any slice: nothing to refine"
            ),
        }
        meta["timings"] = {
            **dict(meta.get("timings", {})),
            "lesion_refine_s": round(time.perf_counter() - t, 3),
        }
        return dataclasses.replace(
            seg,
            vertebrae=seg.vertebrae.with_array(vert),
            structures=seg.structures.with_array(st),
            parts=seg.parts.with_array(parts)
            if seg.parts is not None and parts is not None
            else seg.parts,
            meta=meta,
        )

    def _slice_model(self, key: str, volume: Volume) -> tuple[Path | None, str, str]:
        """Folder and plane of the slice model the card's ``inference.<key>`` names for the
        volume's modality and slice plane, or why there is none (none named or installed,
        or none for the series' plane).

        ``inference.<key>`` is one ``{model, modalities, plane}`` entry or a list of them;
        ``plane`` is ``axial`` (the default: series within ``MAX_AXIAL_TILT_DEG`` of axial)
        or ``sagittal`` (series whose slice normal is within ``MAX_SAGITTAL_TILT_DEG`` of
        left-right).
        """
        from pipeline.segment.canal import MAX_AXIAL_TILT_DEG, axial_tilt_deg
        from pipeline.segment.sagittal import is_sagittal

        what = {"canal_refine": "canal", "lesion_refine": "bone-lesion"}.get(key, key)
        spec = self.card.raw.get("inference", {}).get(key)
        if not spec:
            return None, f"{self.card.name} names no {what} model", ""
        entries = spec if isinstance(spec, list) else [spec]
        modality = volume.modality
        mine = [e for e in entries if modality in e.get("modalities", ("MR",))]
        if not mine:
            return None, f"{self.card.name} names no {what} model for {modality}", ""
        tilt = axial_tilt_deg(volume.affine)
        plane = (
            "axial"
            if tilt <= MAX_AXIAL_TILT_DEG
            else ("sagittal" if is_sagittal(volume.affine) else "")
        )
        entry = next((e for e in mine if e.get("plane", "axial") == plane), None)
        if entry is None:
            planes = sorted({str(e.get("plane", "axial")) for e in mine})
            return (
                None,
                (
                    f"slices {tilt:.0f} deg from axial: the {what} model for {modality} reads "
                    f"{' or '.join(planes)} slices only"
                ),
                "",
            )
        folder = self.card.folder.parent / str(entry["model"])
        if not (folder / "card.yaml").exists():
            return None, f"{what} model {entry['model']} is not installed", ""
        return folder, "", plane

    def _runner_for(
        self, model_shape: tuple[int, ...], modality: str
    ) -> tuple[BuiltinSegmenter, str]:
        """This model, or the thin-input specialist its card names for thin inputs.

        An input thinner than ``max_thickness_mm`` along any axis (a 15-20 slice sagittal MR
        slab) is mostly padding in the inference window; the card's ``inference.thin_input``
        model was trained on such slabs (see its card). Only for the card's ``modalities``
        (those it was measured better on).
        """
        spec = self.card.thin_input
        if not spec:
            return self, f"{self.card.name} (no thin-input model in its card)"
        if modality not in spec.get("modalities", ("CT", "MR")):
            return self, f"{self.card.name} (its thin-input model is not used for {modality})"
        thickness = float(min(np.asarray(model_shape) * np.asarray(self.card.spacing_mm)))
        limit = float(spec["max_thickness_mm"])
        if thickness > limit:
            return self, f"{self.card.name}: input {thickness:.0f} mm thick at its thinnest"
        folder = self.card.folder.parent / str(spec["model"])
        if not (folder / "card.yaml").exists():
            return self, (
                f"{self.card.name}: input {thickness:.0f} mm thick, but the thin-input model "
                f"{spec['model']} is not installed"
            )
        thin = BuiltinSegmenter.cached(folder, str(self.device))
        return thin, (
            f"{thin.card.name}: input {thickness:.0f} mm thick at its thinnest "
            f"(<= {limit:g} mm: thin-input model)"
        )

    def _card_warnings(self) -> list[str]:
        """The card's own ``status`` (e.g. an under-trained model), shown in every report."""
        status = self.card.raw.get("status")
        return [f"model {self.card.name}: {' '.join(str(status).split())}"] if status else []


def _source_box(
    mask: np.ndarray, model_affine: np.ndarray, src_affine: np.ndarray, src_shape: tuple[int, ...]
) -> tuple[tuple[slice, ...] | None, np.ndarray]:
    """Source-grid index box covering ``mask`` (model grid) plus a 2-voxel margin."""
    if not mask.any():
        return None, src_affine
    idx = np.argwhere(mask)
    lo, hi = idx.min(0) - 2, idx.max(0) + 2
    corners = np.array(
        [[a, b, c] for a in (lo[0], hi[0]) for b in (lo[1], hi[1]) for c in (lo[2], hi[2])], float
    )
    lps = index_to_lps(corners, model_affine)
    s_idx = lps_to_index(lps, src_affine)
    s_lo = np.clip(np.floor(s_idx.min(0)).astype(int), 0, np.array(src_shape) - 1)
    s_hi = np.clip(np.ceil(s_idx.max(0)).astype(int) + 1, 1, np.array(src_shape))
    box = tuple(slice(int(a), int(b)) for a, b in zip(s_lo, s_hi, strict=True))
    sub = src_affine.copy()
    sub[:3, 3] = src_affine[:3, :3] @ s_lo + src_affine[:3, 3]
    return box, sub


def _source_maps(
    sem_s: np.ndarray, vert_s: np.ndarray, side_s: np.ndarray, canal_s: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Our three label maps from the full-resolution semantic argmax and sampled numbers.

    ``canal_s`` is the spinal canal kept on the model grid (sampled): sac and cord
    voxels outside it are stray pieces and left out.
    """
    bone = np.isin(
        sem_s, [SEM["body"], SEM["pedicle"], SEM["posterior"], SEM["lytic"], SEM["blastic"]]
    )
    vertebrae = np.where(bone, vert_s, 0).astype(np.int16)
    # Sacrum only where the model-grid maps kept it (an implausibly small one is dropped).
    vertebrae[(sem_s == SEM["sacrum"]) & (vert_s == 26)] = 26
    structures = semantic_structures(sem_s, canal_s)
    parts = np.zeros(sem_s.shape, np.int16)
    parts[sem_s == SEM["body"]] = L.BODY
    parts[sem_s == SEM["posterior"]] = L.POSTERIOR
    lesion = (sem_s == SEM["lytic"]) | (sem_s == SEM["blastic"])
    parts[lesion] = np.where(side_s[lesion] == L.BODY, L.BODY, L.POSTERIOR)
    ped = sem_s == SEM["pedicle"]
    parts[ped] = np.where(
        np.isin(side_s[ped], (L.PEDICLE_L, L.PEDICLE_R)), side_s[ped], L.POSTERIOR
    )
    parts[vertebrae == 0] = 0
    return vertebrae, structures, parts


def _to_grid_of(labels: Volume, volume: Volume) -> Volume:
    from pipeline.preprocess import resample_labels_nearest

    arr = resample_labels_nearest(labels.array, labels.affine, volume.affine, volume.shape)
    return Volume(arr, volume.affine.copy(), volume.modality, dict(labels.meta))
