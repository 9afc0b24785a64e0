"""A database made at any earlier schema version upgrades in place to exactly a fresh one.

Until issue 24, every owner's migrations were one version sequence in one ledger,
`vera_schema_migrations` (versions 1, 2, 4, 5, 8 the checkpointer's, 3, 6, 7, 9 the app's),
and the stored functions lived inside them. Those databases are built here from the
migration files of that last tree (read with `git show`), at every version the old runner
could leave (with the app's migrations, and with the checkpointer's alone), then upgraded
by today's code: tables, indexes, constraints, storage options, stored functions and the
ledgers must end the same as a fresh database's, and no row is lost.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import asyncpg
import pytest

from src.agent.memory.functions import load_functions
from src.agent.memory.schema import upgrade_schema
from src.wiring import app_migrations
from tests.support import fresh_database

ROOT = Path(__file__).resolve().parents[2]
# main just before issue 24: the last tree with the shared ledger.
LEGACY_COMMIT = "00fa3128591922dc34eb79c74d4b867d5ef42174"
LEGACY_FILES = {
    1: "src/agent/memory/migrations/0001_conversations.sql",
    2: "src/agent/memory/migrations/0002_checkpoints.sql",
    3: "migrations/0003_turn_leases.sql",
    4: "src/agent/memory/migrations/0004_transcript_storage.sql",
    5: "src/agent/memory/migrations/0005_message_store.sql",
    6: "migrations/0006_turn_events.sql",
    7: "migrations/0007_session_owners.sql",
    8: "src/agent/memory/migrations/0008_transcript_per_turn.sql",
    9: "migrations/0009_session_ttl.sql",
}
CHECKPOINTER_VERSIONS = (1, 2, 4, 5, 8)
# Every version an old runner could leave: with the app (1..n) or the checkpointer alone.
LEGACY_STATES = {
    **{f"app-{n}": tuple(range(1, n + 1)) for n in range(1, 10)},
    **{
        f"library-{n}": CHECKPOINTER_VERSIONS[:i]
        for i, n in enumerate(CHECKPOINTER_VERSIONS, 1)
        if n > 2
    },
}

_CATALOG = {
    "columns": """
SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
    pg_get_expr(d.adbin, d.adrelid), a.attgenerated, a.attcompression
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r'
    AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY c.relname, a.attnum""",
    "storage": """
SELECT c.relname, c.relkind, c.reloptions, t.reloptions
FROM pg_class c LEFT JOIN pg_class t ON t.oid = c.reltoastrelid
WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'i', 'S', 'v', 'm')
ORDER BY c.relname""",
    "constraints": """
SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint
WHERE connamespace = 'public'::regnamespace ORDER BY 1, 2""",
    "indexes": "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1",
    "functions": """
SELECT p.proname, pg_get_function_identity_arguments(p.oid), pg_get_functiondef(p.oid),
    obj_description(p.oid, 'pg_proc')
FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace ORDER BY 1, 2""",
}


def legacy_sql(version: int) -> str:
    """The text of legacy migration `version`, from the git history."""
    try:
        done = subprocess.run(
            ["git", "show", f"{LEGACY_COMMIT}:{LEGACY_FILES[version]}"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"the legacy migrations need the git history ({LEGACY_COMMIT[:7]}): {exc}")
    return done.stdout


async def build_legacy(conn: asyncpg.Connection, versions: tuple[int, ...]) -> None:
    """What the old runner left after applying `versions` (those not applied yet)."""
    async with conn.transaction():
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS vera_schema_migrations (version INTEGER PRIMARY KEY, "
            "name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT NOW())"
        )
        done = {r[0] for r in await conn.fetch("SELECT version FROM vera_schema_migrations")}
        for version in (v for v in versions if v not in done):
            await conn.execute(legacy_sql(version))
            name = Path(LEGACY_FILES[version]).stem[5:]
            await conn.execute(
                "INSERT INTO vera_schema_migrations (version, name) VALUES ($1, $2)", version, name
            )


async def catalog(conn: asyncpg.Connection) -> dict[str, list[tuple[object, ...]]]:
    """The schema's definition, and every ledger's (version, name) rows."""
    found = {kind: [tuple(r) for r in await conn.fetch(q)] for kind, q in _CATALOG.items()}
    ledgers = await conn.fetch(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
        "AND tablename LIKE 'vera\\_%migrations' ORDER BY 1"
    )
    for (ledger,) in ledgers:
        rows = await conn.fetch(f"SELECT version, name FROM {ledger} ORDER BY 1")
        found[ledger] = [tuple(r) for r in rows]
    return found


async def upgraded(dsn: str, with_app: bool) -> dict[str, list[tuple[object, ...]]]:
    conn = await asyncpg.connect(dsn)
    try:
        await upgrade_schema(conn, [app_migrations()] if with_app else [])
        return await catalog(conn)
    finally:
        await conn.close()


@pytest.fixture(scope="module")
async def fresh_catalogs(server_dsn: str) -> dict[bool, dict[str, list[tuple[object, ...]]]]:
    """A fresh database's catalog, with the app's tables (True) and without (False)."""
    found = {}
    for with_app in (True, False):
        async with fresh_database(server_dsn, "vera_fresh") as dsn:
            found[with_app] = await upgraded(dsn, with_app)
    return found


@pytest.mark.parametrize("state", list(LEGACY_STATES))
async def test_an_upgraded_database_ends_as_a_fresh_one(
    state: str, server_dsn: str, fresh_catalogs: dict[bool, dict[str, list[tuple[object, ...]]]]
) -> None:
    with_app = state.startswith("app-")
    async with fresh_database(server_dsn, "vera_legacy") as dsn:
        conn = await asyncpg.connect(dsn)
        try:
            await build_legacy(conn, LEGACY_STATES[state])
        finally:
            await conn.close()
        assert await upgraded(dsn, with_app) == fresh_catalogs[with_app]
        assert await upgraded(dsn, True) == fresh_catalogs[True]  # then the app starts


async def test_the_checkpointer_alone_leaves_the_apps_legacy_rows_to_the_app(
    server_dsn: str, fresh_catalogs: dict[bool, dict[str, list[tuple[object, ...]]]]
) -> None:
    """On a database the app made, the checkpointer started alone (a script, Studio) takes
    its own rows; the app's stay in the old ledger until the app starts and takes them."""
    async with fresh_database(server_dsn, "vera_legacy") as dsn:
        conn = await asyncpg.connect(dsn)
        try:
            await build_legacy(conn, LEGACY_STATES["app-9"])
            await upgrade_schema(conn)
            left = await conn.fetch("SELECT version, name FROM vera_schema_migrations ORDER BY 1")
            assert [tuple(r) for r in left] == [
                (6, "turn_events"),
                (7, "session_owners"),
                (9, "session_ttl"),
            ]
            # Adopted, not re-run: only the app's migrations newer than the legacy ones run.
            changes = await upgrade_schema(conn, [app_migrations()])
            newer = [m.version for m in app_migrations().migrations if m.version > 3]
            assert changes.versions.get("vera_app_migrations", []) == newer
            assert not changes.functions
            assert await catalog(conn) == fresh_catalogs[True]
        finally:
            await conn.close()


