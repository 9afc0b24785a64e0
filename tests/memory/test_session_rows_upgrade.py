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
from tests.memory.test_session_rows import CASCADING_KEYS, TRIGGERS, orphans, populate, rows_of

ROOT = Path(__file__).resolve().parents[2]
# main just before migration 10: its last tree with the foreign keys.
BEFORE_TRIGGER = "a4719dab2906527ad84457b91d8b2249f7889219"
FUNCTIONS = "src/agent/memory/functions"


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
    assert applied == [[], [10]]
    assert again == []
    assert keys_after == []
    assert sorted(triggers) == [(False, True), (True, False)]
    assert set(kept.values()) == {3}
    assert set(after_delete.values()) == {2}
    assert set(after_truncate.values()) == {0}
    assert left == {}
