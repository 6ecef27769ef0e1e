"""The built-in model: semantic classes, network construction, card and weights I/O.

Design (see the model card): one network for CT and MR (a CT-flag input channel) predicts
a small set of *semantic* classes; vertebra level numbers are derived afterwards from
instances along the column (:mod:`pipeline.segment.levels`).
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from scipy import ndimage

from pipeline import labels as L
from pipeline.errors import ConfigError
from pipeline.paths import load_yaml, models_dir

SEMANTIC_CLASSES: tuple[str, ...] = (
    "background",
    "body",
    "pedicle",
    "posterior",
    "disc",
    "sac",
    "cord",
    "epidural",
    "lytic",
    "blastic",
    "sacrum",
)
SEM = {name: i for i, name in enumerate(SEMANTIC_CLASSES)}
DEFAULT_MODEL = "spinemet-unet-2mm"
#: The network has one output channel more than classes: a regression of the column
#: position of the vertebra each bone voxel belongs to (learned level estimate).
LEVEL_CHANNEL = len(SEMANTIC_CLASSES)
_POSITION = {28: 19.5, 25: 24.5, 26: 25.0}


def column_position(number: int) -> float:
    """VerSe number -> position along the column (T13 and L6 sit between their neighbours)."""
    return _POSITION.get(int(number), float(number))


def level_to_target(position: npt.ArrayLike) -> npt.NDArray[np.float32]:
    """Column position -> regression target (about -2..2 over C1..S)."""
    return ((np.asarray(position, dtype=np.float32) - 13.0) / 6.0).astype(np.float32)


def target_to_level(t: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Inverse of :func:`level_to_target`."""
    return np.asarray(t, dtype=np.float64) * 6.0 + 13.0


def level_position_map(vertebrae: npt.NDArray[np.integer]) -> npt.NDArray[np.float32]:
    """Per-voxel column position of the vertebra (0 outside vertebrae)."""
    lut = np.zeros(max(29, int(vertebrae.max()) + 1), np.float32)
    for n in range(1, 29):
        lut[n] = column_position(n)
    return lut[np.clip(vertebrae, 0, None)]


def semantic_from_truth(
    vertebrae: npt.NDArray[np.integer],
    structures: npt.NDArray[np.integer],
    parts: npt.NDArray[np.integer],
) -> npt.NDArray[np.uint8]:
    """Training target: our three label maps collapsed to the model's semantic classes.

    Vertebra voxels take their part (body / pedicle / posterior); vertebra voxels without a
    part become body. Structures are painted over bone-free voxels, lesions over bone.
    """
    sem = np.zeros(vertebrae.shape, np.uint8)
    vert = (vertebrae > 0) & (vertebrae != 26)
    sem[vert] = SEM["body"]
    sem[vert & np.isin(parts, (L.PEDICLE_L, L.PEDICLE_R))] = SEM["pedicle"]
    sem[vert & (parts == L.POSTERIOR)] = SEM["posterior"]
    sem[vertebrae == 26] = SEM["sacrum"]
    for code, name in (
        (L.DISC, "disc"),
        (L.SAC, "sac"),
        (L.CORD, "cord"),
        (L.EPIDURAL, "epidural"),
    ):
        sem[structures == code] = SEM[name]
    sem[structures == L.LYTIC] = SEM["lytic"]
    sem[structures == L.BLASTIC] = SEM["blastic"]
    return sem


