"""Schema migrations: from empty, from an older version, and two processes at once."""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from pathlib import Path

import asyncpg
import pytest

from src.agent.memory import PostgresMemoryStore
from src.agent.memory.migrations import (
    MEMORY_LEDGER,
    Migration,
    MigrationSet,
    applied_versions,
    apply_set,
    load_migrations,
    memory_migrations,
)
from src.agent.memory.schema import upgrade_schema
from src.wiring import APP_LEDGER, app_migrations

ROOT = Path(__file__).resolve().parents[2]


def test_the_checkpointer_and_the_app_number_their_migrations_on_their_own() -> None:
    """Each owner's versions run 1, 2, ... in its own ledger; the lease table is the
    checkpointer's (its writes are fenced by it)."""
    for migrations in (memory_migrations(), app_migrations()):
        versions = [m.version for m in migrations.migrations]
        assert versions == list(range(1, len(versions) + 1)), migrations.ledger
    assert "turn_leases" in {m.name for m in memory_migrations().migrations}
    assert [m.name for m in app_migrations().migrations][:3] == [
        "turn_events",
        "session_owners",
        "session_ttl",
    ]
    assert (memory_migrations().ledger, app_migrations().ledger) == (MEMORY_LEDGER, APP_LEDGER)


def test_finding_no_migration_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no migration files"):
        load_migrations(tmp_path)
    (tmp_path / "0001_a.sql").write_text("SELECT 1")
    (tmp_path / "0001_b.sql").write_text("SELECT 1")
    with pytest.raises(ValueError, match="used twice"):
        load_migrations(tmp_path)
    twice = (Migration(1, "a", ""), Migration(1, "b", ""))
    with pytest.raises(ValueError, match="used twice"):
        MigrationSet("mine", twice)
    with pytest.raises(ValueError, match="lower-case SQL name"):
        MigrationSet("my ledger; DROP TABLE x", ())


def every_version(conn_versions: dict[str, set[int]]) -> bool:
    return conn_versions == {
        MEMORY_LEDGER: {m.version for m in memory_migrations().migrations},
        APP_LEDGER: {m.version for m in app_migrations().migrations},
    }


async def ledgers(conn: asyncpg.Connection) -> dict[str, set[int]]:
    return {ledger: await applied_versions(conn, ledger) for ledger in (MEMORY_LEDGER, APP_LEDGER)}


async def tables(dsn: str) -> set[str]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return {r["tablename"] for r in rows}
    finally:
        await conn.close()


async def test_from_empty_database_is_idempotent(empty_dsn: str) -> None:
    store = PostgresMemoryStore(
        empty_dsn, min_size=1, max_size=2, extra_migrations=[app_migrations()]
    )
    await store.initialize()
    await store.close()
    await store.initialize()  # second start applies nothing
    async with store.pool.acquire() as conn:
        assert every_version(await ledgers(conn))
        assert not await upgrade_schema(conn)
        assert not await upgrade_schema(conn, [app_migrations()])
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
        first = MigrationSet(MEMORY_LEDGER, memory_migrations().migrations[:1])
        async with conn.transaction():
            await apply_set(conn, first)  # a database at version 1
        assert await applied_versions(conn, MEMORY_LEDGER) == {1}
        sid = uuid.uuid4()
        await conn.execute(
            "INSERT INTO conversations (session_id, messages) VALUES ($1, $2::jsonb)",
            sid,
            '[{"role": "user", "content": "kept"}]',
        )
    finally:
        await conn.close()
    store = PostgresMemoryStore(
        empty_dsn, min_size=1, max_size=2, extra_migrations=[app_migrations()]
    )
    await store.initialize()
    try:
        assert await store.get_messages(sid) == [{"role": "user", "content": "kept"}]
        async with store.pool.acquire() as c:
            assert every_version(await ledgers(c))
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
        versions = await ledgers(conn)
    finally:
        await conn.close()
    assert versions == {MEMORY_LEDGER: {m.version for m in load_migrations()}, APP_LEDGER: set()}


