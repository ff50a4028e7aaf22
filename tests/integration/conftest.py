"""The integration tier: real Ray, real servers, `python launch.py` in subprocesses, faults.
Every test here is `slow` (deselect the tier with -m "not slow", or run tests/unit)."""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.slow)
