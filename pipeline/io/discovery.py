"""Header-only discovery: walk a folder, group files into studies and series, check geometry.

Grouping
--------
1. Files are read header-only (no pixel data), in sorted path order, whatever their
   names; DICOMDIR files are skipped (the tree is walked instead); files that are not
   DICOM or whose header is corrupt are recorded in ``Discovery.skipped`` with a reason.
2. Study key: StudyInstanceUID, or when empty ``noUID:<FrameOfReferenceUID>``.
   Series key: SeriesInstanceUID, or when empty a hash of Frame of Reference, series
   number, description and modality.
3. Inside one series key, images are further split by modality, series number,
   description, Frame of Reference, matrix size, pixel spacing, echo / temporal
   position / stack ID and orientation (cosines within ``orientation_tol``), so a
   series UID that is empty, shared by unrelated series, or holding several
   orientations (localizers) or stacks never merges different geometries. A split
   series gets keys ``<uid>#1``, ``<uid>#2``, ...; when orientations differed each part
   carries a ``MIXED_ORIENTATIONS`` warning. When every slice position occurs N times
   (N acquisitions under one UID) the stack is split into N (``REPEATED_POSITIONS``).
4. Each resulting stack is sorted along its normal and checked
   (:mod:`pipeline.io.geometry`), then classified (:mod:`pipeline.io.classify`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.errors import InputError
from pipeline.io.classify import classify
from pipeline.io.geometry import (
    DEFAULTS,
    check_stack,
    cluster_orientations,
    dedupe,
    split_repeats,
)
from pipeline.io.headers import (
    HeaderError,
    _raw,
    expected_pixel_bytes,
    frames_from_header,
    non_image_reason,
    read_header,
    series_header,
)
from pipeline.io.model import Finding, Frame, Series, SkippedFile, Study
from pipeline.io.nifti import is_nifti
from pipeline.io.selection import load_rules

log = logging.getLogger(__name__)


@dataclass
class Discovery:
    """Everything header-only discovery found under a path."""

    studies: list[Study] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)
    n_files: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "n_files": self.n_files,
            "studies": [s.as_dict() for s in self.studies],
            "skipped": [
                {"path": str(s.path), "code": s.code, "reason": s.reason} for s in self.skipped
            ],
        }


def iter_files(path: Path) -> list[Path]:
    """All regular files under ``path`` (or ``path`` itself), sorted by path."""
    if path.is_file():
        return [path]
    out: list[Path] = []
    for root, dirs, files in os.walk(path):
        dirs.sort()
        out.extend(Path(root) / name for name in sorted(files))
    return out


def _short_hash(*parts: Any) -> str:
    return hashlib.sha1("|".join(str(p) for p in parts).encode()).hexdigest()[:10]


@dataclass
class _Item:
    frame: Frame
    header: dict[str, Any]
    ident: dict[str, Any]


def _ident(ds: Any) -> dict[str, Any]:
    sn = _raw(ds, "SeriesNumber")
    try:
        series_number = int(float(sn)) if sn else None
    except ValueError:
        series_number = None
    desc = ds.get("SeriesDescription", "")
    return {
        "study_uid": _raw(ds, "StudyInstanceUID") or "",
        "series_uid": _raw(ds, "SeriesInstanceUID") or "",
        "for_uid": _raw(ds, "FrameOfReferenceUID") or "",
        "modality": (_raw(ds, "Modality") or "").upper() or "OT",
        "series_number": series_number,
        "description": "" if desc is None else str(desc).strip(),
        "samples_per_pixel": ds.get("SamplesPerPixel") or 1,
    }


def _scan(
    files: list[Path],
    result: Discovery,
    groups: dict[tuple[str, str], list[_Item]],
    non_image: dict[tuple[str, str], list[tuple[Path, str, dict[str, Any], dict[str, Any]]]],
    truncated: set[Path],
) -> None:
    """Read every file's header into ``groups`` / ``non_image`` / ``result.skipped``."""
    header_cache: dict[tuple[Any, ...], dict[str, Any]] = {}
    for f in files:
        if is_nifti(f):
            result.skipped.append(
                SkippedFile(f, "NIfTI file: open it on its own (--modality)", "NIFTI_FILE")
            )
            continue
        try:
            ds, tail = read_header(f)
        except HeaderError as exc:
            result.skipped.append(SkippedFile(f, exc.reason, exc.code))
            continue
        try:
            ident = _ident(ds)
        except Exception as exc:  # noqa: BLE001 - malformed identification values
            result.skipped.append(
                SkippedFile(
                    f, f"unusable identification tags ({type(exc).__name__})", "DICOM_UNREADABLE"
                )
            )
            continue
        study_key = ident["study_uid"] or f"noUID:{ident['for_uid'] or 'none'}"
        series_key = ident["series_uid"] or "noUID-" + _short_hash(
            ident["for_uid"], ident["series_number"], ident["description"], ident["modality"]
        )
        try:
            why = non_image_reason(ds)
            header = header_cache.get(
                (study_key, series_key, ident["series_number"], ident["description"])
            ) or series_header(ds)
        except Exception as exc:  # noqa: BLE001
            result.skipped.append(
                SkippedFile(f, f"unusable header values ({type(exc).__name__})", "DICOM_UNREADABLE")
            )
            continue
        if why is not None:
            if why.startswith("DICOMDIR"):
                result.skipped.append(
                    SkippedFile(f, "DICOMDIR index (the folder is walked instead)", "DICOMDIR")
                )
            else:
                non_image[(study_key, series_key)].append((f, why, ident, header))
            continue
        # Series-level fields are read once per series (they are the same on every image).
        header_cache.setdefault(
            (study_key, series_key, ident["series_number"], ident["description"]), header
        )
        expected = expected_pixel_bytes(ds)
        if tail == 0:
            non_image[(study_key, series_key)].append((f, "no pixel data", ident, header))
            continue
        if expected is not None and tail < expected + 8:  # 8: smallest element header
            truncated.add(f)
        try:
            frames = frames_from_header(ds, f)
        except Exception as exc:  # noqa: BLE001 - malformed functional groups
            result.skipped.append(
                SkippedFile(
                    f, f"unusable frame geometry ({type(exc).__name__})", "DICOM_UNREADABLE"
                )
            )
            continue
        for fr in frames:
            groups[(study_key, series_key)].append(_Item(fr, header, ident))


