"""A database the code before migration 10 made (the six foreign keys to
`conversations(session_id)`, its stored functions, read with `git show`) and filled is
upgraded by two processes starting at once: migration 10 is applied once, the keys are
gone, each trigger exists once, a later start applies nothing, and the rows written
before the upgrade go with their conversation on DELETE and on TRUNCATE."""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
import uuid
from pathlib import Path

import asyncpg
import pytest

from src.agent.memory import sql
from src.agent.memory.migrations import MEMORY_LEDGER, MigrationSet, apply_set, memory_migrations
from src.agent.memory.schema import upgrade_schema
from tests.session_rows import (
    CASCADING_KEYS,
    POPULATE,
    TRIGGERS,
    orphans,
    populate,
    rows_of,
)

ROOT = Path(__file__).resolve().parents[2]
# main just before migration 10: its last tree with the foreign keys.
BEFORE_TRIGGER = "a4719dab2906527ad84457b91d8b2249f7889219"
# What an upgrade from it applies: migration 10 and every one after it.
SINCE_TRIGGER = [m.version for m in memory_migrations().migrations[9:]]
FUNCTIONS = "src/agent/memory/functions"
# The writer's hold on its session (`vera_take_session`'s lock).
LOCK_ROW = "SELECT FROM conversations WHERE session_id = $1 FOR NO KEY UPDATE"
# Backends of this database waiting for a lock.
LOCK_WAITERS = """
SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND wait_event_type = 'Lock'"""


def git(*args: str) -> str:
    try:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"the old functions need the git history ({BEFORE_TRIGGER[:7]}): {exc}")
    return done.stdout


async def build_before_trigger(conn: asyncpg.Connection) -> None:
    """What the old code's start left: migrations 1 to 9, its functions (hashes recorded)."""
    names = git("ls-tree", "--name-only", BEFORE_TRIGGER, f"{FUNCTIONS}/").split()
    async with conn.transaction():
        await apply_set(conn, MigrationSet(MEMORY_LEDGER, memory_migrations().migrations[:9]))
        for path in (p for p in names if p.endswith(".sql")):
            text = git("show", f"{BEFORE_TRIGGER}:{path}")
            await conn.execute(text)
            digest = "sha256:" + hashlib.sha256(text.encode()).hexdigest()
            await conn.execute(sql.record_function(Path(path).stem, digest))


async def lock_waiter(conn: asyncpg.Connection, task: asyncio.Task[list[int]]) -> None:
    """Return once a backend of the database waits for a lock (`task`'s), or `task` ended."""
    async with asyncio.timeout(30):
        while not task.done():
            if await conn.fetchval(LOCK_WAITERS):
                return
            await asyncio.sleep(0.01)


async def upgrade(dsn: str) -> list[int]:
    conn = await asyncpg.connect(dsn)
    try:
        return (await upgrade_schema(conn)).versions.get(MEMORY_LEDGER, [])
    finally:
        await conn.close()


async def test_an_old_database_upgrades_to_the_trigger_once(empty_dsn: str) -> None:
    conn = await asyncpg.connect(empty_dsn)
    try:
        await build_before_trigger(conn)
        keys_before = {r["name"] for r in await conn.fetch(CASCADING_KEYS)}
        sids = [uuid.uuid4(), uuid.uuid4(), uuid.uuid4()]
        for sid in sids:
            await populate(conn, sid)
        applied = sorted(await asyncio.gather(upgrade(empty_dsn), upgrade(empty_dsn)))
        again = await upgrade(empty_dsn)
        keys_after = await conn.fetch(CASCADING_KEYS)
        triggers = [(r["on_delete"], r["on_truncate"]) for r in await conn.fetch(TRIGGERS)]
        kept = await rows_of(conn, sids)
        await conn.execute("DELETE FROM conversations WHERE session_id = $1", sids[0])
        after_delete = await rows_of(conn, sids)
        await conn.execute("TRUNCATE conversations")
        after_truncate = await rows_of(conn, sids)
        left = await orphans(conn, sids)
    finally:
        await conn.close()
    assert len(keys_before) == 6
    assert SINCE_TRIGGER[0] == 10
    assert applied == [[], SINCE_TRIGGER]
    assert again == []
    assert keys_after == []
    assert sorted(triggers) == [(False, True), (True, False)]
    assert set(kept.values()) == {3}
    assert set(after_delete.values()) == {2}
    assert set(after_truncate.values()) == {0}
    assert left == {}


async def test_the_upgrade_waits_for_a_writer_of_the_old_code(empty_dsn: str) -> None:
    """A rolling deploy: a process of the old code holds a session's conversation row (as
    `vera_take_session` does) when a new one starts and upgrades, then inserts that
    session's rows into every child table. The migration waits for that write to commit
    and then applies; neither is aborted as a deadlock (dropping a key locks the child
    table, then `conversations`: the writer's order reversed)."""
    conn = await asyncpg.connect(empty_dsn)
    writer = await asyncpg.connect(empty_dsn)
    try:
        await build_before_trigger(conn)
        sid = uuid.uuid4()
        await conn.execute(POPULATE["conversations"], sid)
        write = writer.transaction()
        await write.start()
        await writer.execute(LOCK_ROW, sid)
        migration = asyncio.create_task(upgrade(empty_dsn))
        await lock_waiter(conn, migration)
        for table, statement in POPULATE.items():
            if table != "conversations":
                await writer.execute(statement, sid)
        await write.commit()
        applied = await migration
        await conn.execute("DELETE FROM conversations WHERE session_id = $1", sid)
        left = await rows_of(conn, [sid])
    finally:
        await writer.close()
        await conn.close()
    assert applied == SINCE_TRIGGER
    assert set(left.values()) == {0}
