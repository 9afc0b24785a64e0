"""The README's "Use it in your own graph" example runs verbatim (here, from the checkout;
`test_wheel.py` runs it again from an installed wheel)."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.support import fresh_database, readme_example, run_example, schema_of

ROOT = Path(__file__).resolve().parents[2]


def test_the_example_is_short() -> None:
    lines = [line for line in readme_example().splitlines() if line.strip()]
    assert len(lines) <= 16


async def test_the_readme_example_runs_on_an_empty_database(server_dsn: str) -> None:
    async with fresh_database(server_dsn, "vera_readme") as dsn:
        assert run_example(sys.executable, dsn, ROOT) == "you said: hello\n"
        tables, conversations = await schema_of(dsn)
    assert {"conversations", "checkpoints", "vera_schema_migrations"} <= tables
    assert "turn_leases" not in tables, "the library creates only the checkpointer's tables"
    assert conversations == 1
