"""``open_study``: from a path (DICOM folder or NIfTI file) to role-keyed volumes.

Several studies under one path: the study whose selection fills the most roles is
taken (ties: more slices in the picked series, more loadable series, then the smaller
study key), and a
``MULTIPLE_STUDIES`` warning names how many were ignored. Processing every study is
the batch runner's job.

NIfTI input: the single volume gets the role ``ct_axial`` for CT; for MR,
``mr_sagittal_t2`` or ``mr_axial_t2``, the plane coming from the thickest voxel axis
(for isotropic voxels: the axis of a thin slab, else sagittal; coronal maps to the
sagittal role), and T2 is an assumption recorded in ``messages`` (NIfTI carries no
sequence information). The modality is the ``modality`` argument, else a reported guess.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import InputError
from pipeline.io.dicom_load import load_series
from pipeline.io.discovery import Discovery, discover_all
from pipeline.io.model import Finding, LoadedStudy
from pipeline.io.nifti import is_nifti, read_nifti
from pipeline.io.selection import choose_study, load_rules
from pipeline.io.volume import Modality, Volume


def nifti_role(vol: Volume) -> tuple[str, str]:
    """Role of a NIfTI volume from its modality and plane, and the reasoning."""
    if vol.modality == "CT":
        return "ct_axial", "CT volume: role ct_axial (any plane)"
    sp = vol.spacing
    shape = np.asarray(vol.shape)
    planes = ("sagittal", "coronal", "axial")  # canonical axis 0 = L/R, 1 = A/P, 2 = S/I
    if np.allclose(sp, sp[0], rtol=0.05):
        thin = int(np.argmin(shape))
        if shape[thin] * 2 <= np.min(np.delete(shape, thin)):
            plane = planes[thin]
            why = (
                f"isotropic voxels, slab thinnest along axis {thin} ({shape[thin]} voxels): {plane}"
            )
        else:
            plane = "sagittal"
            why = "isotropic voxels, no thin slab axis: plane assumed sagittal"
    else:
        thick = int(np.argmax(sp))
        plane = planes[thick]
        why = f"thickest voxel axis {thick} ({sp[thick]:.2f} mm): {plane}"
    if plane == "coronal":
        plane = "sagittal"
        why += " (coronal MR mapped to the sagittal role)"
    return f"mr_{plane}_t2", f"MR volume, {why}; weighting T2 assumed (NIfTI has no sequence tags)"


def _open_nifti(path: Path, modality: Modality | None) -> LoadedStudy:
    vol = read_nifti(path, modality=modality)
    role, why = nifti_role(vol)
    vol.meta["role"] = role
    msgs = [f"NIfTI {path.name}: modality {vol.modality} ({vol.meta['modality_source']})", why]
    warnings = []
    if modality is None:
        warnings.append(
            Finding(
                "MODALITY_GUESSED",
                "warning",
                f"modality {vol.modality} guessed from intensities; pass --modality to be sure",
            )
        )
    return LoadedStudy(volumes={role: vol}, study_uid=path.name, warnings=warnings, messages=msgs)


def open_study(
    path: str | Path,
    modality: Modality | None = None,
    rules: dict[str, Any] | str | None = None,
    discovery: Discovery | None = None,
    study_uid: str | None = None,
) -> LoadedStudy:
    """Open one study: discover, select series by role, load each picked series.

    Parameters
    ----------
    path : str or Path
        DICOM folder / file, or a ``.nii`` / ``.nii.gz`` file.
    modality : {"CT", "MR"}, optional
        For NIfTI input (guessed and reported when omitted); for DICOM it restricts the
        roles loaded to that modality.
    rules : dict or str, optional
        Selection rules (default ``configs/series_selection.yaml``).
    discovery : Discovery, optional
        A previous :func:`~pipeline.io.discovery.discover_all` result to reuse.
    study_uid : str, optional
        Take this study (its StudyInstanceUID or fallback key) instead of choosing.

    Raises
    ------
    InputError
        ``INPUT_NOT_FOUND``; ``NO_DICOM_FILES`` (nothing readable as DICOM);
        ``STUDY_NOT_FOUND`` (``study_uid`` given but absent);
        ``NO_USABLE_SERIES`` (no series passed the rules and checks, or none decoded).
    """
    p = Path(path)
    if not p.exists():
        raise InputError("INPUT_NOT_FOUND", f"no such file or folder: {p}")
    if p.is_file() and is_nifti(p):
        return _open_nifti(p, modality)
    doc = load_rules(rules)
    disc = discovery or discover_all(p, doc)
    if not disc.studies:
        codes = sorted({s.code for s in disc.skipped})
        raise InputError(
            "NO_DICOM_FILES",
            f"no DICOM images among {disc.n_files} file(s) under {p.name or p}"
            + (f" (skipped: {', '.join(codes)})" if codes else "")
            + ("; pass a NIfTI file itself, with --modality" if "NIFTI_FILE" in codes else ""),
        )
    if study_uid is not None:
        wanted = [st for st in disc.studies if st.study_uid == study_uid]
        if not wanted:
            raise InputError(
                "STUDY_NOT_FOUND",
                f"study {study_uid} not among the {len(disc.studies)} found under {p.name or p}",
            )
        study, sel = choose_study(wanted, doc)
    else:
        study, sel = choose_study(disc.studies, doc)
    warnings: list[Finding] = []
    messages: list[str] = []
    if len(disc.studies) > 1 and study_uid is None:
        warnings.append(
            Finding(
                "MULTIPLE_STUDIES",
                "warning",
                f"{len(disc.studies)} studies found; using {study.study_uid} "
                f"({len(sel.picked)} role(s) filled), ignoring the others",
            )
        )
    if disc.skipped:
        messages.append(f"{len(disc.skipped)} file(s) skipped (not DICOM, DICOMDIR or unreadable)")
    volumes: dict[str, Volume] = {}
    loaded_keys: dict[str, str] = {}
    for role, series in sel.picked.items():
        if modality is not None and series.modality != modality:
            messages.append(f"{role}: skipped, modality {series.modality} not requested")
            continue
        # A picked series that fails to decode gives way to the next eligible one.
        for cand in sel.ranked.get(role, [series]):
            if cand.key in loaded_keys:  # one series filling two roles is loaded once
                vol = volumes[loaded_keys[cand.key]]
                vol = Volume(vol.array, vol.affine, vol.modality, dict(vol.meta))
            else:
                try:
                    vol = load_series(cand)
                except InputError as exc:
                    warnings.append(
                        Finding(
                            exc.code,
                            "warning",
                            f"{role}: series {cand.key} not loaded: {exc.message}",
                        )
                    )
                    continue
                warnings.extend(cand.warnings)
            if cand is not series:
                sel.picked[role] = cand
                sel.reasons.setdefault(cand.key, []).append(
                    f"{role}: picked instead of {series.key}, which failed to load"
                )
            vol.meta["role"] = role
            volumes[role] = vol
            loaded_keys.setdefault(cand.key, role)
            messages.append(
                f"{role}: series {cand.key} '{cand.description}' "
                f"{vol.shape} spacing {np.round(vol.spacing, 3).tolist()} mm"
            )
            break
    if not volumes:
        n = sum(len(st.series) for st in disc.studies)
        bad = sorted({f.code for st in disc.studies for s in st.series for f in s.errors})
        raise InputError(
            "NO_USABLE_SERIES",
            f"none of {n} series could be used"
            + (
                f" (geometry errors: {', '.join(bad)})"
                if bad
                else " (no series matched the selection rules)"
            ),
        )
    return LoadedStudy(
        volumes=volumes,
        study_uid=study.study_uid,
        warnings=warnings,
        messages=messages,
        selection=sel,
        studies=disc.studies,
    )
