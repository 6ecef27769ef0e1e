"""Fixtures of the scoring tests."""

from __future__ import annotations

from typing import Any

import pytest
from scoring_helpers import load_cases


@pytest.fixture(scope="session")
def cases() -> list[dict[str, Any]]:
    data = load_cases()
    if not data:
        pytest.skip("../shared/clinical/scoring_cases.json not available")
    return data
