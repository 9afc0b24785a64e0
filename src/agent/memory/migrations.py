"""Versioned schema migrations, applied by `PostgresMemoryStore.initialize()`.

Migrations are the ordered `NNNN_name.sql` files of the top-level `migrations/` folder.
They run in one transaction under an advisory lock, so two processes starting at once
apply each migration exactly once, and a database at an older version is upgraded in place.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from src.config.settings import PROJECT_ROOT

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = PROJECT_ROOT / "migrations"
# Any constant works; it only has to be the same for every process of the service.
ADVISORY_LOCK_KEY = 0x5645_5241  # "VERA"
_FILE_PATTERN = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

CREATE_VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS vera_schema_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
)"""


@dataclass(frozen=True)
class Migration:
    """One schema change: its version number, name and SQL."""

    version: int
    name: str
    sql: str


def load_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Read the migration files in version order; versions must be 1, 2, 3, ..."""
    migrations = []
    for path in sorted(directory.glob("*.sql")):
        match = _FILE_PATTERN.match(path.name)
        if match is None:
            raise ValueError(f"migration file {path.name!r} is not named NNNN_name.sql")
        migrations.append(Migration(int(match[1]), match[2], path.read_text(encoding="utf-8")))
    expected = list(range(1, len(migrations) + 1))
    if [m.version for m in migrations] != expected:
        raise ValueError(f"migrations in {directory} must be numbered {expected}")
    return migrations


async def apply_migrations(
    conn: asyncpg.Connection, migrations: list[Migration] | None = None
) -> list[int]:
    """Apply every migration not yet recorded; returns the versions applied now."""
    migrations = load_migrations() if migrations is None else migrations
    applied_now: list[int] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", ADVISORY_LOCK_KEY)
        await conn.execute(CREATE_VERSION_TABLE)
        done = {
            r["version"] for r in await conn.fetch("SELECT version FROM vera_schema_migrations")
        }
        for migration in migrations:
            if migration.version in done:
                continue
            await conn.execute(migration.sql)
            await conn.execute(
                "INSERT INTO vera_schema_migrations (version, name) VALUES ($1, $2)",
                migration.version,
                migration.name,
            )
            applied_now.append(migration.version)
    if applied_now:
        logger.info("applied schema migrations %s", applied_now)
    return applied_now


async def schema_version(conn: asyncpg.Connection) -> int:
    """The highest applied migration version (0 for an empty database)."""
    exists = await conn.fetchval("SELECT to_regclass('vera_schema_migrations') IS NOT NULL")
    if not exists:
        return 0
    return await conn.fetchval("SELECT COALESCE(MAX(version), 0) FROM vera_schema_migrations")
