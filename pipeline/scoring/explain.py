"""Structured explanation: for each point, the rule and the source that gave it."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pipeline.scoring.base import Component
from pipeline.scoring.tables import Tables


def explain_components(components: Iterable[Component], tables: Tables) -> list[dict[str, Any]]:
    """``[{system, component, points, rule, source, citation}]``; ``points`` is a list while undetermined."""
    out: list[dict[str, Any]] = []
    for c in components:
        out.append(
            {
                "system": c.system,
                "component": c.name,
                "value": c.value,
                "points": c.points if c.known else list(c.options),
                "rule": c.rule,
                "source": c.source,
                "citation": tables.source(c.source),
            }
        )
    return out


def format_explanation(items: list[dict[str, Any]]) -> str:
    """Plain-text rendering, one line per component, for ``spinemet score --format text``."""
    lines = []
    for it in items:
        pts = it["points"]
        pts_txt = (
            ""
            if it["system"] in ("noms", "escc")
            else f" [{pts if not isinstance(pts, list) else '/'.join(map(str, pts))} pt]"
        )
        lines.append(
            f"{it['system']:>9} {it['component']:<22}{pts_txt} {it['rule']}  <- {it['source']}: {it['citation']}"
        )
    return "\n".join(lines)
