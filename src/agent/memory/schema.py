"""The schema at start-up: every set of migrations and the stored functions, in one
transaction under an advisory lock.

`upgrade_schema` applies the checkpointer's migrations (`migrations/`), its functions in
their current form (`functions/`), then each application's set
(`PostgresMemoryStore(..., extra_migrations=...)`); each set is recorded in its own ledger.
Two processes starting at once apply each migration exactly once, and a database at any
older version is upgraded in place; an up-to-date one is checked without taking the lock.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import asyncpg

from src.agent.memory import sql
from src.agent.memory.functions import apply_functions, load_functions, stale_functions
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


@dataclass
class SchemaChanges:
    """What one `upgrade_schema` applied: migration versions by ledger, and the functions
    created or replaced (false when nothing was)."""

    versions: dict[str, list[int]] = field(default_factory=dict)
    functions: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.versions or self.functions)


async def up_to_date(conn: asyncpg.Connection, sets: Sequence[MigrationSet]) -> bool:
    """Whether every set's ledger records all its migrations (and the shared ledger of older
    databases holds none of theirs), and every function is current."""
    for migrations in sets:
        done = await applied_versions(conn, migrations.ledger)
        if any(m.version not in done for m in migrations.migrations):
            return False
        if await legacy_rows(conn, (m.name for m in migrations.migrations)):
            return False
    return not await stale_functions(conn, load_functions())


async def upgrade_schema(
    conn: asyncpg.Connection, extra_migrations: Sequence[MigrationSet] = ()
) -> SchemaChanges:
    """Bring the schema up to date: the checkpointer's migrations and functions, then each
    of `extra_migrations`."""
    sets = [memory_migrations(), *extra_migrations]
    changes = SchemaChanges()
    if await up_to_date(conn, sets):  # no lock needed
        return changes
    async with conn.transaction():
        await conn.execute(sql.MIGRATIONS_LOCK, ADVISORY_LOCK_KEY)
        for migrations in sets:
            versions = await apply_set(conn, migrations)
            if versions:
                changes.versions[migrations.ledger] = versions
            if migrations is sets[0]:  # the checkpointer's: its functions come next
                changes.functions = await apply_functions(conn)
    if changes:
        logger.info("schema: applied %s, functions %s", changes.versions, changes.functions)
    return changes
