"""The two bundled sample studies (``sample_data/``): ``python -m pipeline.synth.samples OUT``."""

from __future__ import annotations

import sys
from pathlib import Path

from pipeline.synth.generator import StudyOptions
from pipeline.synth.study import StudyResult, generate_study


def make_samples(out: str | Path) -> tuple[StudyResult, StudyResult]:
    """Write ``out/ct`` (CT with a collapsed lytic level) and ``out/mr`` (T2 sag + ax, Bilsky 3)."""
    root = Path(out)
    ct = generate_study(
        101, root / "ct",
        StudyOptions(region="thoracolumbar", grade="2", lesion_type="lytic", collapse="gt50", alignment="normal",
                     posterolateral="unilateral", wedge=True, extra_lesions=1),
        modality="CT", orientation="standard", ct_matrix=160, ct_max_slices=64, ct_pixel=1.0, ct_slice=3.0,
        write_images_nifti=False,
    )  # fmt: skip
    mr = generate_study(
        202, root / "mr",
        StudyOptions(region="thoracic", grade="3", lesion_type="mixed", collapse="lt50", alignment="translation",
                     posterolateral="bilateral", extra_lesions=1),
        modality="MR", orientation="standard", mr_matrix=192, write_images_nifti=False,
    )  # fmt: skip
    return ct, mr


if __name__ == "__main__":
    make_samples(sys.argv[1] if len(sys.argv) > 1 else "sample_data")