# A row for every table of the last legacy version, as the old code wrote them.
_LEGACY_ROWS = [
    "INSERT INTO conversations (session_id, messages) VALUES ($1, "
    """'[{"role": "user", "content": "hi", "id": "h1", "type": "human"}]')""",
    "INSERT INTO transcript_heads (session_id, checkpoint_id, seqs, version, next_seq, pending) "
    "VALUES ($1, 'c1', '{0}', 'v1', 2, '{1}')",
    "INSERT INTO conversation_messages (session_id, seq, element) "
    """VALUES ($1, 1, '{"role": "assistant", "content": "waiting", "type": "ai"}')""",
    "INSERT INTO checkpoints (session_id, checkpoint_id, thread_id, checkpoint, metadata) "
    """VALUES ($1, 'c1', 't', '{"v": 4, "id": "c1"}', '{"run_id": "r1"}')""",
    "INSERT INTO checkpoint_blobs (session_id, channel, version, type, blob) "
    "VALUES ($1, 'messages', 'v1', 'vera.transcript_ranges', '[[0,2]]')",
    "INSERT INTO checkpoint_writes (session_id, checkpoint_id, task_id, idx, channel, type, blob) "
    "VALUES ($1, 'c1', 'task', 0, 'messages', 'msgpack', 'x')",
    "INSERT INTO turn_leases (session_id, run_id, expires_at) VALUES ($1, $1, now())",
    "INSERT INTO turn_events (session_id, turn_id, seq, event, data) "
    """VALUES ($1, 'turn', 1, 'token', '{"text": "hi"}')""",
    "INSERT INTO session_owners (session_id, principal, user_id, title, ttl_minutes) "
    "VALUES ($1, 'alice', 'u1', 'hi', 90)",
]


async def columns_of(conn: asyncpg.Connection) -> dict[str, list[str]]:
    """The columns of every table but the ledgers, in order."""
    rows = await conn.fetch(
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_schema = 'public' AND table_name NOT LIKE 'vera\\_%migrations' "
        "ORDER BY table_name, ordinal_position"
    )
    columns: dict[str, list[str]] = {}
    for row in rows:
        columns.setdefault(row["table_name"], []).append(row["column_name"])
    return columns


async def every_row(
    conn: asyncpg.Connection, columns: dict[str, list[str]] | None = None
) -> dict[str, list[str]]:
    """Every row of every table but the ledgers, as text: the values of `columns` (default:
    all of them), in order (a later migration may add a column)."""
    columns = columns or await columns_of(conn)
    return {
        t: [
            r[0]
            for r in await conn.fetch(
                f"SELECT ROW({', '.join(f'x.{c}' for c in names)})::text FROM {t} AS x ORDER BY 1"
            )
        ]
        for t, names in columns.items()
    }


async def test_upgrading_in_place_keeps_every_row(server_dsn: str) -> None:
    async with fresh_database(server_dsn, "vera_legacy") as dsn:
        conn = await asyncpg.connect(dsn)
        try:
            await build_legacy(conn, LEGACY_STATES["app-9"])
            sid = uuid.uuid4()
            for statement in _LEGACY_ROWS:
                await conn.execute(statement, sid)
            before = await every_row(conn)
            await upgrade_schema(conn, [app_migrations()])
            # The columns added after the legacy versions (the app's migration 4: thread
            # metadata) are left out; the others are compared by position.
            now = await columns_of(conn)
            added = {("session_owners", "metadata")}
            kept = {t: [c for c in cs if (t, c) not in added] for t, cs in now.items()}
            after = await every_row(conn, kept)
        finally:
            await conn.close()
    assert all(before.values()), before
    assert {t: after[t] for t in before} == before
    assert not any(after[t] for t in set(after) - set(before))  # tables added since: empty


# Sessions of a database at version 4, when `conversations.messages` was the log of every
# message checkpointed: (log, root checkpoints as (id, ranges or None for no blob), subgraph
# checkpoints).
_LOGS_AT_4 = {
    "linear": (["q", "a", "q2"], [("c1", "[[0,2]]"), ("c2", "[[0,3]]")], 0),
    "forked": (["q", "a", "q edited"], [("c1", "[[0,2]]"), ("c2", "[[2,3]]")], 0),
    "reordered": (["q", "a"], [("c1", "[[1,2],[0,1]]")], 0),
    "no blob": (["q", "a"], [("c1", None)], 0),
    "no checkpoint": (["q"], [], 0),
    "subgraph only": (["q"], [], 2),
}


