"""The suite in tiers, one folder each: `unit/` (no database), `memory/` (the checkpointer
and the graph on a real PostgreSQL), `api/` (the app under an in-process uvicorn) and
`deployment/` (processes, browser, wheel, compose, workers, fuzzing). Each test is marked
with its tier (`pytest -m "not deployment"`); the database fixtures are in
`tests/database.py`."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

pytest_plugins = ["tests.database"]

TESTS = Path(__file__).resolve().parent
TIERS = ("unit", "memory", "api", "deployment")

# Hypothesis's wall-clock checks (a slow draw, a slow example) fail a property on a loaded
# 2-core machine, not when the property breaks: the suite names behaviour, not speed.
settings.register_profile(
    "vera", deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.load_profile("vera")


def tier_of(path: Path) -> str | None:
    """The tier of a test module: the folder under tests/ it is in (None: in none)."""
    parts = path.resolve().relative_to(TESTS).parts
    return parts[0] if len(parts) > 1 and parts[0] in TIERS else None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        tier = tier_of(item.path)
        if tier is not None:
            item.add_marker(getattr(pytest.mark, tier))
