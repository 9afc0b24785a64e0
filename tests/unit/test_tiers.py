"""The suite's own shape: every test module in a tier folder, helpers in support modules
(no test module imports another), and each test marked with its tier."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import TIERS, tier_of

TESTS = Path(__file__).resolve().parents[1]


def test_every_test_module_is_in_a_tier() -> None:
    loose = [p.name for p in TESTS.rglob("test_*.py") if tier_of(p) is None]
    assert not loose, f"move these into one of tests/{{{','.join(TIERS)}}}/: {loose}"


def test_no_test_module_imports_another() -> None:
    found = []
    for path in TESTS.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            found += [
                f"{path.relative_to(TESTS)}: {name}"
                for name in names
                if name.startswith("tests.") and name.rsplit(".", 1)[-1].startswith("test_")
            ]
    assert not found, found


def test_each_test_carries_its_tiers_marker(request: pytest.FixtureRequest) -> None:
    assert request.node.get_closest_marker("unit") is not None
    assert request.node.get_closest_marker("deployment") is None
