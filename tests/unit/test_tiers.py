"""The suite's own shape: every test module in a tier folder, each test marked with its
tier."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import TIERS, tier_of

TESTS = Path(__file__).resolve().parents[1]


def test_every_test_module_is_in_a_tier() -> None:
    loose = [p.name for p in TESTS.rglob("test_*.py") if tier_of(p) is None]
    assert not loose, f"move these into one of tests/{{{','.join(TIERS)}}}/: {loose}"


def test_each_test_carries_its_tiers_marker(request: pytest.FixtureRequest) -> None:
    assert request.node.get_closest_marker("unit") is not None
    assert request.node.get_closest_marker("deployment") is None