def discover_all(path: str | Path, rules: dict[str, Any] | str | None = None) -> Discovery:
    """Discover studies and series under ``path`` (headers only), with skipped files.

    ``rules`` is the selection-rules document (default ``configs/series_selection.yaml``);
    its ``geometry`` section sets the check tolerances and ``kernel_classes`` the CT
    kernel classes.

    Raises
    ------
    InputError
        ``INPUT_NOT_FOUND`` when the path does not exist.
    """
    p = Path(path)
    if not p.exists():
        raise InputError("INPUT_NOT_FOUND", f"no such file or folder: {p}")
    doc = load_rules(rules)
    cfg = {**DEFAULTS, **(doc.get("geometry") or {})}
    cfg["kernel_classes"] = doc.get("kernel_classes") or {}
    result = Discovery()
    t0 = time.perf_counter()
    files = iter_files(p)
    result.n_files = len(files)

    groups: dict[tuple[str, str], list[_Item]] = defaultdict(list)
    non_image: dict[tuple[str, str], list[tuple[Path, str, dict[str, Any], dict[str, Any]]]] = (
        defaultdict(list)
    )
    truncated: set[Path] = set()
    with warnings.catch_warnings():
        # pydicom warns about every odd value in real-world headers; the checks below
        # report what matters for loading, so keep the user's terminal readable.
        warnings.simplefilter("ignore")
        _scan(files, result, groups, non_image, truncated)

    studies: dict[str, Study] = {}
    for (study_key, series_key), items in groups.items():
        st = studies.setdefault(study_key, Study(study_uid=study_key))
        for s in _build_series(series_key, items, cfg, truncated):
            st.series.append(s)
    for (study_key, series_key), objs in non_image.items():
        st = studies.setdefault(study_key, Study(study_uid=study_key))
        f, why, ident, header = objs[0]
        s = Series(
            key=series_key if (study_key, series_key) not in groups else series_key + "#obj",
            study_uid=ident["study_uid"],
            series_uid=ident["series_uid"],
            frame_of_reference_uid=ident["for_uid"],
            modality=ident["modality"],
            series_number=ident["series_number"],
            description=ident["description"],
            frames=[],
            header=header,
            findings=[Finding("NON_IMAGE_OBJECT", "error", f"{len(objs)} file(s): {why}")],
        )
        s.classification = classify(s, cfg)
        st.series.append(s)
    for st in studies.values():
        st.series.sort(
            key=lambda s: (s.series_number if s.series_number is not None else 1 << 30, s.key)
        )
    result.studies = sorted(studies.values(), key=lambda s: s.study_uid)
    log.debug(
        "discovery: %d files, %d studies, %d series, %d skipped in %.2f s",
        result.n_files,
        len(result.studies),
        sum(len(st.series) for st in result.studies),
        len(result.skipped),
        time.perf_counter() - t0,
    )
    return result


