"""Realism check: HU of a synthetic CT next to the real CT in ../shared/data/ts-example-ct-dicom.

ROIs are defined the same way in both images:

* vertebral body: vertebra mask (real: TotalSegmentator T11/T12 prediction; synthetic:
  vertebra labels) eroded by 2 voxels in-plane, keeping voxels > 8 mm anterior of the
  cord centroid of that slice;
* canal: spinal-cord label eroded by 1 voxel (real label 79; synthetic structure 2);
* muscle: paraspinal (autochthon) muscle (real labels 86/87 eroded by 1; synthetic: voxels
  fully inside the rendered muscle tissue, posterior to the cord);
* fat: voxels inside the body with -190..-30 HU (the usual adipose window), in both.

Writes ``docs/synth_realism.png`` (axial and sagittal slices, real left, synthetic right)
and prints a table of mean / SD / 5th-95th percentiles. Usage:
``nice .venv/bin/python benchmarks/synth_realism.py``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
from PIL import Image
from scipy import ndimage

from pipeline.io import open_study
from pipeline.io.volume import LPS_TO_RAS, Volume
from pipeline.synth import config as C
from pipeline.synth.acquisition import acquire, ct_axial
from pipeline.synth.generator import StudyOptions, random_world
from pipeline.synth.world import sample_world

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT / ".." / "shared" / "data" / "ts-example-ct-dicom"


def _erode2d(m: np.ndarray, it: int) -> np.ndarray:
    return ndimage.binary_erosion(m, structure=np.ones((3, 3, 1), bool), iterations=it) if it else m


def _body_roi(vert: np.ndarray, cord: np.ndarray, affine: np.ndarray) -> np.ndarray:
    out = np.zeros_like(vert)
    er = _erode2d(vert, 2)
    sp_y = np.linalg.norm(affine[:3, 1])
    for k in range(vert.shape[2]):
        cj = np.argwhere(cord[:, :, k])
        if len(cj) == 0:
            continue
        yc = cj[:, 1].mean()
        jj = np.arange(vert.shape[1])[None, :]
        out[:, :, k] = er[:, :, k] & ((yc - jj) * sp_y > 8)  # canonical axis 1 = +P
    return out


def _stats(x: np.ndarray) -> dict[str, float]:
    return {"n": int(x.size), "mean": float(np.mean(x)), "sd": float(np.std(x)),
            "p5": float(np.percentile(x, 5)), "p95": float(np.percentile(x, 95))}  # fmt: skip


def real_rois() -> tuple[Volume, dict[str, np.ndarray]]:
    vol = open_study(REAL / "dicom").primary  # type: ignore[attr-defined]
    img = nib.load(REAL / "example_seg_dicom_totalseg_fast.nii.gz")
    lab = Volume(
        np.asarray(img.dataobj).astype(np.int16), LPS_TO_RAS @ img.affine, "CT"
    ).to_canonical()
    if lab.shape != vol.shape or not np.allclose(lab.affine, vol.affine, atol=1e-2):
        raise SystemExit("label grid does not match the CT grid")
    a = vol.array
    body = a > -300
    body = ndimage.binary_fill_holes(body)
    cord = lab.array == 79
    rois = {
        "vertebral body": _body_roi(np.isin(lab.array, [32, 33]), cord, vol.affine),
        "canal (cord)": _erode2d(cord, 1),
        "muscle (paraspinal)": _erode2d(np.isin(lab.array, [86, 87]), 1),
        "fat": body & (a >= -190) & (a <= -30),
    }
    return vol, rois


def synth_rois(seed: int = 3) -> tuple[Volume, dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    world, plan = random_world(
        rng, StudyOptions(region="thoracolumbar", grade="0", lesion_type="none")
    )
    s = ct_axial(world, rng, orientation="standard", slice_mm=2.0, pixel=0.977, matrix=320, max_slices=60,
                 centre_level=19)  # fmt: skip
    img, lab = acquire(world, s, rng)
    vol = Volume(img, s.affine, "CT").to_canonical()
    onehot = np.zeros(C.N_TISSUES, np.float32)
    onehot[C.MUSCLE] = 1.0
    (musc,), _ = sample_world(world, s.shape, s.affine, [onehot], labels=False)
    can = {k: Volume(v, s.affine, "CT").to_canonical().array for k, v in lab.items()}
    muscle = Volume(musc, s.affine, "CT").to_canonical().array > 0.99
    cord = can["structures"] == 2
    a = vol.array
    body = ndimage.binary_fill_holes(a > -300)
    # paraspinal: muscle posterior to the cord centroid of the slice
    post = np.zeros_like(muscle)
    for k in range(a.shape[2]):
        cj = np.argwhere(cord[:, :, k])
        if len(cj):
            post[:, int(cj[:, 1].mean()) :, k] = True
    rois = {
        "vertebral body": _body_roi(can["vertebrae"] > 0, cord, vol.affine),
        "canal (cord)": _erode2d(cord, 1),
        "muscle (paraspinal)": muscle & post,
        "fat": body & (a >= -190) & (a <= -30),
    }
    return vol, rois


def _win(a: np.ndarray) -> np.ndarray:
    return (np.clip((a + 250) / 1250, 0, 1) * 255).astype(np.uint8)


def picture(real: Volume, syn: Volume, out: Path) -> None:
    def panels(v: Volume, k: int) -> list[Image.Image]:
        sp = v.spacing
        bone = v.array[:, :, k] > 150
        ci = int(np.argmax(bone.sum(axis=1)))  # column through the spine
        cj = int(np.median(np.argwhere(bone[ci])))
        half = [int(150 / sp[0]), int(150 / sp[1])]
        i0, j0 = max(0, ci - half[0]), max(0, cj - int(200 / sp[1]))
        crop = v.array[i0 : ci + half[0], j0 : j0 + int(300 / sp[1]), k]
        ax = Image.fromarray(_win(crop.T)).resize(
            (int(crop.shape[0] * sp[0]), int(crop.shape[1] * sp[1]))
        )
        sag = Image.fromarray(_win(v.array[ci, :, ::-1].T))
        sag = sag.resize((int(v.shape[1] * sp[1]), int(v.shape[2] * sp[2])))
        return [ax, sag]

    pr = panels(real, real.shape[2] // 2)
    ps = panels(syn, syn.shape[2] // 2)
    w = max(pr[0].size[0], ps[0].size[0])
    h = pr[0].size[1] + max(pr[1].size[1], ps[1].size[1]) + 10
    canvas = Image.new("L", (2 * w + 10, h), 0)
    for col, (ax, sag) in enumerate((pr, ps)):
        canvas.paste(ax, (col * (w + 10), 0))
        canvas.paste(sag, (col * (w + 10), ax.size[1] + 10))
    canvas = canvas.resize((canvas.size[0] * 2 // 3, canvas.size[1] * 2 // 3))
    canvas.save(out)


def main() -> int:
    if not REAL.exists():
        print(f"real CT not found at {REAL}")
        return 0
    real, rr = real_rois()
    syn, rs = synth_rois()
    table = {}
    print(f"{'ROI':22s} {'real mean/sd [p5,p95]':32s} {'synthetic mean/sd [p5,p95]':32s}")
    for k in rr:
        a, b = _stats(real.array[rr[k]]), _stats(syn.array[rs[k]])
        table[k] = {"real": a, "synthetic": b}
        print(f"{k:22s} {a['mean']:7.1f}/{a['sd']:5.1f} [{a['p5']:6.0f},{a['p95']:6.0f}] n={a['n']:<7d}"
              f" {b['mean']:7.1f}/{b['sd']:5.1f} [{b['p5']:6.0f},{b['p95']:6.0f}] n={b['n']}")  # fmt: skip
    picture(real, syn, ROOT / "docs" / "synth_realism.png")
    if len(sys.argv) > 1:
        Path(sys.argv[1]).write_text(json.dumps(table, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