@dataclass
class ModelCard:
    """What the code needs from a model card (the YAML holds more, for people)."""

    name: str
    folder: Path
    architecture: dict[str, Any]
    classes: tuple[str, ...]
    spacing_mm: tuple[float, float, float]
    patch_size: tuple[int, int, int]
    roi_size: tuple[int, int, int]
    cpu_autocast: str
    level_estimate: str
    weights: str
    #: Optional specialist for thin inputs: ``{"model": name, "max_thickness_mm": mm}``.
    thin_input: dict[str, Any] | None
    sha256: str | None
    raw: dict[str, Any]

    @classmethod
    def load(cls, name_or_path: str | Path | None = None) -> ModelCard:
        """Load ``models/<name>/card.yaml`` (or a folder / card path)."""
        card_path, raw = read_card(name_or_path or models_dir() / DEFAULT_MODEL)
        with card_errors(card_path):
            return cls(
                name=str(raw["name"]),
                folder=card_path.parent,
                architecture=dict(raw["architecture"]),
                classes=tuple(raw["classes"]),
                spacing_mm=tuple(float(s) for s in raw["spacing_mm"]),  # type: ignore[arg-type]
                patch_size=tuple(int(s) for s in raw["patch_size"]),  # type: ignore[arg-type]
                roi_size=tuple(
                    int(s) for s in raw.get("inference", {}).get("roi_size", raw["patch_size"])
                ),  # type: ignore[arg-type]
                cpu_autocast=str(raw.get("inference", {}).get("cpu_autocast", "none")),
                level_estimate=str(raw.get("inference", {}).get("level_estimate", "learned")),
                thin_input=raw.get("inference", {}).get("thin_input"),
                weights=str(raw.get("weights", "model.safetensors")),
                sha256=raw.get("sha256"),
                raw=raw,
            )


@contextlib.contextmanager
def card_errors(card_path: Path) -> Iterator[None]:
    """Turn a missing or mistyped card field into ``ConfigError("MODEL_CARD_INVALID")``."""
    try:
        yield
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError("MODEL_CARD_INVALID", f"{card_path} lacks or mis-states {exc}") from exc


def read_card(name_or_path: str | Path, what: str = "model") -> tuple[Path, dict[str, Any]]:
    """Path and parsed YAML of a model card: a folder in ``models/``, a folder or a card file.

    Raises ``ConfigError("MODEL_NOT_FOUND")`` naming the path looked at.
    """
    p = Path(name_or_path)
    if not p.exists() and not p.is_absolute():
        p = models_dir() / str(name_or_path)
    card_path = p / "card.yaml" if p.is_dir() else p
    if not card_path.exists():
        raise ConfigError("MODEL_NOT_FOUND", f"no {what} card at {card_path}")
    raw = load_yaml(card_path)
    if not isinstance(raw, dict):
        raise ConfigError("MODEL_CARD_INVALID", f"{card_path} does not hold a mapping")
    return card_path, raw


def build_network(arch: dict[str, Any]) -> torch.nn.Module:
    """Build the network the card names (MONAI UNet or DynUNet)."""
    from monai.networks.nets import UNet

    kind = arch.get("type", "monai.networks.nets.UNet")
    params = {k: v for k, v in arch.items() if k != "type"}
    if kind.endswith("UNet") and "DynUNet" not in kind:
        for key in ("channels", "strides"):
            params[key] = tuple(params[key])
        return UNet(**params)
    raise ConfigError("MODEL_ARCH_UNKNOWN", f"unsupported architecture {kind!r}")


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file (the card pins the weights it was measured with)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_network(card: ModelCard, device: torch.device) -> torch.nn.Module:
    """Build the network and load its safetensors weights (checked against the card)."""
    from safetensors.torch import load_file

    wpath = card.folder / card.weights
    if not wpath.exists():
        raise ConfigError("MODEL_WEIGHTS_MISSING", f"weights file {wpath} not found")
    if card.sha256 and file_sha256(wpath) != card.sha256:
        raise ConfigError(
            "MODEL_WEIGHTS_MISMATCH", f"{wpath.name} does not match the sha256 in its card"
        )
    net = build_network(card.architecture)
    state = load_file(str(wpath), device="cpu")
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        raise ConfigError(
            "MODEL_WEIGHTS_MISMATCH", f"weights do not fit the card's architecture: {exc}"
        ) from exc
    return net.to(device).eval()


#: Bone voxels not connected to a body join the nearest vertebra only within this (mm).
ORPHAN_MAX_MM = 15.0


def semantic_structures(
    sem: npt.NDArray[np.integer], canal: npt.NDArray[np.bool_]
) -> npt.NDArray[np.int16]:
    """Structure codes (:mod:`pipeline.labels`) of a semantic map; sac and cord only inside
    ``canal`` (the spinal canal kept by :func:`~pipeline.segment.levels.spinal_canal`:
    pieces elsewhere, such as a contrast-filled aorta, are not this canal)."""
    structures = np.zeros(sem.shape, np.int16)
    for name, code in (
        ("sac", L.SAC), ("cord", L.CORD), ("epidural", L.EPIDURAL), ("lytic", L.LYTIC),
        ("blastic", L.BLASTIC), ("disc", L.DISC),
    ):  # fmt: skip
        structures[sem == SEM[name]] = code
    structures[np.isin(structures, (L.SAC, L.CORD)) & ~canal] = 0
    return structures


