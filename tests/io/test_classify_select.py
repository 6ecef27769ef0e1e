"""MR weighting / CT kernel classification and rule-based selection."""

from __future__ import annotations

import numpy as np
import pytest
from io_dicom_factory import write_series

from pipeline.io import discover, open_study, select_series
from pipeline.io.classify import kernel_class, mr_weighting
from pipeline.io.selection import load_rules

SAG = dict(row_dir=(0, 1, 0), col_dir=(0, 0, -1))
AX = dict(row_dir=(1, 0, 0), col_dir=(0, 1, 0))


@pytest.mark.parametrize(
    "header, weighting, fat",
    [
        ({"series_description": "t2_tse_sag_384"}, "T2", False),
        ({"series_description": "SAG T1 TSE"}, "T1", False),
        ({"series_description": "Sag STIR"}, "STIR", False),
        ({"protocol_name": "t2_tirm_sag"}, "STIR", False),
        ({"series_description": "T2 FS SAG"}, "T2", True),
        ({"series_description": "Ax T2 SPAIR"}, "T2", True),
        ({"repetition_time": 550.0, "echo_time": 12.0}, "T1", False),
        ({"repetition_time": 4000.0, "echo_time": 100.0}, "T2", False),
        (
            {
                "repetition_time": 3500.0,
                "echo_time": 40.0,
                "inversion_time": 150.0,
                "scanning_sequence": "SE\\IR",
            },
            "STIR",
            False,
        ),
        ({"repetition_time": 9000.0, "echo_time": 120.0, "inversion_time": 2500.0}, "FLAIR", False),
        ({"series_description": "DWI b800"}, "DWI", False),
        ({"acquisition_contrast": "T1"}, "T1", False),
        ({}, "other", False),
    ],
)
def test_mr_weighting_with_evidence(header, weighting, fat):
    w, f, ev = mr_weighting(header)
    assert (w, f) == (weighting, fat)
    if header:
        assert ev


def test_text_wins_over_timing_and_conflict_is_recorded():
    w, _, ev = mr_weighting(
        {"series_description": "T2 sag", "repetition_time": 500.0, "echo_time": 10.0}
    )
    assert w == "T2" and any("timing says T1" in e for e in ev)


@pytest.mark.parametrize(
    "kernel, cls",
    [
        ("B30f", "soft"),
        ("Br38f\\3", "soft"),
        ("STANDARD", "soft"),
        ("BONE", "bone"),
        ("B60f", "bone"),
        ("B70f", "lung"),
        ("LUNG", "lung"),
        ("I70f\\3", "lung"),
        ("FC07", "soft"),
        ("XYZ", "other"),
    ],
)
def test_kernel_classes(kernel, cls):
    assert kernel_class(kernel, "", load_rules()["kernel_classes"]) == cls


def _px(n=6):
    return np.full((n, 8, 8), 50, np.int16)


def test_mr_roles_are_selected_with_reasons(tmp_path):
    mr = dict(modality="MR", study_uid="1.1", for_uid="2.2")
    write_series(
        tmp_path / "loc",
        _px(3),
        SeriesDescription="localizer",
        SeriesNumber=1,
        ImageType=["ORIGINAL", "PRIMARY", "LOCALIZER"],
        **SAG,
        **mr,
    )
    write_series(
        tmp_path / "t2", _px(), SeriesDescription="T2 TSE SAG", SeriesNumber=2, **SAG, **mr
    )
    write_series(
        tmp_path / "t2fs", _px(), SeriesDescription="T2 TSE SAG FS", SeriesNumber=3, **SAG, **mr
    )
    write_series(
        tmp_path / "t1", _px(), SeriesDescription="T1 TSE SAG", SeriesNumber=4, **SAG, **mr
    )
    write_series(
        tmp_path / "stir", _px(), SeriesDescription="STIR SAG", SeriesNumber=5, **SAG, **mr
    )
    write_series(
        tmp_path / "ax_short", _px(4), SeriesDescription="T2 AX", SeriesNumber=6, **AX, **mr
    )
    write_series(
        tmp_path / "ax_long", _px(12), SeriesDescription="T2 AX long", SeriesNumber=7, **AX, **mr
    )
    studies = discover(tmp_path)
    sel = select_series(studies)
    by_desc = {role: s.description for role, s in sel.picked.items()}
    assert by_desc == {
        "mr_sagittal_t2": "T2 TSE SAG",
        "mr_sagittal_t1": "T1 TSE SAG",
        "mr_sagittal_stir": "STIR SAG",
        "mr_axial_t2": "T2 AX long",
    }
    loc = next(s for s in studies[0].series if s.description == "localizer")
    assert loc.classification.localizer
    assert any("localizer" in r for r in sel.reasons[loc.key])
    ls = open_study(tmp_path)
    assert ls.volumes["mr_sagittal_t2"].meta["weighting"] == "T2"
    assert ls.volumes["mr_sagittal_t2"].meta["plane"] == "sagittal"


def test_fat_sat_t2_stands_in_for_missing_stir(tmp_path):
    mr = dict(modality="MR", study_uid="1.1", for_uid="2.2")
    write_series(tmp_path / "t2", _px(), SeriesDescription="T2 SAG", SeriesNumber=2, **SAG, **mr)
    write_series(
        tmp_path / "t2fs", _px(), SeriesDescription="T2 SAG FS", SeriesNumber=3, **SAG, **mr
    )
    sel = select_series(discover(tmp_path))
    assert sel.picked["mr_sagittal_t2"].description == "T2 SAG"
    assert sel.picked["mr_sagittal_stir"].description == "T2 SAG FS"


def test_ct_prefers_soft_or_bone_kernel_then_thinnest(tmp_path):
    ct = dict(study_uid="1.1", for_uid="2.2")
    write_series(
        tmp_path / "lung",
        _px(),
        ConvolutionKernel="B70f",
        SeriesDescription="lung 1mm",
        step=(0, 0, 1.0),
        SeriesNumber=2,
        **ct,
    )
    write_series(
        tmp_path / "soft3",
        _px(),
        ConvolutionKernel="B30f",
        SeriesDescription="body 3mm",
        step=(0, 0, 3.0),
        SeriesNumber=3,
        **ct,
    )
    write_series(
        tmp_path / "soft1",
        _px(),
        ConvolutionKernel="B31f",
        SeriesDescription="body 1mm",
        step=(0, 0, 1.0),
        SeriesNumber=4,
        **ct,
    )
    write_series(
        tmp_path / "lungk",
        _px(),
        ConvolutionKernel="LUNG",
        SeriesDescription="x",
        step=(0, 0, 0.5),
        SeriesNumber=5,
        **ct,
    )
    sel = select_series(discover(tmp_path))
    assert sel.picked["ct_axial"].description == "body 1mm"
    lung = [k for k, rs in sel.reasons.items() if any("ranked below" in r for r in rs)]
    assert len(lung) == 3


def test_rules_can_be_replaced(tmp_path):
    write_series(tmp_path / "a", _px())
    rules = {"roles": {"ct_any": {"require": {"modality": "CT"}, "prefer": ["thinnest"]}}}
    sel = select_series(discover(tmp_path), rules=rules)
    assert list(sel.picked) == ["ct_any"]


def test_unknown_requirement_is_a_config_error(tmp_path):
    from pipeline.errors import ConfigError

    write_series(tmp_path / "a", _px())
    rules = {"roles": {"x": {"require": {"modalty": "CT"}}}}
    with pytest.raises(ConfigError) as ei:
        select_series(discover(tmp_path), rules=rules)
    assert ei.value.code == "CONFIG_INVALID" and "modalty" in ei.value.message
