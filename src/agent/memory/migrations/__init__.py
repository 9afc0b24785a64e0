"""Versioned schema migrations: each owner's set, numbered on its own, in its own ledger.

A `MigrationSet` is the `NNNN_name.sql` files of one owner of tables and the ledger table
that records which of them are applied. The checkpointer's set is this package's files
(read through `importlib.resources`, so they ship in the wheel), recorded in
`vera_memory_migrations`; an application brings its own (`PostgresMemoryStore(...,
extra_migrations=[...])`). `schema.py` applies them, in one transaction under an advisory
lock.

A migration holds tables, data moves and the drops a function's signature change needs:
the functions themselves are in `functions/`, in their current form only.

Databases made before each owner had a ledger recorded every owner's versions in one table,
`vera_schema_migrations`: a set adopts the rows named like its migrations (`adopt_legacy`),
and the last set to adopt drops that table.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

import asyncpg

from src.agent.memory import sql

_FILE_PATTERN = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_LEDGER_PATTERN = re.compile(r"^[a-z_][a-z0-9_]*$")
MEMORY_LEDGER = "vera_memory_migrations"


@dataclass(frozen=True)
class Migration:
    """One schema change: its version number, name and SQL."""

    version: int
    name: str
    sql: str


@dataclass(frozen=True)
class MigrationSet:
    """One owner's migrations in version order, and its ledger table (a plain lower-case
    SQL name)."""

    ledger: str
    migrations: tuple[Migration, ...]

    def __post_init__(self) -> None:
        if not _LEDGER_PATTERN.match(self.ledger):
            raise ValueError(f"ledger {self.ledger!r} is not a lower-case SQL name")
        for before, after in itertools.pairwise(self.migrations):
            if before.version >= after.version:
                raise ValueError(
                    f"{self.ledger}: migration version {after.version} is used twice or out "
                    f"of order ({before.name!r}, {after.name!r})"
                )


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
    for before, after in itertools.pairwise(migrations):
        if before.version == after.version:
            raise ValueError(
                f"migration version {after.version} is used twice "
                f"({before.name!r} and {after.name!r})"
            )
    return migrations


def migration_set(ledger: str, directory: Traversable | Path) -> MigrationSet:
    """The migrations of `directory`, recorded in `ledger`."""
    return MigrationSet(ledger, tuple(load_migrations(directory)))


def memory_migrations() -> MigrationSet:
    """The checkpointer's own migrations."""
    return MigrationSet(MEMORY_LEDGER, tuple(load_migrations()))


async def applied_versions(conn: asyncpg.Connection, ledger: str) -> set[int]:
    """The versions `ledger` records (none when the table does not exist yet)."""
    if not await conn.fetchval(sql.TABLE_EXISTS, ledger):
        return set()
    return {r["version"] for r in await conn.fetch(sql.ledger(ledger).applied)}


async def legacy_rows(conn: asyncpg.Connection, names: Iterable[str]) -> bool:
    """Whether the shared ledger of older databases still holds rows of these names."""
    if not await conn.fetchval(sql.TABLE_EXISTS, sql.LEGACY_LEDGER):
        return False
    return bool(await conn.fetchval(sql.LEGACY_HOLDS, list(names)))


async def adopt_legacy(conn: asyncpg.Connection, migrations: MigrationSet) -> None:
    """Move the shared ledger's rows named like `migrations`' into their own ledger (under
    this set's version numbers); drop the shared ledger once no row is left. The caller
    holds the migrations' advisory lock, in a transaction."""
    if not await conn.fetchval(sql.TABLE_EXISTS, sql.LEGACY_LEDGER):
        return
    versions = {m.name: m.version for m in migrations.migrations}
    adopted = await conn.fetch(sql.TAKE_LEGACY_ROWS, list(versions))
    statements = sql.ledger(migrations.ledger)
    for row in adopted:
        await conn.execute(statements.adopt, versions[row["name"]], row["name"], row["applied_at"])
    if not await conn.fetchval(sql.LEGACY_HOLDS_ANY):
        await conn.execute(sql.DROP_LEGACY_LEDGER)


async def apply_set(conn: asyncpg.Connection, migrations: MigrationSet) -> list[int]:
    """Apply every migration of the set its ledger does not record, in version order;
    returns the versions applied now. The caller holds the lock, in a transaction."""
    statements = sql.ledger(migrations.ledger)
    await conn.execute(statements.create)
    await adopt_legacy(conn, migrations)
    done = {r["version"] for r in await conn.fetch(statements.applied)}
    applied_now: list[int] = []
    for migration in migrations.migrations:
        if migration.version in done:
            continue
        await conn.execute(migration.sql)
        await conn.execute(statements.record, migration.version, migration.name)
        applied_now.append(migration.version)
    return applied_now
