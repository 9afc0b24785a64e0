"""The composition root's memory wiring: settings mapped to the memory store's arguments.

`src/agent/memory` knows nothing of the settings or of the API; the entry points (the API's
lifespan, the Studio checkpointer in `graphs/checkpointer.py`, `bench/`) build the store
from `memory_options(settings)`, which also adds the application's own tables: the
top-level `migrations/` folder (turn events, session owners, ...), numbered on their own
and recorded in `vera_app_migrations`.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from src.agent.memory.migrations import MigrationSet, migration_set
from src.agent.memory.store import PostgresMemoryStore
from src.config.settings import PROJECT_ROOT, Settings, SettingsError

APP_MIGRATIONS_DIR = PROJECT_ROOT / "migrations"
APP_LEDGER = "vera_app_migrations"


def app_migrations() -> MigrationSet:
    """The application's own migrations (an error when there are none): the top-level
    `migrations/` of a checkout, or the copy a wheel carries as `src/api/migrations`."""
    packaged = resources.files("src.api") / "migrations"
    return migration_set(APP_LEDGER, packaged if packaged.is_dir() else APP_MIGRATIONS_DIR)


def memory_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments of `PostgresMemoryStore` / `ConversationCheckpointer.from_dsn` for
    `settings` (embedded fallback when the settings allow it)."""
    return {
        "dsn": settings.postgres_memory_dsn(),
        "min_size": settings.postgres_memory_pool_min,
        "max_size": settings.postgres_memory_pool_max,
        "statement_cache": settings.postgres_memory_statement_cache,
        "connect_timeout": settings.postgres_memory_connect_timeout,
        "pool_wait": settings.postgres_memory_pool_wait,
        "cache_max_bytes": settings.postgres_memory_cache_max_bytes,
        "embedded_dir": (
            settings.postgres_memory_embedded_dir if settings.postgres_memory_embedded else None
        ),
        "database": settings.postgres_memory_db,
        "extra_migrations": [app_migrations()],
        "direct_dsn": (
            settings.postgres_memory_direct_url.get_secret_value()
            if settings.postgres_memory_direct_url is not None
            else None
        ),
    }


def check_pooler(settings: Settings, store: PostgresMemoryStore) -> None:
    """After `store.initialize()`: refuse asyncpg's statement cache when a pooler answers
    at the configured address (its named prepared statements live on one server
    connection, and transaction pooling hands the next call another one: calls fail under
    load), unless the settings say the pooler keeps prepared statements."""
    if (
        store.behind_pooler
        and settings.postgres_memory_statement_cache
        and not settings.postgres_memory_pooler_prepared_statements
    ):
        raise SettingsError(
            "Invalid configuration: POSTGRES_MEMORY_STATEMENT_CACHE=true, but "
            f"{store.address} is a connection pooler (PgBouncer?): set "
            "POSTGRES_MEMORY_STATEMENT_CACHE=false, or set "
            "POSTGRES_MEMORY_POOLER_PREPARED_STATEMENTS=true when the pooler keeps prepared "
            "statements (PgBouncer >= 1.21 with max_prepared_statements > 0, or session "
            "pooling)"
        )