async def write_logs_at_4(conn: asyncpg.Connection) -> None:
    for n, (texts, roots, subgraph) in enumerate(_LOGS_AT_4.values()):
        sid = uuid.UUID(int=n + 1)
        log = [
            {"role": "user", "content": t, "type": "human", "id": f"m{i}"}
            for i, t in enumerate(texts)
        ]
        await conn.execute(
            "INSERT INTO conversations (session_id, messages, updated_at) "
            "VALUES ($1, $2::jsonb, '2026-01-01')",
            sid,
            json.dumps(log),
        )
        checkpoints = [("", cid, ranges) for cid, ranges in roots]
        checkpoints += [("child:1", f"s{i}", "[[0,1]]") for i in range(subgraph)]
        for i, (ns, cid, ranges) in enumerate(checkpoints):
            version = f"{i + 1:010d}.{i + 10:08x}"  # the short form of old versions
            body = {"v": 4, "id": cid, "channel_versions": {"messages": version}}
            await conn.execute(
                "INSERT INTO checkpoints (session_id, checkpoint_ns, checkpoint_id, thread_id,"
                " checkpoint) VALUES ($1, $2, $3, 't', $4::jsonb)",
                sid,
                ns,
                cid,
                json.dumps(body),
            )
            if ranges is not None:
                await conn.execute(
                    "INSERT INTO checkpoint_blobs (session_id, checkpoint_ns, channel, version,"
                    " type, blob) VALUES ($1, $2, 'messages', $3, 'vera.transcript_ranges', $4)",
                    sid,
                    ns,
                    version,
                    ranges.encode(),
                )


async def rows_as_json(conn: asyncpg.Connection) -> dict[str, list[object]]:
    """Every row of the checkpointer's tables as JSON, but the values each database makes
    up (row ids, times)."""
    found = {}
    for table in (
        "conversations",
        "conversation_messages",
        "transcript_heads",
        "checkpoints",
        "checkpoint_blobs",
    ):
        rows = await conn.fetch(
            f"SELECT (to_jsonb(x) - '{{id,created_at,updated_at}}'::text[])::text "
            f"FROM {table} AS x ORDER BY 1"
        )
        found[table] = [json.loads(r[0]) for r in rows]
    return found


async def test_the_message_store_data_move_is_the_old_one(server_dsn: str) -> None:
    """Migration 5's upgrade of version-4 data (each session shows its latest root
    checkpoint, the rest of its log moves out), now plain SQL, leaves exactly what the
    functions of the old migration 5 left (both then upgraded to today)."""
    results = []
    for upgrade in ("legacy", "today"):
        async with fresh_database(server_dsn, "vera_legacy") as dsn:
            conn = await asyncpg.connect(dsn)
            try:
                await build_legacy(conn, LEGACY_STATES["app-4"])
                await write_logs_at_4(conn)
                if upgrade == "legacy":  # the old migrations 5 to 9 first
                    await build_legacy(conn, LEGACY_STATES["app-9"])
                await upgrade_schema(conn, [app_migrations()])
                results.append(await rows_as_json(conn))
            finally:
                await conn.close()
    legacy, today = results
    assert legacy == today
    shown = {tuple(m["content"] for m in c["messages"]) for c in today["conversations"]}
    assert shown == {("q", "a", "q2"), ("q edited",), ("a", "q"), (), ("q",)}


async def test_a_function_is_applied_when_its_hash_is_not_recorded(empty_dsn: str) -> None:
    """Start-up leaves current functions alone, and creates again one a migration dropped
    or whose file changed (here: a stale recorded hash)."""
    names = [f.name for f in load_functions()]
    conn = await asyncpg.connect(empty_dsn)
    try:
        first = await upgrade_schema(conn)
        assert first.functions == names
        assert not await upgrade_schema(conn)
        signature = await conn.fetchval(
            "SELECT oid::regprocedure::text FROM pg_proc WHERE proname = $1", names[0]
        )
        await conn.execute(f"DROP FUNCTION {signature}")
        await conn.execute(f"COMMENT ON FUNCTION {names[-1]} IS 'sha256:older'")
        again = await upgrade_schema(conn)
        assert (again.versions, again.functions) == ({}, [names[0], names[-1]])
    finally:
        await conn.close()