async def test_statement_cache_can_be_disabled(database_dsn: str) -> None:
    store = PostgresMemoryStore(database_dsn, min_size=1, max_size=2, statement_cache=False)
    await store.initialize()
    try:
        async with store.pool.acquire() as conn:
            assert conn._stmt_cache.get_max_size() == 0
        assert await store.ping()
    finally:
        await store.close()


async def test_upgrade_to_the_message_store_keeps_every_checkpoint_exact(empty_dsn: str) -> None:
    """Rows written at schema 4 (a log holding two branches, short channel versions) read
    back exactly after migration 5 (`message_store`), and the transcript shows only the
    latest branch."""
    from langchain_core.messages import HumanMessage

    from src.agent.memory import ConversationCheckpointer
    from src.agent.memory.jsonb import dumps_jsonb
    from src.agent.memory.transcript import message_to_element

    conn = await asyncpg.connect(empty_dsn)
    sid = uuid.uuid4()
    try:
        upto_4 = MigrationSet(MEMORY_LEDGER, memory_migrations().migrations[:4])
        async with conn.transaction():
            await apply_set(conn, upto_4)
        saver = ConversationCheckpointer(PostgresMemoryStore(empty_dsn))
        first, second = HumanMessage("first", id="m1"), HumanMessage("second", id="m2")
        edited = HumanMessage("first, edited", id="m1")
        log = [message_to_element(m, saver.serde) for m in (first, second, edited)]
        await conn.execute(
            "INSERT INTO conversations (session_id, messages) VALUES ($1, $2::jsonb)",
            sid,
            dumps_jsonb(log),
        )
        # cp1: [first, second]; cp2 (latest, forked from cp0): [edited]
        for cid, parent, version, ranges in [
            ("1ef00000-0000-6000-8000-000000000001", None, "0000000002.0000abcd", "[[0,2]]"),
            ("1ef00000-0000-6000-8000-000000000002", None, "0000000002.1a2b3c4d", "[[2,3]]"),
        ]:
            body = {
                "v": 4,
                "id": cid,
                "ts": "2026-01-01T00:00:00+00:00",
                "channel_values": {},
                "channel_versions": {"messages": version},
                "versions_seen": {"node": {"messages": version}},
            }
            await conn.execute(
                "INSERT INTO checkpoints (session_id, checkpoint_id, parent_checkpoint_id,"
                " thread_id, checkpoint, metadata) VALUES ($1, $2, $3, $4, $5::jsonb, '{}')",
                sid,
                cid,
                parent,
                str(sid),
                dumps_jsonb(body),
            )
            await conn.execute(
                "INSERT INTO checkpoint_blobs (session_id, channel, version, type, blob)"
                " VALUES ($1, 'messages', $2, 'vera.transcript_ranges', $3)",
                sid,
                version,
                ranges.encode(),
            )
        later = [m.version for m in memory_migrations().migrations if m.version >= 5]
        applied = await upgrade_schema(conn, [app_migrations()])
        assert applied.versions[MEMORY_LEDGER] == later
        transcript = await conn.fetchval(
            "SELECT messages::text FROM conversations WHERE session_id = $1", sid
        )
        versions = await conn.fetch("SELECT version FROM checkpoint_blobs ORDER BY version")
    finally:
        await conn.close()
    assert [m["content"] for m in json.loads(transcript)] == ["first, edited"]
    assert [v["version"] for v in versions] == [
        "00000000000000000000000000000002.0.00000000043981",
        "00000000000000000000000000000002.0.00000439041101",
    ]
    store = PostgresMemoryStore(empty_dsn, min_size=1, max_size=2)
    await store.initialize()
    try:
        saver = ConversationCheckpointer(store)
        tuples = [t async for t in saver.alist({"configurable": {"thread_id": str(sid)}})]
        values = [t.checkpoint["channel_values"]["messages"] for t in tuples]
        assert values == [[edited], [first, second]]
        seen = tuples[0].checkpoint["versions_seen"]["node"]["messages"]
        assert seen == tuples[0].checkpoint["channel_versions"]["messages"]
        assert saver.get_next_version(seen) > seen
    finally:
        await store.close()
