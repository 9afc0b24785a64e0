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
    apply_migrations,
    load_migrations,
    merge_migrations,
    schema_version,
)
from src.wiring import app_migrations

ROOT = Path(__file__).resolve().parents[2]


def every_migration():
    """The checkpointer's migrations and the app's, in their one version sequence."""
    return merge_migrations(load_migrations(), app_migrations())


def test_the_checkpointer_and_the_app_number_their_migrations_as_one_sequence() -> None:
    """Databases made before the split hold versions 1..6 in `vera_schema_migrations`:
    the package's files and the app's keep those numbers, with no gap and no repeat."""
    versions = [m.version for m in every_migration()]
    assert versions == list(range(1, len(versions) + 1))
    assert [m.version for m in load_migrations()] == [1, 2, 4, 5, 8]
    assert {m.name for m in app_migrations()} >= {"turn_leases", "turn_events"}


def test_finding_no_migration_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no migration files"):
        load_migrations(tmp_path)
    (tmp_path / "0001_a.sql").write_text("SELECT 1")
    (tmp_path / "0002_b.sql").write_text("SELECT 1")
    with pytest.raises(ValueError, match="used twice"):
        merge_migrations(load_migrations(tmp_path), load_migrations(tmp_path)[1:])


async def tables(dsn: str) -> set[str]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return {r["tablename"] for r in rows}
    finally:
        await conn.close()


async def test_from_empty_database_is_idempotent(empty_dsn: str) -> None:
    store = PostgresMemoryStore(
        empty_dsn, min_size=1, max_size=2, extra_migrations=app_migrations()
    )
    await store.initialize()
    await store.close()
    await store.initialize()  # second start applies nothing
    async with store.pool.acquire() as conn:
        assert await schema_version(conn) == len(every_migration())
        assert await apply_migrations(conn) == []
        assert await apply_migrations(conn, every_migration()) == []
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
    store = PostgresMemoryStore(
        empty_dsn, min_size=1, max_size=2, extra_migrations=app_migrations()
    )
    await store.initialize()
    try:
        assert await store.get_messages(sid) == [{"role": "user", "content": "kept"}]
        async with store.pool.acquire() as c:
            assert await schema_version(c) == len(every_migration())
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
    assert sorted(versions) == [m.version for m in load_migrations()]  # the package's own


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
    back exactly after migration 5, and the transcript shows only the latest branch."""
    from langchain_core.messages import HumanMessage

    from src.agent.memory import ConversationCheckpointer
    from src.agent.memory.jsonb import dumps_jsonb
    from src.agent.memory.transcript import message_to_element

    conn = await asyncpg.connect(empty_dsn)
    sid = uuid.uuid4()
    try:
        await apply_migrations(conn, [m for m in every_migration() if m.version <= 4])
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
        later = [m.version for m in every_migration() if m.version >= 5]
        assert await apply_migrations(conn, every_migration()) == later
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
