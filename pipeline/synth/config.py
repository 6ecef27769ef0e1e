"""Constants of the synthetic world: size tables, tissue codes, truth thresholds.

The thresholds below decide the SINS categories written to ``truth.json``. SINS gives
no numeric thresholds for alignment (SCORING.md 1.5); these are this generator's
conventions. Pathology is always *sampled clearly away* from every threshold (see the
``*_RANGE`` constants), so a truth label never depends on a borderline measurement.
"""

from __future__ import annotations

# --- truth thresholds (engine conventions, documented in docs/synth.md) -------------
#: Sagittal translation (mm) at or above which alignment is ``subluxation_translation``.
TRANSLATION_THRESHOLD_MM = 3.0
#: Focal angulation (deg, beyond the normal curve) at or above which alignment is
#: ``de_novo_deformity``.
DEFORMITY_THRESHOLD_DEG = 10.0
#: Body volume fraction (%) above which an uncollapsed body is ``no_collapse_gt50_involved``.
INVOLVEMENT_THRESHOLD_PCT = 50.0
#: Collapse boundary (%) between ``lt50`` and ``gt50``.
COLLAPSE_THRESHOLD_PCT = 50.0

# Sampling ranges, kept clear of the thresholds above.
TRANSLATION_RANGE_MM = (6.0, 10.0)
DEFORMITY_RANGE_DEG = (16.0, 24.0)
COLLAPSE_LT50_RANGE = (20.0, 35.0)
COLLAPSE_GT50_RANGE = (62.0, 75.0)
INVOLVEMENT_LOW_RANGE = (8.0, 35.0)
INVOLVEMENT_HIGH_RANGE = (65.0, 85.0)

GRADES = ("0", "1a", "1b", "1c", "2", "3")

# --- tissue codes used by the renderer (not the label maps) -------------------------
AIR, FAT, MUSCLE, VISCERA, LUNG, BLOOD = 0, 1, 2, 3, 4, 5
EPI_FAT, CSF, CORD, DISC = 6, 7, 8, 9
CORTICAL, TRABECULAR, POSTERIOR_BONE = 10, 11, 12
LYTIC, BLASTIC, EPIDURAL_TUMOUR = 13, 14, 15
N_TISSUES = 16
TISSUE_NAMES = (
    "air", "fat", "muscle", "viscera", "lung", "blood", "epidural_fat", "csf", "cord",
    "disc", "cortical_bone", "trabecular_bone", "posterior_bone", "lytic_lesion",
    "blastic_lesion", "epidural_tumour",
)  # fmt: skip

# --- anatomy tables (mm), anchored at VerSe numbers and interpolated between ------------
# number: (body height, body width, body depth, disc height below the vertebra)
BODY_TABLE: dict[int, tuple[float, float, float, float]] = {
    2: (16.0, 16.0, 15.0, 4.5),
    3: (14.0, 17.0, 16.0, 5.0),
    7: (14.5, 22.0, 17.0, 5.0),
    8: (15.5, 25.0, 18.0, 4.5),
    13: (19.0, 29.0, 25.0, 5.0),
    19: (23.0, 38.0, 30.0, 7.0),
    20: (25.0, 42.0, 32.0, 9.0),
    22: (27.0, 46.0, 34.0, 10.0),
    24: (26.0, 50.0, 35.0, 11.0),
    26: (26.0, 50.0, 35.0, 0.0),
}
# region anchors: bony canal (lat, AP) half-widths, sac (lat, AP), cord (lat, AP)
CANAL_TABLE: dict[int, tuple[float, float, float, float, float, float]] = {
    1: (13.0, 10.0, 10.0, 8.5, 6.0, 4.0),
    6: (13.0, 10.0, 10.0, 8.5, 6.0, 4.0),
    9: (10.0, 10.0, 8.0, 8.5, 4.5, 3.5),
    19: (10.0, 10.0, 8.0, 8.5, 4.5, 3.5),
    21: (12.0, 10.5, 9.5, 8.5, 4.5, 3.5),
    26: (13.0, 10.5, 9.5, 8.5, 4.5, 3.5),
}
#: Sac centre sits this far posterior of the bony canal centre (mm): the anterior
#: epidural space is wider, as the epidural tumour needs room there.
SAC_POSTERIOR_OFFSET = 0.5
