"""Helpers of the scoring tests: the worked-case file and the expected-key comparison."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

CASES_PATH = (
    Path(__file__).resolve().parents[2] / ".." / "shared" / "clinical" / "scoring_cases.json"
)
SET_KEYS = ("flags", "noms_flags", "errors")


def load_cases() -> list[dict[str, Any]]:
    """The worked cases, or [] when the shared folder is absent."""
    if not CASES_PATH.exists():
        return []
    return list(json.loads(CASES_PATH.read_text(encoding="utf-8"))["cases"])


def mismatches(expected: dict[str, Any], out: dict[str, Any]) -> list[str]:
    """Expected keys whose value differs (flags-like keys compared as sets).

    Keys beginning ``alternative_if_`` / ``wrong_if_`` document other conventions and are
    not outputs.
    """
    bad = []
    for key, want in expected.items():
        if key.startswith(("alternative_if_", "wrong_if_")):
            continue
        if key not in out:
            bad.append(f"{key}: missing (want {want!r})")
            continue
        got = out[key]
        same = set(got) == set(want) if key in SET_KEYS and isinstance(got, list) else got == want
        if not same:
            bad.append(f"{key}: got {got!r}, want {want!r}")
    return bad
