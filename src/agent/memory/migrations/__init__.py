"""Versioned schema migrations, applied by `PostgresMemoryStore.initialize()`.

The checkpointer's own migrations are the `NNNN_name.sql` files of this package, read
through `importlib.resources` (so they ship in the wheel). An application may add its own
tables' migrations (`PostgresMemoryStore(..., extra_migrations=...)`): versions are one
sequence shared by both sets (recorded in `vera_schema_migrations`), applied in version
order. They run in one transaction under an advisory lock, so two processes starting at
once apply each migration exactly once, and a database at an older version is upgraded in
place.
"""

from __future__ import annotations

import itertools
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

import asyncpg

from src.agent.memory import sql

logger = logging.getLogger(__name__)

# Any constant works; it only has to be the same for every process of the service.
ADVISORY_LOCK_KEY = 0x5645_5241  # "VERA"
_FILE_PATTERN = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    """One schema change: its version number, name and SQL."""

    version: int
    name: str
    sql: str


def load_migrations(directory: Traversable | Path | None = None) -> list[Migration]:
    """The migration files of `directory` (default: this package's own) in version order.

    Raises `ValueError` when the folder holds none, when a `.sql` file is not named
    `NNNN_name.sql`, or when two files share a version.
    """
    source: Traversable | Path = files(__name__) if directory is None else directory
    migrations = []
    for path in sorted(source.iterdir(), key=lambda p: p.name):
        if not path.name.endswith(".sql"):
            continue
        match = _FILE_PATTERN.match(path.name)
        if match is None:
            raise ValueError(f"migration file {path.name!r} is not named NNNN_name.sql")
        migrations.append(Migration(int(match[1]), match[2], path.read_text(encoding="utf-8")))
    if not migrations:
        raise ValueError(f"no migration files (NNNN_name.sql) found in {source}")
    return merge_migrations(migrations)


def merge_migrations(*sets: Iterable[Migration]) -> list[Migration]:
    """Several sets of migrations as one, in version order; a version twice is an error."""
    merged = sorted((m for s in sets for m in s), key=lambda m: m.version)
    for before, after in itertools.pairwise(merged):
        if before.version == after.version:
            raise ValueError(
                f"migration version {after.version} is used twice "
                f"({before.name!r} and {after.name!r})"
            )
    return merged


async def apply_migrations(
    conn: asyncpg.Connection, migrations: Sequence[Migration] | None = None
) -> list[int]:
    """Apply every migration not yet recorded (default: the checkpointer's own), in version
    order; returns the versions applied now."""
    migrations = load_migrations() if migrations is None else merge_migrations(migrations)
    if await conn.fetchval(sql.MIGRATIONS_TABLE_EXISTS):  # up to date: no lock needed
        done = {r["version"] for r in await conn.fetch(sql.APPLIED_MIGRATIONS)}
        if all(m.version in done for m in migrations):
            return []
    applied_now: list[int] = []
    async with conn.transaction():
        await conn.execute(sql.MIGRATIONS_LOCK, ADVISORY_LOCK_KEY)
        await conn.execute(sql.CREATE_MIGRATIONS_TABLE)
        done = {r["version"] for r in await conn.fetch(sql.APPLIED_MIGRATIONS)}
        for migration in migrations:
            if migration.version in done:
                continue
            await conn.execute(migration.sql)
            await conn.execute(sql.RECORD_MIGRATION, migration.version, migration.name)
            applied_now.append(migration.version)
    if applied_now:
        logger.info("applied schema migrations %s", applied_now)
    return applied_now


async def schema_version(conn: asyncpg.Connection) -> int:
    """The highest applied migration version (0 for an empty database)."""
    if not await conn.fetchval(sql.MIGRATIONS_TABLE_EXISTS):
        return 0
    version: int = await conn.fetchval(sql.SCHEMA_VERSION)
    return version
