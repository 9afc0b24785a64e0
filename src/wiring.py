"""The composition root's memory wiring: settings mapped to the memory store's arguments.

`src/agent/memory` knows nothing of the settings or of the API; the entry points (the API's
lifespan, the Studio checkpointer in `graphs/checkpointer.py`, `bench/`) build the store
from `memory_options(settings)`, which also adds the application's own tables: the
top-level `migrations/` folder (turn leases, turn events, ...), numbered in the same
version sequence as the checkpointer's migrations that ship in the package.
"""

from __future__ import annotations

from typing import Any

from src.agent.memory.migrations import Migration, load_migrations
from src.config.settings import PROJECT_ROOT, Settings

APP_MIGRATIONS_DIR = PROJECT_ROOT / "migrations"


def app_migrations() -> list[Migration]:
    """The application's own migrations (an error when the folder holds none)."""
    return load_migrations(APP_MIGRATIONS_DIR)


def memory_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments of `PostgresMemoryStore` / `ConversationCheckpointer.from_dsn` for
    `settings` (embedded fallback when the settings allow it)."""
    return {
        "dsn": settings.postgres_memory_dsn(),
        "min_size": settings.postgres_memory_pool_min,
        "max_size": settings.postgres_memory_pool_max,
        "statement_cache": settings.postgres_memory_statement_cache,
        "connect_timeout": settings.postgres_memory_connect_timeout,
        "embedded_dir": (
            settings.postgres_memory_embedded_dir if settings.postgres_memory_embedded else None
        ),
        "database": settings.postgres_memory_db,
        "extra_migrations": app_migrations(),
    }