def derive_maps(
    sem: npt.NDArray[np.integer],
    affine: npt.NDArray[np.float64],
    level_estimate: npt.NDArray[np.floating] | None = None,
    split_waists: bool = False,
    use_conus: bool = False,
) -> tuple[
    npt.NDArray[np.int16], npt.NDArray[np.int16], npt.NDArray[np.int16], dict[str, float], bool, str
]:
    """Our three label maps from a semantic map (VerSe numbers via :mod:`levels`).

    ``level_estimate`` is the network's per-voxel column position (see
    :func:`column_position`), used to number the column when no sacrum is in view.
    ``split_waists``: cut tall body instances at a waist (:func:`levels.split_at_waist`;
    the built-in segmenter does so on CT and MR). ``use_conus``: the cord's end is a prior
    on the numbering (:func:`levels.conus_tip_s`; MR only, where the cord is seen).
    Returns vertebrae, structures, parts, level confidence, numbering_uncertain, reason.
    """
    from pipeline.segment.levels import (
        arch_bridge,
        body_instances,
        conus_tip_s,
        drop_off_column,
        fill_from_nearest,
        grow_labels,
        main_sacrum,
        merge_fragments,
        number_instances,
        plausible_sacrum,
        sacrum_with_fused,
        spinal_canal,
        split_at_waist,
        split_pedicles,
    )

    lesion = (sem == SEM["lytic"]) | (sem == SEM["blastic"])
    body = sem == SEM["body"]
    bone = body | lesion | (sem == SEM["pedicle"]) | (sem == SEM["posterior"])
    near_body = ndimage.binary_dilation(body, iterations=2)
    body_like = body | (lesion & near_body)
    canal, n_stray = spinal_canal((sem == SEM["sac"]) | (sem == SEM["cord"]), bone, affine)
    inst, n_dropped = drop_off_column(body_instances(body_like, affine), affine, canal)
    if split_waists:
        inst = split_at_waist(inst, affine)
    inst = merge_fragments(inst, affine)
    arch = (sem == SEM["pedicle"]) | (sem == SEM["posterior"])
    bridge = arch_bridge(inst, arch, sem == SEM["background"], affine)
    inst = grow_labels(inst, bone | bridge)
    inst[bridge & ~bone] = 0  # the bridge is not bone
    # Bone not connected to any body (a fragment of an arch): nearest instance within
    # ORPHAN_MAX_MM; bone further away is not this column's (left unlabelled).
    fill_from_nearest(inst, bone & (inst == 0), affine, ORPHAN_MAX_MM)
    sacrum = main_sacrum(sem == SEM["sacrum"], affine, inst)
    if not plausible_sacrum(sacrum_with_fused(sacrum, np.where(body_like, inst, 0))[0], affine):
        sacrum = np.zeros_like(sacrum)  # a few ml of "sacrum" is a segmentation error
    conus_s = conus_tip_s(canal & (sem == SEM["cord"]), canal, affine) if use_conus else None
    numbers, conf, uncertain, why = number_instances(
        inst, affine, sacrum=sacrum, body=body_like, position=level_estimate, conus_s=conus_s
    )
    lut = np.zeros(int(inst.max()) + 1, np.int16)
    for i, v in numbers.items():
        lut[i] = v
    vert = lut[inst]
    vert[sacrum] = 26
    structures = semantic_structures(sem, canal)
    parts = np.zeros(sem.shape, np.int16)
    parts[body_like] = L.BODY
    parts[(sem == SEM["posterior"]) | (lesion & ~body_like)] = L.POSTERIOR
    ped = sem == SEM["pedicle"]
    parts[ped] = split_pedicles(ped, vert, body_like, affine)[ped]
    parts[vert == 0] = 0
    confidence = {L.level_name(numbers[i]): conf[i] for i in numbers}
    if n_dropped:
        why += f"; {n_dropped} body-like region(s) off the spinal column ignored"
    if n_stray:
        why += f"; {n_stray} sac/cord region(s) away from the spinal canal ignored"
    return vert, structures, parts, confidence, uncertain, why
