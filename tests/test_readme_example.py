"""The README's "Use it in your own graph" example runs verbatim (here, from the checkout;
`test_wheel.py` runs it again from an installed wheel)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import asyncpg

from tests.support import fresh_database

ROOT = Path(__file__).resolve().parents[1]


def readme_example() -> str:
    """The first python block of the README's "Use it in your own graph" section."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Use it in your own graph", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match is not None, "no python block in the README's section"
    return match[1]


def run_example(python: str, dsn: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    """Run the example with `python` on `dsn`; returns what it printed."""
    done = subprocess.run(
        [python, "-c", readme_example()],
        cwd=cwd,
        env={**(env or os.environ), "DATABASE_URL": dsn},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


async def schema_of(dsn: str) -> tuple[set[str], int]:
    """The public tables of `dsn`'s database and its number of conversations."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return {r["tablename"] for r in rows}, await conn.fetchval(
            "SELECT count(*) FROM conversations"
        )
    finally:
        await conn.close()


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
