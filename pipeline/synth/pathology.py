"""Metastatic pathology of a synthetic spine: osseous lesions and epidural tumour.

Everything is a parameterised shape in a vertebra's local frame (lesions) or in the
canal's curve coordinates (epidural tumour), so the truth follows from the parameters.

Epidural tumour and the Bilsky grade
------------------------------------
The tumour grows from the posterior body wall into the anterior epidural space. In the
canal cross-section (``u`` left, ``v`` posterior, origin at the thecal-sac centre) the
construction at the level's central plateau is, by grade:

* ``1a``: tumour fills the epidural space up to the sac and is clipped by it: the sac
  contour is untouched.
* ``1b``: tumour front ``d`` = 2.5-3.0 mm inside the sac: the sac is indented, the cord
  (>= 1.5 mm away) is not reached.
* ``1c``: tumour front passes the cord's anterior surface and is clipped by the cord:
  contact, cord shape unchanged.
* ``2``: cord flattened (AP x0.50-0.62, width x1.10-1.20) and pushed back so that
  2.0-2.6 mm of CSF remains behind it; tumour abuts its new anterior surface.
* ``3``: cord flattened (AP x0.35-0.45, width x1.25-1.35) against the posterior sac wall
  and the tumour fills all remaining sac space over the plateau: no CSF around the cord.

Along the canal the deformation follows a plateau of length ``2 * plateau`` with cosine
tapers, so axial slices several millimetres thick still cut the worst section.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.synth import config as C


@dataclass
class Lesion:
    """An ellipsoidal osseous metastasis in one vertebra (local frame, mm)."""

    number: int
    kind: str  # "lytic" | "blastic"
    centre: tuple[float, float, float]
    radii: tuple[float, float, float]
    site: str  # "body", "pedicle_left", "pedicle_right", "posterior"
    shape: str = "ellipsoid"  # or "cylinder" (elliptic cylinder along local z)


@dataclass
class Epidural:
    """Epidural tumour at one level, built to a Bilsky grade (see module docstring)."""

    number: int
    grade: str
    w0: float  # arc length of the worst section
    u_off: float
    r_u: float
    r_v: float
    plateau: float  # half-length of the full-severity section
    taper: float
    d_1b: float = 0.0
    kv: float = 1.0
    ku: float = 1.0
    p_csf: float = 0.0


def sample_epidural(
    number: int, grade: str, w0: float, rng: np.random.Generator, scale: float
) -> Epidural:
    """Draw the shape parameters of an epidural tumour of ``grade`` at ``number``."""
    e = Epidural(
        number=number, grade=grade, w0=w0, u_off=float(rng.uniform(-2, 2)),
        r_u=float(rng.uniform(5.5, 7.5) * scale), r_v=7.0, plateau=float(rng.uniform(6.0, 8.0)),
        taper=float(rng.uniform(4.0, 6.0)),
    )  # fmt: skip
    if grade == "1b":
        # A narrow front: the indentation stays deep against the sac's convex hull.
        e.d_1b = float(rng.uniform(2.5, 3.0))
        e.r_u = float(rng.uniform(3.5, 4.5) * scale)
    elif grade == "2":
        e.kv, e.ku, e.p_csf = (
            float(rng.uniform(0.50, 0.62)),
            float(rng.uniform(1.1, 1.2)),
            float(rng.uniform(2.0, 2.6)),
        )
    elif grade == "3":
        e.kv, e.ku = float(rng.uniform(0.35, 0.45)), float(rng.uniform(1.25, 1.35))
    return e


def severity(e: Epidural, w: np.ndarray) -> np.ndarray:
    """Deformation weight along the canal: 1 on the plateau, cosine taper to 0."""
    d = np.abs(w - e.w0)
    t = np.clip((d - e.plateau) / e.taper, 0.0, 1.0)
    return (np.cos(t * np.pi / 2) ** 2).astype(np.float32)


def extent(e: Epidural) -> float:
    """Half-length of the tumour along the canal (mm)."""
    return e.plateau + e.taper


#: Levels where epidural tumour may be placed: the cord is present with constant size
#: cranial to them (so a reference section exists) and the conus is far.
EPIDURAL_LEVELS = (3, 4, 5, *range(10, 19))

__all__ = ["C", "EPIDURAL_LEVELS", "Epidural", "Lesion", "extent", "sample_epidural", "severity"]
