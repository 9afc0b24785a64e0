"""The schema at start-up: every set of migrations, in one transaction under an advisory lock.

`upgrade_schema` applies the checkpointer's migrations (`migrations/`), then each
application's set (`PostgresMemoryStore(..., extra_migrations=...)`), each recorded in its
own ledger. Two processes starting at once apply each migration exactly once, and a
database at any older version is upgraded in place; an up-to-date one is checked without
taking the lock.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import asyncpg

from src.agent.memory import sql
from src.agent.memory.migrations import (
    MigrationSet,
    applied_versions,
    apply_set,
    legacy_rows,
    memory_migrations,
)

logger = logging.getLogger(__name__)

# Any constant works; it only has to be the same for every process of the service.
ADVISORY_LOCK_KEY = 0x5645_5241  # "VERA"


async def up_to_date(conn: asyncpg.Connection, sets: Sequence[MigrationSet]) -> bool:
    """Whether every set's ledger records all its migrations (and the shared ledger of older
    databases holds none of theirs)."""
    for migrations in sets:
        done = await applied_versions(conn, migrations.ledger)
        if any(m.version not in done for m in migrations.migrations):
            return False
        if await legacy_rows(conn, (m.name for m in migrations.migrations)):
            return False
    return True


async def upgrade_schema(
    conn: asyncpg.Connection, extra_migrations: Sequence[MigrationSet] = ()
) -> dict[str, list[int]]:
    """Bring the schema up to date: the checkpointer's migrations, then each of
    `extra_migrations`. Returns the versions applied now, by ledger (empty when none)."""
    sets = [memory_migrations(), *extra_migrations]
    if await up_to_date(conn, sets):  # no lock needed
        return {}
    applied: dict[str, list[int]] = {}
    async with conn.transaction():
        await conn.execute(sql.MIGRATIONS_LOCK, ADVISORY_LOCK_KEY)
        for migrations in sets:
            versions = await apply_set(conn, migrations)
            if versions:
                applied[migrations.ledger] = versions
    if applied:
        logger.info("applied schema migrations %s", applied)
    return applied
