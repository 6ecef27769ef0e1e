"""Load the scoring tables (``configs/scoring.yaml``) once, and check their citations.

This is the only module of :mod:`pipeline.scoring` that touches the file system. The
scoring modules receive a :class:`Tables` object and stay pure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from pipeline.errors import ConfigError
from pipeline.paths import config_dir, load_yaml

CONFIG_NAME = "scoring.yaml"


@dataclass(frozen=True)
class Tables:
    """The parsed scoring configuration.

    Attributes
    ----------
    raw : dict
        The YAML document as loaded (point tables, bands, histology lists).
    conventions : dict
        ``{name: value}`` of the engine conventions (possibly overridden).
    """

    raw: dict[str, Any]
    conventions: dict[str, Any] = field(default_factory=dict)

    def source(self, key: str) -> str:
        """Full citation text of a source key (``fisher2010`` -> reference)."""
        return str(self.raw["sources"][key])

    def convention(self, name: str) -> Any:
        """Value of one engine convention."""
        return self.conventions[name]

    def convention_source(self, name: str) -> str:
        """Citation key of one engine convention."""
        return str(self.raw["conventions"][name]["source"])

    def with_conventions(self, **overrides: Any) -> Tables:
        """Copy with some conventions replaced (checked against their ``choices``)."""
        conv = dict(self.conventions)
        for name, value in overrides.items():
            spec = self.raw["conventions"].get(name)
            if spec is None:
                raise ConfigError("CONVENTION_UNKNOWN", f"no engine convention named {name!r}")
            choices = spec.get("choices")
            if choices is not None and value not in choices:
                raise ConfigError(
                    "CONVENTION_INVALID",
                    f"convention {name} must be one of {choices}, got {value!r}",
                )
            default = spec["value"]
            numeric = isinstance(default, (int, float)) and not isinstance(default, bool)
            if numeric and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise ConfigError(
                    "CONVENTION_INVALID", f"convention {name} must be a number, got {value!r}"
                )
            if isinstance(default, list) and not isinstance(value, list):
                raise ConfigError(
                    "CONVENTION_INVALID", f"convention {name} must be a list, got {value!r}"
                )
            conv[name] = value
        return Tables(self.raw, conv)


def iter_cited_entries(node: Any, path: str = "") -> list[tuple[str, Any]]:
    """Every table entry: each mapping whose values hold no further mapping (a leaf row).

    Returns ``(path, entry)`` pairs, so that a test (and :func:`check_citations`) can
    verify that each one names a source.
    """
    out: list[tuple[str, Any]] = []
    if isinstance(node, dict):
        if node and not any(isinstance(v, dict) for v in node.values()):
            out.append((path, node))
        for k, v in node.items():
            if isinstance(v, (dict, list)):
                out.extend(iter_cited_entries(v, f"{path}.{k}" if path else str(k)))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out.extend(iter_cited_entries(v, f"{path}[{i}]"))
    return out


def check_citations(raw: dict[str, Any]) -> None:
    """Raise ``ConfigError(CONFIG_UNCITED)`` if a table entry lacks a known source."""
    sources = raw.get("sources") or {}
    for path, entry in iter_cited_entries({k: v for k, v in raw.items() if k != "sources"}):
        src = entry.get("source")
        if src not in sources:
            raise ConfigError(
                "CONFIG_UNCITED", f"{CONFIG_NAME}: entry {path} has no known source ({src!r})"
            )


def parse_tables(raw: dict[str, Any]) -> Tables:
    """Validate a loaded YAML document and wrap it."""
    if not isinstance(raw, dict) or "sins" not in raw or "sources" not in raw:
        raise ConfigError("CONFIG_INVALID", f"{CONFIG_NAME} lacks the 'sources'/'sins' sections")
    check_citations(raw)
    conv = {k: v["value"] for k, v in raw["conventions"].items()}
    return Tables(raw, conv)


@lru_cache(maxsize=4)
def _load(path: str) -> Tables:
    return parse_tables(load_yaml(path))


def load_tables(path: str | Path | None = None) -> Tables:
    """Load (once, cached) the scoring tables from ``configs/scoring.yaml`` or ``path``."""
    p = Path(path) if path is not None else config_dir() / CONFIG_NAME
    return _load(str(p))