def _build_series(
    series_key: str, items: list[_Item], cfg: dict[str, Any], truncated: set[Path]
) -> list[Series]:
    """Split one series key's frames into single-geometry stacks and check each."""
    frames, dup_findings = dedupe([it.frame for it in items])
    by_frame = {id(it.frame): it for it in items}
    sub: dict[tuple[Any, ...], list[Frame]] = defaultdict(list)
    for fr in frames:
        it = by_frame[id(fr)]
        ps = None if fr.pixel_spacing is None else tuple(round(x, 4) for x in fr.pixel_spacing)
        k = (
            it.ident["modality"],
            it.ident["series_number"],
            it.ident["description"],
            it.ident["for_uid"],
            fr.rows,
            fr.columns,
            ps,
            it.ident["samples_per_pixel"],
            fr.echo_number,
            fr.temporal_index,
            fr.stack_id,
            # multi-frame: magnitude / phase / other frame types are separate stacks
            fr.image_type if fr.frame_index is not None else None,
        )
        sub[k].append(fr)
    # Orientations across the whole series key (sub-groups may already separate them).
    with_any = [f for f in frames if f.orientation is not None]
    n_ori = len(cluster_orientations(with_any, cfg["orientation_tol"])) if with_any else 0
    mixed = None
    if n_ori > 1:
        mixed = Finding(
            "MIXED_ORIENTATIONS",
            "warning",
            f"series held {n_ori} orientations; split, each orientation checked alone",
        )
    stacks: list[tuple[list[Frame], list[Finding]]] = []
    for members in sub.values():
        with_ori = [f for f in members if f.orientation is not None]
        without = [f for f in members if f.orientation is None]
        clusters = cluster_orientations(with_ori, cfg["orientation_tol"]) if with_ori else []
        extra: list[Finding] = [mixed] if mixed else []
        for cl in clusters:
            reps = split_repeats(cl, cfg)
            if reps is not None:
                rep_f = Finding(
                    "REPEATED_POSITIONS",
                    "warning",
                    f"every position occurs {len(reps)} times; split into {len(reps)} stacks",
                )
                stacks.extend((r, [*extra, rep_f]) for r in reps)
            else:
                stacks.append((cl, list(extra)))
        if without:
            stacks.append((without, list(extra)))
    out: list[Series] = []
    for idx, (stack, extra) in enumerate(stacks):
        it = by_frame[id(stack[0])]
        key = series_key if len(stacks) == 1 else f"{series_key}#{idx + 1}"
        geo = check_stack(stack, cfg)
        findings = [*dup_findings, *extra, *geo.findings]
        if it.ident["samples_per_pixel"] != 1:
            findings.insert(
                0,
                Finding(
                    "NOT_GRAYSCALE",
                    "error",
                    f"{it.ident['samples_per_pixel']} samples per pixel "
                    f"({it.header['photometric'] or '?'}): not a grey-scale image",
                ),
            )
        n_truncated = len({f.path for f in stack} & truncated)
        if n_truncated:
            findings.insert(
                0,
                Finding(
                    "TRUNCATED_FILE",
                    "error",
                    f"{n_truncated} file(s) shorter than their pixel data requires",
                ),
            )
        s = Series(
            key=key,
            study_uid=it.ident["study_uid"],
            series_uid=it.ident["series_uid"],
            frame_of_reference_uid=it.ident["for_uid"],
            modality=it.ident["modality"],
            series_number=it.ident["series_number"],
            description=it.ident["description"],
            frames=geo.frames,
            header=dict(it.header),
            findings=findings,
            slice_spacing=geo.spacing,
            tilt_deg=geo.tilt_deg,
            split_from=series_key if len(stacks) > 1 else None,
        )
        s.classification = classify(s, cfg)
        out.append(s)
    return out


def discover(path: str | Path, rules: dict[str, Any] | str | None = None) -> list[Study]:
    """Find the studies and series under ``path`` from headers only.

    Parameters
    ----------
    path : str or Path
        A folder (walked recursively, any file names) or a single DICOM file.
    rules : dict or str, optional
        Selection-rules document or path; its ``geometry:`` section overrides the check
        tolerances (:data:`pipeline.io.geometry.DEFAULTS`). Default: the project's
        ``configs/series_selection.yaml``.

    Returns
    -------
    list of Study
        Sorted by study key; each with its series (classified, geometry-checked).
        Files that were skipped are available from :func:`discover_all`.
    """
    return discover_all(path, rules).studies
