"""Header-only discovery speed: 1,000 small DICOM files in a few series.

Usage::

    .venv/bin/python benchmarks/bench_discovery.py [--files 1000] [--runs 5] [--path DIR]

Writes ``--files`` synthetic single-frame CT/MR files (4 series, names without
extension, a few hundred bytes of extra header each, 128x128 pixels) into a temporary
folder, then times :func:`pipeline.io.discover_all` on it (warm file cache) and prints
the median of ``--runs`` runs. ``--path`` times an existing folder instead.
Target (issue 2): a few seconds for 1,000 files.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, MRImageStorage, generate_uid

from pipeline.io import discover_all


def make_files(folder: Path, n_files: int, n_series: int = 4, size: int = 128) -> None:
    """Write ``n_files`` single-frame images spread over ``n_series`` series."""
    study = generate_uid()
    per = int(np.ceil(n_files / n_series))
    pixels = np.zeros((size, size), np.int16).tobytes()
    written = 0
    for s in range(n_series):
        series, for_uid = generate_uid(), generate_uid()
        ct = s % 2 == 0
        for k in range(min(per, n_files - written)):
            ds = Dataset()
            sop = generate_uid()
            ds.file_meta = FileMetaDataset()
            ds.file_meta.MediaStorageSOPClassUID = CTImageStorage if ct else MRImageStorage
            ds.file_meta.MediaStorageSOPInstanceUID = sop
            ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
            ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
            ds.SOPInstanceUID = sop
            ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = (
                study,
                series,
                for_uid,
            )
            ds.Modality = "CT" if ct else "MR"
            ds.SeriesNumber, ds.InstanceNumber = s + 1, k + 1
            ds.SeriesDescription = "body 1.0 B30f" if ct else "t2_tse_sag"
            ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
            ds.Manufacturer, ds.ConvolutionKernel = "SYNTH", "B30f"
            ds.ImagePositionPatient = [0.0, 0.0, float(k)]
            ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0] if ct else [0, 1, 0, 0, 0, -1]
            ds.PixelSpacing, ds.SliceThickness = [0.7, 0.7], 1.0
            ds.Rows = ds.Columns = size
            ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
            ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
            ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
            ds.add_new(0x00291010, "OB", bytes(600))  # private blob, like vendor CSA headers
            ds.PixelData = pixels
            ds.save_as(folder / f"{s}{k:05d}", enforce_file_format=True)
            written += 1


def time_discovery(path: Path, runs: int) -> tuple[float, list[float], int]:
    """Median and all run times of header-only discovery; number of series found."""
    discover_all(path)  # warm the file cache and imports
    times = []
    n_series = 0
    for _ in range(runs):
        t0 = time.perf_counter()
        d = discover_all(path)
        times.append(time.perf_counter() - t0)
        n_series = sum(len(st.series) for st in d.studies)
    return statistics.median(times), times, n_series


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--path", type=Path, help="time this folder instead of synthetic files")
    args = ap.parse_args()
    if args.path:
        n = sum(1 for p in args.path.rglob("*") if p.is_file())
        med, times, n_series = time_discovery(args.path, args.runs)
        print(f"{args.path}: {n} files, {n_series} series")
    else:
        with tempfile.TemporaryDirectory() as tmp:
            make_files(Path(tmp), args.files)
            n = args.files
            med, times, n_series = time_discovery(Path(tmp), args.runs)
        print(f"synthetic: {n} files, {n_series} series")
    print(
        f"header-only discovery: median {med:.3f} s over {args.runs} runs "
        f"({1000 * med / max(n, 1):.2f} ms/file; runs {', '.join(f'{t:.3f}' for t in times)})"
    )


if __name__ == "__main__":
    main()
