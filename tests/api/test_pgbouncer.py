"""Vera behind a real PgBouncer in transaction pooling mode (`tests/pgbouncer.py`): what
only PgBouncer's variants of the `pooler` fixture check.

The memory, graph and API tests that must hold through a pooler take the `pooler` fixture
themselves, and run straight to PostgreSQL and through PgBouncer in two variants: the
asyncpg statement cache off (`pgbouncer`, the setting that works with any PgBouncer) and
on with PgBouncer's own prepared-statement support (`pgbouncer-prepared`, PgBouncer >=
1.21; skipped with the installed version's number when it is older). What transaction
pooling breaks (LISTEN, the statement cache without PgBouncer's support, session-level
locks) is in `tests/deployment/test_pgbouncer_limits.py`.
"""

from __future__ import annotations

import asyncio
import uuid
from urllib.parse import urlsplit

import asyncpg
import pytest

from src.agent.graph import build_graph
from src.agent.memory import ConversationCheckpointer
from src.agent.memory.migrations import MEMORY_LEDGER, load_migrations
from src.api.app import create_app
from src.wiring import APP_LEDGER, app_migrations
from tests.fakes import FakeModel
from tests.pgbouncer import BOUNCERS, Pooler
from tests.support import OFFLINE, ask, with_database

pytestmark = pytest.mark.parametrize("pooler", BOUNCERS, indirect=True)


async def test_the_apps_here_use_the_variants_statement_cache(
    database_dsn: str, pooler: Pooler
) -> None:
    """The API tests build their settings with `pooler.settings(database_dsn)`: the app
    reaches PgBouncer, with the variant's statement cache."""
    app = create_app(pooler.settings(database_dsn), model=FakeModel())
    async with app.router.lifespan_context(app):
        assert pooler.bouncer is not None
        assert app.state.store.statement_cache is pooler.statement_cache
        assert app.state.store.address == f"127.0.0.1:{pooler.bouncer.port}"


async def test_memory_across_turns_and_a_new_pool(database_dsn: str, pooler: Pooler) -> None:
    thread = str(uuid.uuid4())
    for question, answer in (("Hi, my name is Ana", None), ("What is my name?", "Ana")):
        store = pooler.store(database_dsn, max_size=2)
        await store.initialize()
        try:
            graph = build_graph(OFFLINE, checkpointer=ConversationCheckpointer(store))
            messages = await ask(graph, thread, question)
        finally:
            await store.close()
    assert answer in messages[-1].content and len(messages) == 4


async def test_migrations_apply_once_when_workers_start_together(
    empty_dsn: str, pooler: Pooler, server_dsn: str
) -> None:
    """`pg_advisory_xact_lock` is taken and released inside the migrations' one transaction,
    which PgBouncer keeps on one server connection: it serializes through transaction
    pooling as it does directly."""
    stores = [pooler.store(empty_dsn) for _ in range(4)]
    try:
        await asyncio.gather(*(s.initialize() for s in stores))
    finally:
        await asyncio.gather(*(s.close() for s in stores))
    direct = await asyncpg.connect(with_database(server_dsn, urlsplit(empty_dsn).path[1:]))
    try:
        versions = {
            ledger: [r[0] for r in await direct.fetch(f"SELECT version FROM {ledger} ORDER BY 1")]
            for ledger in (MEMORY_LEDGER, APP_LEDGER)
        }
        held = await direct.fetchval(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
        )  # none left behind on a pooled server connection
    finally:
        await direct.close()
    assert versions == {
        MEMORY_LEDGER: [m.version for m in load_migrations()],
        APP_LEDGER: [m.version for m in app_migrations().migrations],
    }
    assert held == 0
