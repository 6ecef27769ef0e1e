"""Key images for the HTML report (PNG bytes, Pillow only), resampled in patient space.

* Sagittal: a plane through the column's midline (spanned by patient P and S), anterior
  to the viewer's left, head up; vertebrae tinted and named, osseous lesions and epidural
  tumour overlaid.
* Axial: the canal-perpendicular plane of the worst Bilsky slice, in radiological
  convention (patient right on the viewer's left, anterior up), with cord / thecal sac /
  epidural tumour contours.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

from pipeline import labels as L
from pipeline.io.volume import Volume, sample_at_points

FArr = npt.NDArray[np.float64]

LESION_RGB = {L.LYTIC: (230, 60, 60), L.BLASTIC: (60, 120, 240), L.EPIDURAL: (255, 150, 0)}
CONTOUR_RGB = {L.SAC: (0, 200, 255), L.CORD: (255, 235, 0), L.EPIDURAL: (255, 60, 60)}


def _window(img: FArr, modality: str) -> npt.NDArray[np.uint8]:
    if modality == "CT":
        lo, hi = -250.0, 1250.0  # bone-leaning soft-tissue window
    else:
        finite = img[np.isfinite(img)]
        lo, hi = np.percentile(finite, [1, 99.5]) if finite.size else (0.0, 1.0)
        hi = max(hi, lo + 1e-3)
    return (np.clip((img - lo) / (hi - lo), 0, 1) * 255).astype(np.uint8)


def _png(rgb: npt.NDArray[np.uint8]) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buf, format="PNG", optimize=False, compress_level=6)
    return buf.getvalue()


def _font(size: int) -> Any:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # old Pillow without sized default font
        return ImageFont.load_default()


def _palette(n: int) -> tuple[int, int, int]:
    rng = np.random.default_rng(n * 7919)
    c = rng.integers(60, 230, 3)
    return int(c[0]), int(c[1]), int(c[2])


def sagittal_png(
    image: Volume,
    vertebrae: npt.NDArray[np.integer],
    structures: npt.NDArray[np.integer],
    involved: set[str],
    worst_level: str | None,
    pixel_mm: float = 0.6,
    max_px: int = 900,
    min_height_px: int = 520,
) -> bytes | None:
    """Mid-sagittal reformat with level names and lesions; None if no vertebra."""
    vert = np.asarray(vertebrae)
    idx = np.argwhere(vert > 0)
    if len(idx) == 0:
        return None
    step = max(1, len(idx) // 200_000)
    pts = idx[::step] @ image.affine[:3, :3].T + image.affine[:3, 3]
    x_mid = float(np.median(pts[:, 0]))
    lo, hi = pts.min(0) - 15.0, pts.max(0) + 15.0
    extent_p, extent_s = hi[1] - lo[1], hi[2] - lo[2]
    px = max(pixel_mm, max(extent_p, extent_s) / max_px)
    nw, nh = int(extent_p / px) + 1, int(extent_s / px) + 1
    # column c -> P from anterior (low P) to posterior: anterior on the viewer's left
    pp = lo[1] + np.arange(nw) * px
    ss = hi[2] - np.arange(nh) * px  # row 0 = superior
    grid = np.stack(np.meshgrid(ss, pp, indexing="ij"), -1)
    world = np.zeros((nh, nw, 3))
    world[..., 0] = x_mid
    world[..., 1] = grid[..., 1]
    world[..., 2] = grid[..., 0]
    gray = _window(
        sample_at_points(image.array, image.affine, world, 1, float(np.min(image.array))),
        image.modality,
    )
    rgb = np.repeat(gray[..., None], 3, -1).astype(np.float32)
    lab_v = sample_at_points(vert, image.affine, world, 0, 0)
    lab_s = sample_at_points(structures, image.affine, world, 0, 0)
    for n in np.unique(lab_v):
        if n == 0:
            continue
        m = lab_v == n
        edge = m & ~ndimage.binary_erosion(m)
        rgb[edge] = _palette(int(n))
    for code, col in LESION_RGB.items():
        m = lab_s == code
        rgb[m] = 0.45 * rgb[m] + 0.55 * np.array(col)
    out = Image.fromarray(rgb.clip(0, 255).astype(np.uint8), "RGB")
    up = max(1, int(np.ceil(min_height_px / out.height)))
    if up > 1:  # small fields of view: enlarge so that labels stay readable
        out = out.resize((out.width * up, out.height * up), Image.Resampling.NEAREST)
        px /= up
        nh *= up
    draw = ImageDraw.Draw(out)
    font = _font(max(12, nh // 45))
    for n in np.unique(vert[vert > 0]):
        if not L.is_level(int(n)):
            continue
        sel = np.argwhere(vert == n)
        c = sel.mean(0) @ image.affine[:3, :3].T + image.affine[:3, 3]
        col_px = (c[1] - lo[1]) / px
        row_px = (hi[2] - c[2]) / px
        name = L.level_name(int(n))
        color = (255, 80, 80) if name in involved else (255, 255, 255)
        if name == worst_level:
            name += " *"
        draw.text((max(2, col_px - 38.0 / px), row_px - 6), name, fill=color, font=font)
    draw.text((4, 4), "A", fill=(255, 255, 0), font=font)
    draw.text((out.width - 14, 4), "P", fill=(255, 255, 0), font=font)
    return _png(np.asarray(out))


def axial_png(
    image: Volume,
    structures: npt.NDArray[np.integer],
    plane: dict[str, list[float]],
    half_width_mm: float = 22.0,
    pixel_mm: float = 0.25,
    scale: int = 2,
) -> bytes:
    """The worst-compression plane with cord (yellow), sac (cyan) and tumour (red) contours."""
    o, u, v = (np.asarray(plane[k], dtype=np.float64) for k in ("origin", "u", "v"))
    n = int(round(2 * half_width_mm / pixel_mm)) + 1
    g = (np.arange(n) - (n - 1) / 2) * pixel_mm
    # columns: patient right -> left (+u = left); rows: anterior (top) -> posterior
    rows, cols = np.meshgrid(-g, g, indexing="ij")
    world = o + cols[..., None] * u + rows[..., None] * v
    gray = _window(
        sample_at_points(image.array, image.affine, world, 1, float(np.min(image.array))),
        image.modality,
    )
    rgb = np.repeat(gray[..., None], 3, -1)
    lab = sample_at_points(structures, image.affine, world, 0, 0)
    sac_full = (lab == L.SAC) | (lab == L.CORD)
    for code, col in CONTOUR_RGB.items():
        m = sac_full if code == L.SAC else lab == code
        if not m.any():
            continue
        edge = m & ~ndimage.binary_erosion(m, iterations=2)
        rgb[edge] = col
    img = Image.fromarray(rgb, "RGB").resize((n * scale, n * scale), Image.Resampling.NEAREST)
    draw = ImageDraw.Draw(img)
    font = _font(14)
    draw.text((4, 4), "A", fill=(255, 255, 0), font=font)
    draw.text((4, img.height // 2), "R", fill=(255, 255, 0), font=font)
    draw.text((img.width - 12, img.height // 2), "L", fill=(255, 255, 0), font=font)
    return _png(np.asarray(img))
