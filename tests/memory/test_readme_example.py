"""The README's "Use it in your own graph" example runs verbatim (here, from the checkout;
`test_wheel.py` runs it again from an installed wheel)."""

from __future__ import annotations

import asyncio
import re
import sys

from src.agent.memory.embedded import start_embedded
from tests.support import ROOT, fresh_database, readme_example, run_example, schema_of


def test_the_example_is_short() -> None:
    lines = [line for line in readme_example().splitlines() if line.strip()]
    assert len(lines) <= 16


async def test_the_readme_example_runs_on_an_empty_database(server_dsn: str) -> None:
    async with fresh_database(server_dsn, "vera_readme") as dsn:
        assert run_example(sys.executable, dsn, ROOT) == "you said: hello\n"
        tables, conversations = await schema_of(dsn)
    assert {"conversations", "checkpoints", "turn_leases", "vera_memory_migrations"} <= tables
    assert not tables & {"session_owners", "turn_events", "vera_app_migrations"}, (
        "the library creates only the checkpointer's tables"
    )
    assert conversations == 1


async def test_the_readme_example_runs_on_the_embedded_database_by_its_dsn(pg_dir) -> None:
    """The DSN the README gives for the embedded database of `make run`, with the data
    folder of a server started here instead of `$PWD/.data/postgres`."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    (given,) = re.findall(r'`DATABASE_URL="(postgresql://[^"]+)"`', readme)
    server, _ = await start_embedded(pg_dir, "veramoney_memory")
    try:
        dsn = given.replace("$PWD/.data/postgres", str(server.data_dir))
        assert run_example(sys.executable, dsn, ROOT) == "you said: hello\n"
    finally:
        await asyncio.to_thread(server.stop)
