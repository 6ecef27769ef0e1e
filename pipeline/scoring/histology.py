"""Histology vocabulary: normalise free text to one canonical term and its site.

One histology is entered once and projected into Tokuhashi (primary site), Tomita
(growth), modified Bauer (lung / favourable primary) and NOMS (radiosensitivity), see
SCORING.md 0.1. Terms and aliases live in ``configs/scoring.yaml`` (``histology``).
"""

from __future__ import annotations

import re

from pipeline.scoring.tables import Tables


def normalise_term(text: str) -> str:
    """Lower case, words joined by underscores (``"Renal cell"`` -> ``"renal_cell"``)."""
    return re.sub(r"[^a-z0-9]+", "_", text.strip().lower()).strip("_")


def canonical(text: str | None, tables: Tables) -> str | None:
    """Canonical histology name for ``text``, or None when the term is not in the vocabulary."""
    if text is None:
        return None
    term = normalise_term(text)
    vocab = tables.raw["histology"]
    if term in vocab:
        return term
    for name, row in vocab.items():
        if term in row.get("aliases", []):
            return str(name)
    return None


def site(name: str, tables: Tables) -> str:
    """Site of a canonical histology (``nsclc`` -> ``lung``)."""
    return str(tables.raw["histology"][name]["site"])


def is_generic(name: str, tables: Tables) -> bool:
    """True when the term names only the site (``lung``), not a sub-type (``nsclc``)."""
    return site(name, tables) == name


def broader(a: str, b: str, tables: Tables) -> bool:
    """True when canonical ``a`` names a group that contains ``b``: the site of a sub-type
    (``lung`` > ``nsclc``) or a listed group (``colorectal`` > ``rectum``)."""
    if a == b:
        return False
    row = tables.raw["histology"][a]
    return b in row.get("includes", []) or (is_generic(a, tables) and site(b, tables) == a)
