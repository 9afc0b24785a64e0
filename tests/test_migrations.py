"""Schema migrations: from empty, from an older version, and two processes at once."""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from src.agent.memory import PostgresMemoryStore
from src.agent.memory.migrations import apply_migrations, load_migrations, schema_version
from tests.conftest import with_database

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
async def empty_dsn(server_dsn: str) -> AsyncIterator[str]:
    """A brand-new empty database, dropped afterwards."""
    name = f"vera_mig_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(server_dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield with_database(server_dsn, name)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def tables(dsn: str) -> set[str]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return {r["tablename"] for r in rows}
    finally:
        await conn.close()


async def test_from_empty_database_is_idempotent(empty_dsn: str) -> None:
    store = PostgresMemoryStore(empty_dsn, min_size=1, max_size=2)
    await store.initialize()
    await store.close()
    await store.initialize()  # second start applies nothing
    async with store.pool.acquire() as conn:
        assert await schema_version(conn) == len(load_migrations())
        assert await apply_migrations(conn) == []
        columns = await conn.fetch(
            "SELECT column_name, data_type, is_nullable, column_default FROM "
            "information_schema.columns WHERE table_name = 'conversations' "
            "ORDER BY ordinal_position"
        )
        index = await conn.fetchval(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'idx_conversations_session_id'"
        )
    await store.close()
    assert [(c["column_name"], c["data_type"]) for c in columns] == [
        ("id", "uuid"),
        ("session_id", "uuid"),
        ("messages", "jsonb"),
        ("created_at", "timestamp without time zone"),
        ("updated_at", "timestamp without time zone"),
    ]
    assert "(session_id)" in index
    assert {
        "conversations",
        "checkpoints",
        "checkpoint_blobs",
        "checkpoint_writes",
    } <= await tables(empty_dsn)


async def test_upgrade_from_older_version_keeps_rows(empty_dsn: str) -> None:
    conn = await asyncpg.connect(empty_dsn)
    try:
        await apply_migrations(conn, load_migrations()[:1])  # a database at version 1
        assert await schema_version(conn) == 1
        sid = uuid.uuid4()
        await conn.execute(
            "INSERT INTO conversations (session_id, messages) VALUES ($1, $2::jsonb)",
            sid,
            '[{"role": "user", "content": "kept"}]',
        )
    finally:
        await conn.close()
    store = PostgresMemoryStore(empty_dsn, min_size=1, max_size=2)
    await store.initialize()
    try:
        assert await store.get_messages(sid) == [{"role": "user", "content": "kept"}]
        async with store.pool.acquire() as c:
            assert await schema_version(c) == len(load_migrations())
    finally:
        await store.close()


async def test_two_processes_initialize_at_once(empty_dsn: str) -> None:
    code = (
        "import asyncio, sys\n"
        "from src.agent.memory import PostgresMemoryStore\n"
        "async def main():\n"
        "    s = PostgresMemoryStore(sys.argv[1], min_size=1, max_size=1)\n"
        "    await s.initialize(); await s.close()\n"
        "asyncio.run(main())\n"
    )
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", code, empty_dsn, cwd=ROOT, stderr=asyncio.subprocess.PIPE
        )
        for _ in range(4)
    ]
    results = await asyncio.gather(*(p.communicate() for p in procs))
    for proc, (_, err) in zip(procs, results, strict=True):
        assert proc.returncode == 0, err.decode()
    conn = await asyncpg.connect(empty_dsn)
    try:
        versions = [
            r["version"] for r in await conn.fetch("SELECT version FROM vera_schema_migrations")
        ]
    finally:
        await conn.close()
    assert sorted(versions) == list(range(1, len(load_migrations()) + 1))


async def test_statement_cache_can_be_disabled(database_dsn: str) -> None:
    store = PostgresMemoryStore(database_dsn, min_size=1, max_size=2, statement_cache=False)
    await store.initialize()
    try:
        async with store.pool.acquire() as conn:
            assert conn._stmt_cache.get_max_size() == 0
        assert await store.ping()
    finally:
        await store.close()
